"""A size quota on the virtual board's filesystem, so it can fill up like a board's flash does.

A board's filesystem (LittleFS on an ESP32 or a Pico W) is a few hundred KB
and allocates whole blocks: a 300-byte file takes a 4 KB block. The host
directory behind the virtual board has neither limit, so ``install(wiring)``
(when the wiring has ``fs_bytes``) replaces ``open`` with one whose files
refuse a write that would take more blocks than the quota has left: it
raises ``OSError(ENOSPC)`` and writes nothing, as the board's port does.
``statvfs`` reports the same blocks (``vbos`` asks ``statvfs_of``).

Usage is counted once (a walk of ``/``) and then kept up to date by each
write; a truncating open, a remove or a rename makes the next write count
again. Directories cost nothing here (LittleFS keeps them in small pairs).
"""

import builtins

ENOSPC = 28
_real_open = builtins.open
_quota = 0  # bytes; 0: no quota
_block = 4096
_used = None  # bytes in whole blocks, or None: walk again
_skip = ""  # the host mount seen from "/" (never counted)


def blocks_of(size: int) -> int:
    """Bytes a file of ``size`` bytes takes in whole blocks."""
    return (size + _block - 1) // _block * _block


def forget() -> None:
    """Usage changed behind the counter's back (remove, rename, truncate): count again next time."""
    global _used
    _used = None


def _walk(path: str) -> int:
    import os

    total = 0
    for entry in os.ilistdir(path):
        name = entry[0]
        full = path.rstrip("/") + "/" + name
        if full == _skip:
            continue
        if entry[1] == 0x4000:
            total += _walk(full)
        else:
            total += blocks_of(os.stat(full)[6])
    return total


def used_bytes() -> int:
    global _used
    if _used is None:
        _used = _walk("/")
    return _used


def statvfs_of() -> tuple:
    """``os.statvfs`` as a board with the quota reports it: block size, totals, free blocks."""
    total = _quota // _block
    free = max(0, total - used_bytes() // _block)
    return (_block, _block, total, free, free, 0, 0, 0, 0, 255)


def _abs(path: str) -> str:
    if path.startswith("/"):
        return path
    import os

    return os.getcwd().rstrip("/") + "/" + path


def _size(path: str) -> int:
    import os

    try:
        return os.stat(path)[6]
    except OSError:
        return 0


class QuotaFile:
    """A file open for writing whose writes are checked against the quota first."""

    def __init__(self, f, path: str, appending: bool) -> None:  # type: ignore[no-untyped-def]
        self._f = f
        self._path = path
        self._appending = appending

    def write(self, data) -> int:  # type: ignore[no-untyped-def]
        global _used
        n = len(data)
        old = _size(self._path)
        end = old + n if self._appending else max(old, self._f.tell() + n)
        grow = blocks_of(end) - blocks_of(old)
        if grow > 0 and used_bytes() + grow > _quota:
            raise OSError(ENOSPC)
        written = self._f.write(data)
        if _used is not None:
            _used += grow
        return written

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        self._f.close()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._f, name)  # read, seek, tell, flush, fileno, close...


def quota_open(path, mode="r", *args):  # type: ignore[no-untyped-def]
    f = _real_open(path, mode, *args)
    if not isinstance(path, str) or not ("w" in mode or "a" in mode or "+" in mode):
        return f
    if "w" in mode:
        forget()  # the open truncated the file: its old blocks are free again
    return QuotaFile(f, _abs(path), "a" in mode)


def install(wiring: dict, host_mount: str) -> None:
    """Enforce ``wiring["fs_bytes"]`` (blocks of ``fs_block_bytes``, default 4096) when it is set."""
    global _quota, _block, _skip, _used
    _quota = int(wiring.get("fs_bytes") or 0)
    if not _quota:
        return
    _block = int(wiring.get("fs_block_bytes") or 4096)
    _skip = host_mount
    _used = None
    builtins.open = quota_open
