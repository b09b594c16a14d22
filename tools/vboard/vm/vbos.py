"""``os`` for the virtual board: the built-in one with ``rename`` fixed and the size quota seen.

The unix port's ``VfsPosix`` with a root directory builds both paths of a
rename in one shared buffer, so ``rename(a, b)`` becomes ``rename(b, b)``
(ENOENT). The board's store renames over files atomically, so here the
rename goes through a root-less ``VfsPosix`` mounted at ``HOST_MOUNT``.
With a filesystem quota (``vbfs``), ``statvfs`` reports it and a remove or
rename makes the quota count the usage again.
"""

import os as _os
from os import *  # noqa: F403 - this module stands in for os

import vbfs

HOST_MOUNT = "/.vbhost"
_fs_dir = ""


def setup(fs_dir: str) -> None:
    global _fs_dir
    _fs_dir = fs_dir.rstrip("/")
    _os.mount(_os.VfsPosix(), HOST_MOUNT)


def _host(path: str) -> str:
    if not path.startswith("/"):
        cwd = _os.getcwd()
        path = cwd.rstrip("/") + "/" + path
    return HOST_MOUNT + _fs_dir + path


def rename(old: str, new: str) -> None:
    _os.rename(_host(old), _host(new))
    vbfs.forget()  # a rename over a file frees its blocks


def remove(path: str) -> None:
    _os.remove(path)
    vbfs.forget()


def statvfs(path: str = "/") -> tuple:
    return vbfs.statvfs_of() if vbfs._quota else _os.statvfs(path)


def _at_root(path: str) -> bool:
    return path in ("/", "") and (path == "/" or _os.getcwd() == "/")


def listdir(path: str = "") -> list:
    names = _os.listdir(path) if path else _os.listdir()
    return [n for n in names if not (_at_root(path) and n == HOST_MOUNT[1:])]


def ilistdir(path: str = ""):  # type: ignore[no-untyped-def]
    for entry in _os.ilistdir(path) if path else _os.ilistdir():
        if not (_at_root(path) and entry[0] == HOST_MOUNT[1:]):
            yield entry
