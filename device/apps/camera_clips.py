"""Where the camera keeps its clips: a RAM ring, or files on flash; and the upload source over either.

Both keepers record the same way: ``begin(clip_id, max_data_bytes)``, one
``write(frame)`` per frame, then ``finish(meta)`` (``abort()`` gives up);
both serve the upload through ``get`` / ``next_after`` (``device.link.bulk``
items) and report ``stats()``. ``settings["clip_store"]`` (resolved by
``device.apps.camera_settings``) picks one:

* ``"ram"`` (``RamClips``): boards without a file store (storage backend
  ``memory``); frames are copied into RAM until the clip ends, and a reboot
  loses the clips.
* ``"files"`` (``device.store.clipfiles.FileClips``): one file per clip under
  ``settings["clip_dir"]``; the RAM holds only the pre-roll, and clips (with
  the upload progress in the state cache) survive a reboot.
"""

from device.core.clipring import ClipRing


def sha256_hex(data) -> str:  # type: ignore[no-untyped-def]
    import hashlib
    from binascii import hexlify

    return hexlify(hashlib.sha256(data).digest()).decode()


class RamClips:
    """Clips in RAM under the ring's byte budget (the oldest evicted first, never the newest)."""

    kind = "ram"

    def __init__(self, budget_bytes: int) -> None:
        self.ring = ClipRing(budget_bytes)
        self.dropped = 0
        self._frames: list | None = None
        self._clip_id = 0

    def open(self) -> int:
        return 0  # nothing survives a reboot

    def begin(self, clip_id: int, max_data_bytes: int) -> bool:
        self._frames = []
        self._clip_id = clip_id
        return True

    def recording(self) -> bool:
        return self._frames is not None

    def write(self, frame) -> None:  # type: ignore[no-untyped-def]
        if self._frames is not None:
            self._frames.append(bytes(frame))

    def finish(self, meta: dict) -> bool:
        frames = self._frames
        self._frames = None
        if not frames:
            return False
        data = b"".join(frames)
        meta["size"] = len(data)
        meta["sha256"] = sha256_hex(data)
        try:
            self.ring.add(self._clip_id, data, meta)
        except ValueError:
            self.dropped += 1  # bigger than the whole budget (the settings check prevents it)
            return False
        return True

    def abort(self) -> None:
        self._frames = None

    def get(self, clip_id: int):  # type: ignore[no-untyped-def]
        clip = self.ring.get(clip_id)
        if clip is None:
            return None
        return clip.clip_id, clip.data, clip.meta["sha256"], clip.meta

    def next_after(self, clip_id: int):  # type: ignore[no-untyped-def]
        clip = self.ring.next_after(clip_id)
        if clip is None:
            return None
        return clip.clip_id, clip.data, clip.meta["sha256"], clip.meta

    def data(self, clip_id: int) -> bytes | None:
        clip = self.ring.get(clip_id)
        return None if clip is None else clip.data

    def stats(self) -> dict:
        out = self.ring.stats()
        out["store"] = self.kind
        out["dropped"] = self.dropped
        return out


def open_clips(settings: dict):  # type: ignore[no-untyped-def]
    """The clip keeper ``settings["clip_store"]`` names (not yet opened: call ``open()``)."""
    if settings["clip_store"] == "files":
        from device.store.clipfiles import FileClips
        from device.store.fileio import Files

        return FileClips(Files(settings["clip_dir"]), settings["clip_budget_bytes"])
    return RamClips(settings["clip_budget_bytes"])


class ClipSource:
    """What ``device.link.bulk.BulkSender`` uploads: this camera's clips, oldest first.

    Items are ``(id, data, sha256 hex, meta)``; from files ``data`` is the
    clip's size and ``read(id, off, n)`` gives its bytes.
    """

    name = "camera"
    kind = "clip"  # the topic: bp/{dev}/clip/{id}

    def __init__(self, clips, chunk_bytes: int) -> None:  # type: ignore[no-untyped-def]
        self.clips = clips
        self.chunk_bytes = chunk_bytes

    def next_after(self, item_id: int):  # type: ignore[no-untyped-def]
        return self.clips.next_after(item_id)

    def get(self, item_id: int):  # type: ignore[no-untyped-def]
        return self.clips.get(item_id)

    def read(self, item_id: int, off: int, n: int) -> bytes:
        return self.clips.read(item_id, off, n)  # type: ignore[no-any-return]
