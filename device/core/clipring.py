"""A ring of event clips under a byte budget: the oldest clips go first, never the newest.

``ClipRing(budget_bytes)`` holds clips in RAM (the host simulation, and small
boards whose clips are a few KB). A clip costs ``len(data) + CLIP_OVERHEAD``
bytes of the budget (its metadata and book-keeping). ``add`` evicts the
oldest clips until the new one fits, so the ring never holds more than the
budget and the clip just added is always kept; a clip bigger than the whole
budget is refused (``ValueError``): the camera settings check at config time
that one clip fits.

A board with a file store keeps one file per clip instead
(``device.store.clipfiles``): this module is then the bookkeeping alone (ids
oldest first, sizes, eviction order), ``Clip.data`` is None and ``size``
counts the clip's bytes on flash. ``make_room`` evicts before a clip is
written, so the files never hold more than the budget, even mid-write.
"""

CLIP_OVERHEAD = 64


class Clip:
    def __init__(self, clip_id: int, data, meta: dict, size: int = -1) -> None:  # type: ignore[no-untyped-def]
        self.clip_id = clip_id
        self.data = data  # None when the clip lives in a file
        self.meta = meta
        self.size = len(data) if size < 0 else size
        self.cost = self.size + CLIP_OVERHEAD


class ClipRing:
    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= CLIP_OVERHEAD:
            raise ValueError("budget_bytes must be above %d" % CLIP_OVERHEAD)
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._clips: list = []  # oldest first; clip ids increase
        self.added = 0
        self.evicted = 0
        self.evicted_ids: list = []  # the last few, for reports
        self.refused = 0

    def fits(self, data_len: int) -> bool:
        return data_len + CLIP_OVERHEAD <= self.budget_bytes

    def add(self, clip_id: int, data, meta: dict, size: int = -1) -> list:  # type: ignore[no-untyped-def]
        """Keep a new clip (ids must increase); return the ids evicted to make room.

        ``data`` None with ``size``: book a clip kept elsewhere (a file) of ``size`` bytes.
        """
        clip = Clip(clip_id, data, meta, size)
        if clip.cost > self.budget_bytes:
            self.refused += 1
            raise ValueError("clip of %d bytes exceeds the ring's budget of %d" % (clip.size, self.budget_bytes))
        if self._clips and clip_id <= self._clips[-1].clip_id:
            raise ValueError("clip ids must increase")
        gone = self.make_room(clip.cost)
        self._clips.append(clip)
        self.used_bytes += clip.cost
        self.added += 1
        return gone

    def make_room(self, cost: int) -> list:
        """Evict the oldest clips until ``cost`` more bytes fit; return their ids."""
        gone = []
        while self._clips and self.used_bytes + cost > self.budget_bytes:
            old = self._clips.pop(0)
            self.used_bytes -= old.cost
            gone.append(old.clip_id)
        self.evicted += len(gone)
        if gone:
            self.evicted_ids = (self.evicted_ids + gone)[-8:]
        return gone

    def get(self, clip_id: int) -> Clip | None:
        for clip in self._clips:
            if clip.clip_id == clip_id:
                return clip  # type: ignore[no-any-return]
        return None

    def next_after(self, clip_id: int) -> Clip | None:
        """The oldest clip with an id above ``clip_id`` (what to upload next)."""
        for clip in self._clips:
            if clip.clip_id > clip_id:
                return clip  # type: ignore[no-any-return]
        return None

    def ids(self) -> list:
        return [clip.clip_id for clip in self._clips]

    def newest(self) -> Clip | None:
        return self._clips[-1] if self._clips else None

    def __len__(self) -> int:
        return len(self._clips)

    def stats(self) -> dict:
        return {
            "clips": len(self._clips),
            "used_bytes": self.used_bytes,
            "budget_bytes": self.budget_bytes,
            "added": self.added,
            "evicted": self.evicted,
            "refused": self.refused,
        }
