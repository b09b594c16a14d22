"""The OTA file layer: every file the updater and the boot selector touch goes through here.

Paths are relative to the device root (``root``: "" is the working directory, as
on a board). Every call that changes the medium first calls ``_op(kind, rel)``
(kinds: "mkdir", "open" (create/truncate or append), "write", "sync", "rename",
"remove", "rmdir"); reads are not ops. Tests subclass ``OtaFiles`` and raise
``PowerCut`` from ``_op`` at op N to model a power cut there: that op and every
later one do not happen. A write goes through ``_write(f, rel, data)`` too, so a
test can tear it (write part of ``data``, then cut), and a sync through
``_sync(f, rel)`` (a simulated medium may skip the real fsync).

Durability model: what a completed op did stays done after the cut (synced
writes, renames: on CPython the directory is synced after a rename).
``write_json`` is atomic: temp file, sync, rename over, so a reader sees the
old object or the new one, never a mix. The boot record and the download
progress rely on that.
"""

import json
import os

from device.compat import IS_MICROPYTHON, path_dirname, path_join

_ENOENT = 2
_EEXIST = 17
_S_IFDIR = 0x4000


class PowerCut(BaseException):
    """The power went out (tests only). A BaseException: no ``except Exception`` may swallow it."""


class OtaHandle:
    """A file open for writing; ``sync`` makes what was written durable."""

    def __init__(self, files: "OtaFiles", f, rel: str) -> None:  # type: ignore[no-untyped-def]
        self._files = files
        self._f = f
        self._rel = rel

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        self._files._write(self._f, self._rel, data)

    def sync(self) -> None:
        self._files._sync(self._f, self._rel)

    def close(self) -> None:
        self._f.close()


class OtaFiles:
    """Files under ``root`` ("" = the working directory)."""

    def __init__(self, root: str = "") -> None:
        self.root = root

    # -- the hooks tests override -------------------------------------------------------------

    def _op(self, kind: str, rel: str) -> None:
        """Called before every change to the medium; a test raises ``PowerCut`` here."""

    def _write(self, f, rel: str, data) -> None:  # type: ignore[no-untyped-def]
        self._op("write", rel)
        n = f.write(data)
        if n is not None and n != len(data):
            raise OSError(28, "short write")  # MicroPython reports a full filesystem this way

    def _sync(self, f, rel: str) -> None:  # type: ignore[no-untyped-def]
        self._op("sync", rel)
        f.flush()
        if not IS_MICROPYTHON:
            os.fsync(f.fileno())  # type: ignore[attr-defined]

    # -- reads --------------------------------------------------------------------------------

    def path(self, rel: str) -> str:
        return path_join(self.root, rel) if self.root else rel

    def _stat(self, rel: str):  # type: ignore[no-untyped-def]
        try:
            return os.stat(self.path(rel))
        except OSError as exc:
            if exc.args[0] == _ENOENT:
                return None
            raise

    def exists(self, rel: str) -> bool:
        return self._stat(rel) is not None

    def size(self, rel: str):  # type: ignore[no-untyped-def]
        st = self._stat(rel)
        return None if st is None else st[6]

    def is_dir(self, rel: str) -> bool:
        st = self._stat(rel)
        return st is not None and bool(st[0] & _S_IFDIR)

    def listdir(self, rel: str) -> list:
        """Names in directory ``rel`` (sorted); [] when it does not exist."""
        if not self.is_dir(rel):
            return []
        return sorted(os.listdir(self.path(rel)))

    def open_read(self, rel: str):  # type: ignore[no-untyped-def]
        return open(self.path(rel), "rb")

    def read_json(self, rel: str):  # type: ignore[no-untyped-def]
        """The object in ``rel``; None when missing; ValueError when it is not readable JSON."""
        try:
            f = open(self.path(rel), "rb")
        except OSError as exc:
            if exc.args[0] == _ENOENT:
                return None
            raise
        try:
            data = f.read()
        finally:
            f.close()
        try:
            return json.loads(data)
        except (ValueError, UnicodeError) as exc:  # MicroPython raises ValueError for both
            raise ValueError("%s: not JSON (%s)" % (rel, exc)) from None

    # -- changes ------------------------------------------------------------------------------

    def _open(self, rel: str, mode: str) -> OtaHandle:
        self._op("open", rel)
        if IS_MICROPYTHON:
            f = open(self.path(rel), mode)
        else:
            f = open(self.path(rel), mode, 0)  # unbuffered: written bytes reach the OS at once
        return OtaHandle(self, f, rel)

    def open_append(self, rel: str) -> OtaHandle:
        return self._open(rel, "ab")

    def open_write(self, rel: str) -> OtaHandle:
        """Open ``rel`` empty (truncating it)."""
        return self._open(rel, "wb")

    def write_json(self, rel: str, obj) -> None:  # type: ignore[no-untyped-def]
        """Atomically make ``rel`` hold ``obj``: temp file, sync, rename over."""
        tmp = rel + ".tmp"
        handle = self.open_write(tmp)
        try:
            handle.write(json.dumps(obj).encode())
            handle.sync()
        finally:
            handle.close()
        self.rename(tmp, rel)

    def rename(self, src: str, dst: str) -> None:
        self._op("rename", dst)
        os.rename(self.path(src), self.path(dst))
        self._sync_dir(path_dirname(self.path(dst)))

    def _sync_dir(self, directory: str) -> None:
        """Make a rename durable: on Linux it is in the directory, which has to be synced itself.

        MicroPython cannot (no ``os.open``); LittleFS commits a rename when it returns.
        """
        if IS_MICROPYTHON:
            return
        fd = os.open(directory or ".", os.O_RDONLY)  # type: ignore[attr-defined]
        try:
            os.fsync(fd)  # type: ignore[attr-defined]
        finally:
            os.close(fd)  # type: ignore[attr-defined]

    def remove(self, rel: str) -> None:
        """Remove file ``rel``; a missing file is fine."""
        if not self.exists(rel):
            return
        self._op("remove", rel)
        os.remove(self.path(rel))

    def makedirs(self, rel: str) -> None:
        """Create directory ``rel`` and its parents, one level at a time (MicroPython has no makedirs)."""
        current = ""
        for part in rel.split("/"):
            if not part or part == ".":
                continue
            current = path_join(current, part) if current else part
            if self.is_dir(current):
                continue
            self._op("mkdir", current)
            try:
                os.mkdir(self.path(current))
            except OSError as exc:
                if exc.args[0] != _EEXIST:
                    raise

    def rmtree(self, rel: str) -> None:
        """Remove directory ``rel`` and everything under it; missing is fine."""
        st = self._stat(rel)
        if st is None:
            return
        if not st[0] & _S_IFDIR:
            self.remove(rel)
            return
        for name in os.listdir(self.path(rel)):
            self.rmtree(path_join(rel, name))
        self._op("rmdir", rel)
        os.rmdir(self.path(rel))

    def ensure_parent(self, rel: str) -> None:
        parent = path_dirname(rel)
        if parent:
            self.makedirs(parent)
