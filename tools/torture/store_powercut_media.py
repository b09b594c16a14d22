"""A crash layer for the ``log`` backend: a ``device.store.fileio.Files`` kept in RAM that loses power on cue.

In the spirit of SQLite's crash-test VFS and littlefs's emulated block device:

* **Operations.** Every call that changes the medium (a write, a sync, a file
  created or linked, a rename, a remove, a directory sync) is one numbered
  I/O operation; reads are not (a crash before a read is a crash after the
  write before it). ``crash_at=k`` lets operations ``0..k-1`` happen; operation
  ``k`` is the one the power dies in: a write is in flight (its bytes join the
  unsynced ones, to be damaged like them), anything else does not happen.
  ``Crash`` is raised then and on every later call.
* **Held writes.** Bytes written are what reads see at once, but only the
  bytes up to a file's last ``sync()`` are durable. Directory changes are
  durable after ``sync_dir()`` or once a sync of a file they linked commits
  them (journaled metadata, in order).
* **Damage.** ``survivor(rng, variant)`` is the medium after power returns.
  The unsynced bytes of each file are cut into sectors (``sector`` bytes,
  aligned to the file's start: the board's erase block) and each sector's
  unsynced part is kept, dropped or overwritten with garbage, per ``VARIANTS``:
  ``keep`` (everything landed), ``drop`` (nothing landed), ``garbage`` (every
  unsynced sector programmed with noise up to its end), ``torn`` (sectors land
  in order up to a random byte, the rest is lost) and ``shuffle`` (each sector
  independently kept, dropped -- erased 0xFF if a later one landed -- or
  garbage: writes reaching the flash out of order). Pending directory changes
  are applied up to a random point (none for ``drop``, all for ``keep``).

Synced bytes are never touched: the backend's contract (``fileio``) promises
nothing for a medium that corrupts synced data (``tests/store/test_corrupt.py``
covers that separately).
"""

import random
from typing import Any

from device.store.fileio import FileHandle, Files

VARIANTS = ("keep", "drop", "garbage", "torn", "shuffle")
_ENOENT = 2
_ERASED = 0xFF


class Crash(BaseException):
    """The power went out: nothing more happens on this medium (a BaseException: no handler may swallow it)."""


class _Node:
    """One file's bytes as reads see them; the first ``synced`` are durable."""

    __slots__ = ("data", "synced")

    def __init__(self, data: bytes = b"", synced: int = 0) -> None:
        self.data = bytearray(data)
        self.synced = synced


class _Handle(FileHandle):
    def __init__(self, files: "CrashFiles", node: _Node) -> None:
        super().__init__(None)
        self._files = files
        self._node = node

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        files = self._files
        if files.step("write"):
            self._node.data += bytes(data)  # in flight: unsynced, damaged like the rest
            raise Crash("power cut during a write")
        self._node.data += bytes(data)

    def sync(self) -> None:
        self._files.op("sync")
        self._node.synced = len(self._node.data)
        self._files._commit_through(self._node)

    def close(self) -> None:
        self._files.alive()


class CrashFiles(Files):
    """The medium (see the module docstring). ``ops`` counts the I/O operations done so far."""

    def __init__(self, sector: int, crash_at: int | None = None) -> None:
        super().__init__("crash-medium")
        self.sector = sector
        self.crash_at = crash_at
        self.ops = 0
        self.dead = False
        self.crashed_in = ""  # the kind of operation the power died in
        self._dir: dict[str, _Node] = {}  # name -> _Node, as reads see it
        self._durable: dict[str, _Node] = {}  # name -> _Node, as it is with no pending change applied
        self._pending: list[
            tuple[Any, ...]
        ] = []  # ("link", name, node) | ("unlink", name) | ("rename", src, dst), oldest first

    # -- the power ----------------------------------------------------------------

    def alive(self) -> None:
        if self.dead:
            raise Crash("the power is off")

    def step(self, kind: str) -> bool:
        """Count one I/O operation; True if the power dies in it (the caller finishes a torn write, then raises)."""
        self.alive()
        if self.crash_at is not None and self.ops >= self.crash_at:
            self.dead = True
            self.crashed_in = kind
            return True
        self.ops += 1
        return False

    def op(self, kind: str) -> None:
        if self.step(kind):
            raise Crash("power cut before a " + kind)

    def survivor(self, rng: random.Random, variant: str) -> "CrashFiles":
        """A new medium holding what survived the crash, all of it durable."""
        durable = dict(self._durable)
        pending = self._pending
        applied = len(pending) if variant == "keep" else 0 if variant == "drop" else rng.randrange(len(pending) + 1)
        for change in pending[:applied]:
            _apply(durable, change)
        medium = CrashFiles(self.sector)
        for name, node in durable.items():
            data = _damage(bytes(node.data), node.synced, self.sector, rng, variant)
            medium._install(name, data)
        return medium

    def _install(self, name: str, data: bytes) -> None:
        node = _Node(data, len(data))
        self._dir[name] = node
        self._durable[name] = node

    def image(self) -> dict[str, bytes]:
        return {name: bytes(self._dir[name].data) for name in self._dir}

    # -- directory bookkeeping --------------------------------------------------------

    def _change(self, kind: str, change: tuple[Any, ...]) -> None:
        self.op(kind)
        _apply(self._dir, change)
        self._pending.append(change)

    def _commit_through(self, node: _Node) -> None:
        last = -1
        for i in range(len(self._pending)):
            change = self._pending[i]
            if change[0] == "link" and change[2] is node:
                last = i
        self._commit(last + 1)

    def _commit(self, count: int) -> None:
        for change in self._pending[:count]:
            _apply(self._durable, change)
        del self._pending[:count]

    def _node(self, name: str) -> _Node:
        node = self._dir.get(name)
        if node is None:
            raise OSError(_ENOENT, "No such file: %s" % name)
        return node

    # -- the Files interface ------------------------------------------------------------

    def make_root(self) -> None:
        self.alive()

    def listdir(self) -> list[str]:
        self.alive()
        return sorted(self._dir)

    def exists(self, name: str) -> bool:
        self.alive()
        return name in self._dir

    def size(self, name: str) -> int:
        self.alive()
        return len(self._node(name).data)

    def read(self, name: str) -> bytes:
        self.alive()
        return bytes(self._node(name).data)

    def read_at(self, name: str, offset: int, length: int) -> bytes:
        self.alive()
        return bytes(self._node(name).data[offset : offset + length])

    def open_append(self, name: str) -> FileHandle:
        self.alive()
        node = self._dir.get(name)
        if node is None:
            node = _Node()
            self._change("create", ("link", name, node))
        return _Handle(self, node)

    def create(self, name: str) -> FileHandle:
        # Truncation is a new file linked over the old: after a crash, old bytes or (some of) the new.
        node = _Node()
        self._change("create", ("link", name, node))
        return _Handle(self, node)

    def replace(self, name: str, data: bytes) -> None:
        # Files.replace's steps, each its own operation: temp file, write, sync, rename, directory sync.
        tmp = name + ".tmp"
        handle = self.create(tmp)
        handle.write(data)
        handle.sync()
        handle.close()
        self.rename(tmp, name)
        self.sync_dir()

    def rename(self, src: str, dst: str) -> None:
        self._node(src)
        self._change("rename", ("rename", src, dst))

    def remove(self, name: str) -> None:
        self.alive()
        if name in self._dir:
            self._change("remove", ("unlink", name))

    def sync_dir(self) -> None:
        self.op("sync_dir")
        self._commit(len(self._pending))


def _apply(directory: dict[str, Any], change: tuple[Any, ...]) -> None:
    kind = change[0]
    if kind == "link":
        directory[change[1]] = change[2]
    elif kind == "unlink":
        directory.pop(change[1], None)
    else:
        node = directory.pop(change[1], None)
        if node is not None:
            directory[change[2]] = node


def _noise(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def _damage(data: bytes, synced: int, sector: int, rng: random.Random, variant: str) -> bytes:
    """``data`` after a crash: the first ``synced`` bytes intact, the rest per ``variant``, sector by sector."""
    if synced >= len(data) or variant == "keep":
        return data
    if variant == "drop":
        return data[:synced]
    out = bytearray(data[:synced])
    start = synced
    end = len(data)
    if variant == "torn":
        return bytes(out) + data[synced : synced + rng.randrange(end - synced + 1)]
    pieces: list[bytes | None] = []  # (offset, bytes) of each sector's unsynced part, as it lands (None: lost)
    while start < end:
        stop = min(end, (start // sector + 1) * sector)
        if variant == "garbage":
            pieces.append(_noise(rng, (start // sector + 1) * sector - start))  # the whole sector programmed
        else:
            pick = rng.randrange(3)
            if pick == 0:
                pieces.append(data[start:stop])
            elif pick == 1:
                pieces.append(None)
            else:
                pieces.append(_noise(rng, stop - start))
        start = stop
    while pieces and pieces[-1] is None:
        pieces.pop()  # nothing landed after these: the file ends before them
    start = synced
    for piece in pieces:
        length = min(end, (start // sector + 1) * sector) - start
        out += bytes([_ERASED]) * length if piece is None else piece
        start += length
    return bytes(out)
