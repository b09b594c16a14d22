"""Event clips on flash: one file per clip under a byte budget; torn files are dropped, never uploaded.

A directory (``device.store.fileio.Files``) holds ``<id>.clip`` files, whole
clips, and at most one ``<id>.tmp``, the clip being recorded. Frames are
written to the temp file as they are captured (the RAM holds the pre-roll
only); at the end come the metadata and a footer, then sync, rename to
``<id>.clip`` and a directory sync. A clip file is::

    frames (meta["size"] bytes) | meta as JSON | b"BPCL" + JSON length as 8 hex digits

so its data starts at offset 0 and the upload reads chunks straight from it.

* **Budget.** ``device.core.clipring.ClipRing`` does the bookkeeping: a clip
  costs its file size plus ``CLIP_OVERHEAD``. ``begin`` evicts (deletes) the
  oldest files until the largest clip it may become fits, and ``finish``
  again for its real size before the metadata is written: the files never
  hold more than the budget, the temp file included; the newest is never evicted.
* **Crash safety.** ``open`` (at boot) deletes every ``.tmp`` (a clip cut by
  a power loss) and checks every ``.clip``: footer, metadata, size and
  sha256 of the frames. A file that fails (torn, truncated, junk) is deleted
  and counted in ``torn``; only whole clips are offered for upload.
* **Full flash.** An ``OSError`` while recording (ENOSPC, EIO) drops that
  clip: the temp file is removed, ``dropped`` counts it, ``last_errno`` says
  why, and the caller goes on (its event record is already in the outbox).

Loaded only by boards whose camera keeps clips in files (``clip_store``).
"""

import hashlib
import json
from binascii import hexlify

from device.core.clipring import CLIP_OVERHEAD, ClipRing
from device.store.fileio import name_number

MAGIC = b"BPCL"
FOOTER_BYTES = 12  # MAGIC + 8 hex digits
META_MAX = 256  # room the metadata may take; the settings check a whole clip fits with it
SUFFIX = ".clip"
TMP_SUFFIX = ".tmp"
_HASH_PIECE = 1024


def _parse_id(name: str, suffix: str) -> int:
    """The clip id of ``<id><suffix>``, or -1."""
    if not name.endswith(suffix):
        return -1
    return name_number(name[: len(name) - len(suffix)])


class FileClips:
    """The clip files of one camera; ``ring`` is their bookkeeping. See the module docstring."""

    kind = "files"

    def __init__(self, files, budget_bytes: int) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        self.ring = ClipRing(budget_bytes)
        self.torn = 0  # files found broken at open, deleted
        self.loaded = 0  # whole clips found at open
        self.dropped = 0  # clips lost to a write error (full flash)
        self.last_errno = 0
        self._handle = None
        self._clip_id = 0
        self._hash: object = None  # hashlib.sha256 of the clip being recorded
        self._written = 0

    # -- boot -------------------------------------------------------------------

    def open(self) -> int:
        """Scan the directory: drop torn files, book whole clips oldest first. Returns the largest id seen."""
        self.files.make_root()
        top = 0
        found = []
        for name in self.files.listdir():
            tmp_id = _parse_id(name, TMP_SUFFIX)
            if tmp_id >= 0:
                self._remove(name)  # recording was cut: never complete
                self.torn += 1
                top = max(top, tmp_id)
                continue
            clip_id = _parse_id(name, SUFFIX)
            if clip_id < 0:
                continue
            top = max(top, clip_id)
            checked = self._check(name)
            if checked is None:
                self._remove(name)
                self.torn += 1
            else:
                found.append((clip_id, checked[0], checked[1]))
        found.sort(key=lambda entry: entry[0])
        for clip_id, file_size, meta in found:
            if self.ring.fits(file_size):
                for gone in self.ring.add(clip_id, None, meta, file_size):
                    self._remove(self._name(gone))  # the budget shrank since they were written
            else:
                self._remove(self._name(clip_id))
        self.loaded = len(self.ring)
        self.ring.added = 0  # ``added`` counts clips recorded in this boot; ``loaded`` the ones found
        return top

    def _check(self, name: str):  # type: ignore[no-untyped-def]
        """``(file size, meta)`` of a whole clip file, or None if it is torn or damaged."""
        try:
            size = self.files.size(name)
            if size < FOOTER_BYTES:
                return None
            footer = self.files.read_at(name, size - FOOTER_BYTES, FOOTER_BYTES)
            if footer[:4] != MAGIC:
                return None
            meta_len = int(footer[4:].decode(), 16)
            data_len = size - FOOTER_BYTES - meta_len
            if meta_len <= 0 or data_len < 0:
                return None
            meta = json.loads(self.files.read_at(name, data_len, meta_len))
            if not isinstance(meta, dict) or meta.get("size") != data_len:
                return None
            digest = hashlib.sha256()
            off = 0
            while off < data_len:
                piece = self.files.read_at(name, off, min(_HASH_PIECE, data_len - off))
                if not piece:
                    return None
                digest.update(piece)
                off += len(piece)
            if hexlify(digest.digest()).decode() != meta.get("sha256"):
                return None
        except (OSError, ValueError, UnicodeError):
            return None
        return size, meta

    # -- recording --------------------------------------------------------------

    def begin(self, clip_id: int, max_data_bytes: int) -> bool:
        """Start clip ``clip_id`` of at most ``max_data_bytes`` frames; False if it cannot be kept."""
        self.abort()
        cost = max_data_bytes + META_MAX + FOOTER_BYTES + CLIP_OVERHEAD
        if cost > self.ring.budget_bytes:
            self.ring.refused += 1
            return False
        self._evict(self.ring.make_room(cost))
        try:
            self._handle = self.files.create(self._tmp(clip_id))
        except OSError as exc:
            self._failed(exc)
            return False
        self._clip_id = clip_id
        self._hash = hashlib.sha256()
        self._written = 0
        return True

    def recording(self) -> bool:
        return self._handle is not None

    def write(self, frame) -> None:  # type: ignore[no-untyped-def]
        """Append one frame to the clip being recorded (a no-op when none is)."""
        handle = self._handle
        if handle is None:
            return
        try:
            handle.write(frame)
        except OSError as exc:
            self._failed(exc)
            return
        self._hash.update(frame)  # type: ignore[attr-defined]
        self._written += len(frame)

    def finish(self, meta: dict) -> bool:
        """Seal the clip: metadata, footer, sync, rename. True once it is whole on flash."""
        handle = self._handle
        if handle is None:
            return False
        meta["size"] = self._written
        meta["sha256"] = hexlify(self._hash.digest()).decode()  # type: ignore[attr-defined]
        line = json.dumps(meta).encode()
        file_size = self._written + len(line) + FOOTER_BYTES
        clip_id = self._clip_id
        if not self.ring.fits(file_size):
            self.ring.refused += 1
            self.abort()
            return False
        self._evict(self.ring.make_room(file_size + CLIP_OVERHEAD))
        try:
            handle.write(line)
            handle.write(MAGIC + ("%08x" % len(line)).encode())
            handle.sync()
            handle.close()
            self._handle = None
            self.files.rename(self._tmp(clip_id), self._name(clip_id))
            self.files.sync_dir()
        except OSError as exc:
            self._failed(exc)
            self._remove(self._name(clip_id))  # renamed but not made durable: not booked, so not kept
            return False
        self.ring.add(clip_id, None, meta, file_size)
        return True

    def abort(self) -> None:
        """Give up the clip being recorded (if any): close and delete its temp file."""
        handle = self._handle
        if handle is None:
            return
        self._handle = None
        try:
            handle.close()
        except OSError:
            pass
        self._remove(self._tmp(self._clip_id))

    def _failed(self, exc: OSError) -> None:
        self.dropped += 1
        self.last_errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        self.abort()
        self._remove(self._tmp(self._clip_id))  # the handle was already closed (a failed rename)

    # -- upload -------------------------------------------------------------------

    def get(self, clip_id: int):  # type: ignore[no-untyped-def]
        """``(id, data bytes, sha256 hex, meta)`` of a whole clip, or None (evicted)."""
        clip = self.ring.get(clip_id)
        if clip is None:
            return None
        return clip.clip_id, clip.meta["size"], clip.meta["sha256"], clip.meta

    def next_after(self, clip_id: int):  # type: ignore[no-untyped-def]
        clip = self.ring.next_after(clip_id)
        if clip is None:
            return None
        return clip.clip_id, clip.meta["size"], clip.meta["sha256"], clip.meta

    def read(self, clip_id: int, off: int, n: int) -> bytes:
        """``n`` bytes of the clip's frames from ``off``; OSError once its file is gone."""
        clip = self.ring.get(clip_id)
        if clip is None:
            raise OSError(2, "clip %d evicted" % clip_id)
        n = min(n, clip.meta["size"] - off)
        data = self.files.read_at(self._name(clip_id), off, n)
        if len(data) != n:
            raise OSError(5, "clip %d is short" % clip_id)
        return data

    def data(self, clip_id: int) -> bytes | None:
        """A whole clip's frames (tests, tools)."""
        clip = self.ring.get(clip_id)
        return None if clip is None else self.read(clip_id, 0, clip.meta["size"])

    def stats(self) -> dict:
        out = self.ring.stats()
        out["store"] = self.kind
        out["loaded"] = self.loaded
        out["torn"] = self.torn
        out["dropped"] = self.dropped
        out["last_errno"] = self.last_errno
        return out

    # -- names --------------------------------------------------------------------

    def _name(self, clip_id: int) -> str:
        return str(clip_id) + SUFFIX

    def _tmp(self, clip_id: int) -> str:
        return str(clip_id) + TMP_SUFFIX

    def _evict(self, ids: list) -> None:
        for clip_id in ids:
            self._remove(self._name(clip_id))

    def _remove(self, name: str) -> None:
        try:
            self.files.remove(name)
        except OSError:
            pass  # gone already; a file that will not go is found again at the next open
