"""The file layer under the ``log`` backend: every byte it writes goes through here.

One directory of flat files. ``Files`` uses the real filesystem on both VMs
(on a board: LittleFS on the flash). Tests swap in a subclass that cuts the
write stream at a chosen byte and drops what was not synced (power cut), or
fails writes with ENOSPC (full flash): see ``tests/store/cutfiles.py``.

Durability model the log backend relies on, and what a power cut may leave:
bytes written to a handle are durable after ``sync()``; un-synced bytes may
be lost, in part or whole, from any byte on (a torn tail). ``replace`` is
atomic: after a cut the target holds the old content or the new one.
OSErrors pass through unchanged: the backend counts and converts them.
"""

import os

from device.compat import IS_MICROPYTHON, path_join

_ENOENT = 2
_EEXIST = 17


def name_number(digits: str) -> int:
    """The number a file name part spells in decimal digits (``"42"`` -> 42), or -1 if it is not one."""
    if not digits:
        return -1
    for ch in digits:
        if ch < "0" or ch > "9":
            return -1
    return int(digits)


class FileHandle:
    """A file opened for appending (or created)."""

    def __init__(self, f) -> None:  # type: ignore[no-untyped-def]
        self._f = f

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        n = self._f.write(data)
        if n is not None and n != len(data):
            raise OSError(28, "short write")  # MicroPython reports a full filesystem this way

    def sync(self) -> None:
        self._f.flush()
        if not IS_MICROPYTHON:
            os.fsync(self._f.fileno())  # type: ignore[attr-defined]

    def close(self) -> None:
        self._f.close()


class Files:
    """Flat files in directory ``root`` (created if missing)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, name: str) -> str:
        return path_join(self.root, name)

    def make_root(self) -> None:
        # One level at a time: MicroPython has no makedirs.
        parts = self.root.split("/")
        current = "/" if self.root.startswith("/") else ""
        for part in parts:
            if not part or part == ".":
                continue
            current = path_join(current, part) if current else part
            try:
                os.mkdir(current)
            except OSError as exc:
                if exc.args[0] != _EEXIST:
                    raise

    def listdir(self) -> list:
        return sorted(os.listdir(self.root))

    def exists(self, name: str) -> bool:
        try:
            os.stat(self.path(name))
        except OSError as exc:
            if exc.args[0] == _ENOENT:
                return False
            raise
        return True

    def size(self, name: str) -> int:
        return os.stat(self.path(name))[6]

    def read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read()

    def read_at(self, name: str, offset: int, length: int) -> bytes:
        with open(self.path(name), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def open_append(self, name: str) -> FileHandle:
        # Unbuffered on CPython (both modes): a record written is in the OS's hands at once, so a
        # killed process loses nothing even with fsync off (MicroPython files are unbuffered).
        return self._open(name, "ab")

    def _open(self, name: str, mode: str) -> FileHandle:
        if IS_MICROPYTHON:
            return FileHandle(open(self.path(name), mode))
        return FileHandle(open(self.path(name), mode, 0))

    def create(self, name: str) -> FileHandle:
        """Open ``name`` empty (truncating it) for writing."""
        return self._open(name, "wb")

    def replace(self, name: str, data: bytes) -> None:
        """Atomically make ``name`` hold ``data``: temp file, sync, rename over."""
        tmp = name + ".tmp"
        handle = self.create(tmp)
        try:
            handle.write(data)
            handle.sync()
        finally:
            handle.close()
        os.rename(self.path(tmp), self.path(name))
        self.sync_dir()

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` (atomic; durable after ``sync_dir``)."""
        os.rename(self.path(src), self.path(dst))

    def remove(self, name: str) -> None:
        try:
            os.remove(self.path(name))
        except OSError as exc:
            if exc.args[0] != _ENOENT:
                raise

    def sync_dir(self) -> None:
        """Make renames and new files durable (a no-op where the VM cannot)."""
        if IS_MICROPYTHON:
            return
        fd = os.open(self.root, os.O_RDONLY)  # type: ignore[attr-defined]
        try:
            os.fsync(fd)  # type: ignore[attr-defined]
        finally:
            os.close(fd)  # type: ignore[attr-defined]
