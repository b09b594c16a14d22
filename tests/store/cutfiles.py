"""A simulated flash medium for the ``log`` backend: power cuts at any byte, and a full disk.

``CutFiles`` is a ``device.store.fileio.Files`` kept entirely in memory, so a
test can run thousands of power cuts in seconds. It models what the backend
may rely on (see ``device/store/fileio.py``) and no more:

* **Ticks.** Every byte written is one tick; every other change to the medium
  (create, sync, remove, rename, directory sync) is one tick too. With
  ``cut_at=k`` the first ``k`` ticks happen and the operation that would take
  the k+1-th is torn: a write keeps only the bytes before the cut, any other
  operation does not happen. ``PowerCut`` is raised, and from then on every
  call raises it (the CPU is gone). Cutting at every ``k`` in ``0..ticks``
  therefore visits every byte boundary and every boundary between operations.
* **Durability.** A file's bytes are durable once its handle was ``sync()``-ed.
  Directory changes (a new file, a remove, a rename) are durable after
  ``sync_dir()``, or once a later file sync commits them (journaled
  filesystems commit metadata in order; a synced new file does not vanish).
* **Crash.** ``crash(rng)`` returns the medium as it is after power comes
  back: the directory ops still pending are applied up to a random point (in
  order); each file keeps its synced bytes plus a random prefix (none, some,
  all) of its un-synced tail. So ``replace`` is atomic (old or new content),
  and a file created but never synced may vanish or come back empty or short.
* **Full disk.** With ``capacity`` set, a write that would take the live
  files past that many bytes writes what fits (or nothing, with
  ``partial_enospc=False``) and raises ``OSError(28)``. Raise or clear
  ``capacity`` to "free space".

``PowerCut`` derives from ``BaseException`` on purpose: no ``except
Exception``/``except OSError`` in the backend may swallow the end of the world.
"""

import random

from device.store.fileio import FileHandle, Files

ENOSPC = 28
_ENOENT = 2


class PowerCut(BaseException):
    """The power went out mid-operation; nothing more happens on this medium."""


class _Inode:
    """One file's bytes: ``data`` as reads see it, the first ``synced`` of them durable."""

    __slots__ = ("data", "synced")

    def __init__(self, data: bytes = b"", synced: int = 0) -> None:
        self.data = bytearray(data)
        self.synced = synced


class CutHandle(FileHandle):
    def __init__(self, files: "CutFiles", inode: _Inode) -> None:
        super().__init__(None)
        self._files = files
        self._inode = inode
        self._closed = False

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        files = self._files
        files._alive()
        if self._closed:
            raise ValueError("write to a closed handle")
        data = bytes(data)
        fit = files._room(len(data))
        allowed = files._spend(len(data[:fit]), partial=True)
        self._inode.data += data[:allowed]
        files.bytes_written += allowed
        if allowed < fit:
            raise PowerCut("power cut after %d ticks" % files.ticks)
        if fit < len(data):
            files.enospc_errors += 1
            raise OSError(ENOSPC, "No space left on device")

    def sync(self) -> None:
        files = self._files
        files._alive()
        files._spend(1)
        files.syncs += 1
        self._inode.synced = len(self._inode.data)
        files._commit_dir_through(self._inode)

    def close(self) -> None:
        self._files._alive()
        self._closed = True


class CutFiles(Files):
    """An in-memory medium with power cuts and a byte capacity. See the module docstring."""

    def __init__(
        self,
        cut_at: int | None = None,
        capacity: int | None = None,
        partial_enospc: bool = True,
        root: str = "mem",
    ) -> None:
        super().__init__(root)
        self.cut_at = cut_at
        self.capacity = capacity
        self.partial_enospc = partial_enospc
        self.ticks = 0
        self.bytes_written = 0
        self.syncs = 0
        self.enospc_errors = 0
        self.dead = False
        self._dir: dict = {}  # name -> _Inode, as reads see it
        self._durable_dir: dict = {}  # name -> _Inode, as it would be after a crash with no pending op applied
        self._pending: list = []  # ("link", name, inode) | ("unlink", name) | ("rename", src, dst), oldest first

    # -- the medium ------------------------------------------------------------

    @classmethod
    def from_image(cls, image: dict, **kwargs) -> "CutFiles":  # type: ignore[no-untyped-def]
        """A medium whose files (``{name: bytes}``) are all durable."""
        files = cls(**kwargs)
        for name, data in image.items():
            inode = _Inode(data, len(data))
            files._dir[name] = inode
            files._durable_dir[name] = inode
        return files

    def image(self) -> dict:
        """``{name: bytes}`` as reads see them now."""
        return {name: bytes(self._dir[name].data) for name in self._dir}

    def crash(self, rng: random.Random, junk: bool = False) -> "CutFiles":
        """The medium after the power comes back (a new, un-cut ``CutFiles``); see the module docstring.

        ``junk``: a file whose tail was not all synced may also end in up to 64
        bytes of zeros or noise after the kept prefix (a half-programmed flash
        page, a file size committed before its data).
        """
        durable = dict(self._durable_dir)
        applied = _some(rng, len(self._pending))
        for op in self._pending[:applied]:
            _apply(durable, op)
        image = {}
        for name, inode in durable.items():
            tail = len(inode.data) - inode.synced
            kept = bytes(inode.data[: inode.synced + _some(rng, tail)])
            if junk and tail and rng.randrange(2):
                n = rng.randrange(1, 65)
                kept += bytes(n) if rng.randrange(2) else bytes(rng.randrange(256) for _ in range(n))
            image[name] = kept
        return CutFiles.from_image(image)

    def materialize(self, root: str) -> Files:
        """Write the current files into directory ``root`` and return plain ``Files`` over it."""
        files = Files(root)
        files.make_root()
        for name in self._dir:
            with open(files.path(name), "wb") as f:
                f.write(self._dir[name].data)
        return files

    def poke(self, name: str, data: bytes) -> None:
        """Test hook: make ``name`` hold ``data``, durably, without ticks (damage, a stray file)."""
        inode = _Inode(data, len(data))
        self._dir[name] = inode
        self._durable_dir[name] = inode
        self._pending = [op for op in self._pending if name not in op[1:]]

    def used_bytes(self) -> int:
        return sum(len(inode.data) for inode in self._dir.values())

    # -- bookkeeping -------------------------------------------------------------

    def _alive(self) -> None:
        if self.dead:
            raise PowerCut("the power is off")

    def _spend(self, ticks: int, partial: bool = False) -> int:
        """Take ``ticks`` from the budget before the cut; return how many happen (all, or up to the cut)."""
        if self.cut_at is not None and self.ticks + ticks > self.cut_at:
            allowed = self.cut_at - self.ticks
            self.ticks = self.cut_at
            self.dead = True
            if not partial:
                raise PowerCut("power cut after %d ticks" % self.ticks)
            return allowed
        self.ticks += ticks
        return ticks

    def _room(self, wanted: int) -> int:
        """How many of ``wanted`` bytes fit under the capacity."""
        if self.capacity is None:
            return wanted
        free = self.capacity - self.used_bytes()
        if free >= wanted:
            return wanted
        if not self.partial_enospc:
            return 0
        return free if free > 0 else 0

    def _dir_op(self, op: tuple) -> None:
        self._spend(1)
        _apply(self._dir, op)
        self._pending.append(op)

    def _commit_dir_through(self, inode: _Inode) -> None:
        """A file sync also commits the directory ops up to the one that linked this file."""
        last = -1
        for i in range(len(self._pending)):
            op = self._pending[i]
            if op[0] == "link" and op[2] is inode:
                last = i
        if last >= 0:
            self._commit(last + 1)

    def _commit(self, count: int) -> None:
        for op in self._pending[:count]:
            _apply(self._durable_dir, op)
        del self._pending[:count]

    def _inode(self, name: str) -> _Inode:
        inode = self._dir.get(name)
        if inode is None:
            raise OSError(_ENOENT, "No such file: %s" % name)
        return inode

    # -- the Files interface -------------------------------------------------------

    def make_root(self) -> None:
        self._alive()

    def listdir(self) -> list:
        self._alive()
        return sorted(self._dir)

    def exists(self, name: str) -> bool:
        self._alive()
        return name in self._dir

    def size(self, name: str) -> int:
        self._alive()
        return len(self._inode(name).data)

    def read(self, name: str) -> bytes:
        self._alive()
        return bytes(self._inode(name).data)

    def read_at(self, name: str, offset: int, length: int) -> bytes:
        self._alive()
        return bytes(self._inode(name).data[offset : offset + length])

    def open_append(self, name: str) -> FileHandle:
        self._alive()
        inode = self._dir.get(name)
        if inode is None:
            inode = _Inode()
            self._dir_op(("link", name, inode))
        return CutHandle(self, inode)

    def create(self, name: str) -> FileHandle:
        # A truncate is modelled as a new file linked over the old: after a
        # crash the name holds the old bytes or (a prefix of) the new ones.
        self._alive()
        inode = _Inode()
        self._dir_op(("link", name, inode))
        return CutHandle(self, inode)

    def replace(self, name: str, data: bytes) -> None:
        # The same steps as Files.replace, each a tick: temp file, write, sync, rename, dir sync.
        self._alive()
        tmp = name + ".tmp"
        handle = self.create(tmp)
        handle.write(data)
        handle.sync()
        handle.close()
        self._dir_op(("rename", tmp, name))
        self.sync_dir()

    def remove(self, name: str) -> None:
        self._alive()
        if name in self._dir:
            self._dir_op(("unlink", name))

    def sync_dir(self) -> None:
        self._alive()
        self._spend(1)
        self._commit(len(self._pending))


def _apply(directory: dict, op: tuple) -> None:
    kind = op[0]
    if kind == "link":
        directory[op[1]] = op[2]
    elif kind == "unlink":
        directory.pop(op[1], None)
    else:
        inode = directory.pop(op[1], None)
        if inode is not None:
            directory[op[2]] = inode


def _some(rng: random.Random, n: int) -> int:
    """None, all, or a random part of ``n``: each a third of the time."""
    if n <= 0:
        return 0
    pick = rng.randrange(3)
    if pick == 0:
        return 0
    if pick == 1:
        return n
    return rng.randrange(n + 1)
