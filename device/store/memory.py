"""``MemoryStore``: the store in RAM, for unit tests and the host simulation.

Nothing survives a restart. Lean enough for ``micropython -X heapsize=128k``:
the outbox is a list of ``bytearray`` chunks holding records end to end, each
a 21-byte header (seq, lane, created_ms, size) then the payload's compact
JSON. Per-record Python objects (tuple + bytes) cost ~140 bytes each on the
Unix port; this costs 21. Payloads are decoded only when read. Walking the
chunks is O(records), fine for the hundreds a device holds.

Layout, and why. A small heap dies of fragmentation, not of size: chunks
grown with ``extend`` and re-copied at varied sizes left ~21 KB free in holes
too small for the next block. So every chunk is allocated once, as
``bytearray(chunk_bytes)`` (a record bigger than that gets one of its own, of
its exact size; rare), and never resized: its used length lives in the
parallel list ``_fills``. Records are written with ``struct.pack_into`` and
same-length slice assignment. Removing records (ack from the front, dropped
telemetry from the middle) compacts the chunk in place, moving the bytes
after the cut down in pieces no longer than the cut, so no piece overlaps
itself and memmove semantics never matter.

Blocks are reserved early and recycled. Once a 128 KB device has run a
while, its free heap may be scattered in holes of a few hundred bytes, where
no new 1 KB block fits. So ``open()`` reserves the blocks the budget needs
(about ``1.25 * budget_bytes / chunk_bytes + 2``, at most
``MAX_RESERVE_CHUNKS``; as many as the heap gives, the rest come on demand)
and a chunk that empties or merges away goes back to that spare pool, not to
the heap. In steady state the outbox allocates nothing.

Bounded chunk count: a chunk whose fill drops to 0 is removed, except the
last (kept for reuse); after a removal, a chunk is merged into its
predecessor when both fills fit in one chunk. Any two neighbours then hold
more than a chunk between them, so there are at most about
``2 * live_bytes / chunk_bytes + 1`` chunks, whatever the pattern of events
left among dropped telemetry.

Budget: the outbox's payload bytes stay <= ``budget_bytes``. An append that
would go over drops the OLDEST telemetry records until it fits (counted in
``counters["dropped"]``, their seqs kept in ``dropped_ranges``). Events and
results are never dropped; if dropping every telemetry record would still not
make room, nothing is dropped and ``StoreFullError`` is raised (counted in
``counters["full_rejections"]``).
"""

import json
import struct

from device.compat import IS_MICROPYTHON, const
from device.errors import StoreFullError
from device.store.base import LANES, Record, StateEntry, Store, check_lane, check_origin, encode_json, encode_payload

RECORD_HEADER = "<qBqI"  # seq, lane index, created_ms, payload size
RECORD_HEADER_SIZE = const(21)
CHUNK_BYTES = 1024  # default chunk size; a record bigger than a chunk gets one of its own
_TELEMETRY = const(0)  # index of "telemetry" in LANES
MAX_DROPPED_RANGES = 16
MAX_RESERVE_CHUNKS = 16  # cap on blocks reserved and kept spare (a large budget grows on demand)


class MemoryStore(Store):
    def __init__(self, budget_bytes: int = 262144, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__()
        self.budget_bytes = budget_bytes
        self._chunk_bytes = chunk_bytes
        self._state: dict = {}
        # Fixed-size bytearrays of records in seq order, and how many bytes of
        # each are used. Only the last chunk may be empty.
        self._chunks: list = []
        self._fills: list = []
        # Free uniform blocks, used before allocating; at most _spare_max kept.
        self._spare: list = []
        self._spare_max = min((budget_bytes + budget_bytes // 4) // chunk_bytes + 2, MAX_RESERVE_CHUNKS)
        self._count = 0
        self._bytes = 0
        self._telemetry_bytes = 0
        self._next_seq = 1
        # [first_seq, last_seq] pairs, oldest first. A range may span events or
        # results that were (or still are) in the outbox; every telemetry seq in
        # it that never reached the reader was dropped (see _note_dropped).
        self.dropped_ranges: list = []

    async def open(self) -> None:
        # Reserve the outbox's blocks now, while the heap has room for them.
        spare = self._spare
        try:
            while len(spare) + len(self._chunks) < self._spare_max:
                spare.append(bytearray(self._chunk_bytes))
        except MemoryError:
            pass  # keep what the heap gave; later chunks are allocated when needed

    async def close(self) -> None:
        return None

    # -- state -------------------------------------------------------------

    async def get_state(self, key: str) -> StateEntry | None:
        return self._state.get(key)

    async def load_state(self) -> dict:
        out = {}
        for key in self._state:
            out[key] = self._state[key]
        return out

    async def put_state(self, key: str, value, origin: str = "local", now_ms: int = 0) -> StateEntry:  # type: ignore[no-untyped-def]
        check_origin(origin)
        # Keep a decoded copy: the caller may mutate its dict later, and a durable
        # backend would refuse what JSON cannot hold anyway.
        copy = json.loads(encode_json(value, "state %r" % (key,)))
        old = self._state.get(key)
        entry = StateEntry(key, copy, 1 if old is None else old.version + 1, origin, now_ms)
        self._state[key] = entry
        return entry

    # -- outbox ------------------------------------------------------------

    async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
        lane_index = check_lane(lane)
        data = encode_payload(payload)
        size = len(data)
        over = self._bytes + size - self.budget_bytes
        if over > 0:
            if over > self._telemetry_bytes:
                self.counters["full_rejections"] += 1
                raise StoreFullError(
                    "outbox full: a %d-byte %s record does not fit in the %d-byte budget "
                    "(%d bytes held, %d of them telemetry); ack records or raise storage.budget_bytes"
                    % (size, lane, self.budget_bytes, self._bytes, self._telemetry_bytes)
                )
            self._drop_oldest_telemetry(over)
        seq = self._next_seq
        self._next_seq = seq + 1
        chunks = self._chunks
        fills = self._fills
        length = RECORD_HEADER_SIZE + size
        if not chunks or fills[-1] + length > len(chunks[-1]):
            if chunks and not fills[-1]:
                # An empty chunk too small for an oversize record: replace it.
                self._release(chunks.pop())
                fills.pop()
            if length <= self._chunk_bytes and self._spare:
                chunks.append(self._spare.pop())
            else:
                chunks.append(bytearray(length if length > self._chunk_bytes else self._chunk_bytes))
            fills.append(0)
        chunk = chunks[-1]
        start = fills[-1]
        struct.pack_into(RECORD_HEADER, chunk, start, seq, lane_index, int(now_ms), size)
        start += RECORD_HEADER_SIZE
        chunk[start : start + size] = data  # same length: never resizes the chunk
        fills[-1] = start + size
        self._count += 1
        self._bytes += size
        if lane_index == _TELEMETRY:
            self._telemetry_bytes += size
        self.counters["appended"] += 1
        return seq

    async def read_outbox(self, limit: int) -> list:
        out: list = []
        if limit <= 0:
            return out
        chunks = self._chunks
        fills = self._fills
        for index in range(len(chunks)):
            chunk = chunks[index]
            # MicroPython's json.loads reads a memoryview without copying; CPython's wants bytes.
            view = memoryview(chunk) if IS_MICROPYTHON else chunk
            end = fills[index]
            offset = 0
            while offset < end:
                seq, lane_index, created_ms, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                start = offset + RECORD_HEADER_SIZE
                offset = start + size
                payload = json.loads(view[start:offset])  # type: ignore[arg-type,type-var]
                out.append(Record(seq, LANES[lane_index], created_ms, payload, size))
                if len(out) >= limit:
                    return out
        return out

    async def ack(self, upto_seq: int) -> int:
        chunks = self._chunks
        fills = self._fills
        count = 0
        freed = 0
        freed_telemetry = 0
        while chunks:
            chunk = chunks[0]
            end = fills[0]
            offset = 0
            while offset < end:
                seq, lane_index, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                if seq > upto_seq:
                    break
                count += 1
                freed += size
                if lane_index == _TELEMETRY:
                    freed_telemetry += size
                offset += RECORD_HEADER_SIZE + size
            if offset and offset >= end and len(chunks) > 1:
                self._release(chunks.pop(0))
                fills.pop(0)
                continue
            if offset:
                self._cut(0, 0, offset)
            break
        if count:
            self._count -= count
            self._bytes -= freed
            self._telemetry_bytes -= freed_telemetry
            self.counters["acked"] += count
        return count

    def depth(self) -> tuple:
        return (self._count, self._bytes)

    # -- chunks ------------------------------------------------------------

    def _cut(self, index: int, start: int, end: int) -> tuple:
        """Remove bytes ``start:end`` of chunk ``index`` in place, then merge neighbours.

        Returns ``(index, offset)``: where the byte that followed the cut now is
        (an offset at its chunk's fill means "the start of the next chunk").
        """
        chunks = self._chunks
        fills = self._fills
        chunk = chunks[index]
        fill = fills[index]
        gap = end - start
        if end < fill:
            view = memoryview(chunk)
            src = end
            while src < fill:
                step = fill - src
                if step > gap:
                    step = gap
                # Source and destination are `gap` apart and at most `gap` long: disjoint.
                chunk[src - gap : src - gap + step] = view[src : src + step]
                src += step
        fill -= gap
        fills[index] = fill
        if not fill and index < len(chunks) - 1:
            self._release(chunks.pop(index))
            fills.pop(index)
            start = 0  # what followed now starts the chunk that took this index
        # Chunk `index` shrank (or is the one after a removed chunk): only the
        # pairs (index - 1, index) and (index, index + 1) can now fit in one chunk.
        if index > 0 and self._fits(index - 1):
            start += fills[index - 1]
            self._merge(index - 1)
            index -= 1
        if index < len(chunks) - 1 and self._fits(index):
            self._merge(index)
        return index, start

    def _fits(self, index: int) -> bool:
        """Whether chunk ``index + 1`` fits after the bytes of chunk ``index``."""
        fills = self._fills
        after = fills[index + 1]
        if not after and index + 1 == len(fills) - 1:
            return False  # the empty last chunk is kept for the next append
        return fills[index] + after <= len(self._chunks[index])

    def _merge(self, index: int) -> None:
        """Copy chunk ``index + 1`` onto the end of chunk ``index`` and delete it."""
        chunks = self._chunks
        fills = self._fills
        fill = fills[index]
        moved = fills[index + 1]
        if moved:
            chunks[index][fill : fill + moved] = memoryview(chunks[index + 1])[:moved]
        fills[index] = fill + moved
        self._release(chunks.pop(index + 1))
        fills.pop(index + 1)

    def _release(self, chunk: bytearray) -> None:
        """Keep an unused uniform block for the next chunk; an oversize one goes back to the heap."""
        if len(chunk) == self._chunk_bytes and len(self._spare) < self._spare_max:
            self._spare.append(chunk)

    # -- budget ------------------------------------------------------------

    def _drop_oldest_telemetry(self, need: int) -> None:
        """Drop telemetry, oldest first, until ``need`` bytes are free (caller checked it can)."""
        chunks = self._chunks
        fills = self._fills
        index = 0
        offset = 0
        while need > 0:
            if offset >= fills[index]:
                index += 1
                offset = 0
                continue
            seq, lane_index, _, size = struct.unpack_from(RECORD_HEADER, chunks[index], offset)
            end = offset + RECORD_HEADER_SIZE + size
            if lane_index != _TELEMETRY:
                offset = end
                continue
            index, offset = self._cut(index, offset, end)
            need -= size
            self._count -= 1
            self._bytes -= size
            self._telemetry_bytes -= size
            self.counters["dropped"] += 1
            self._note_dropped(seq)

    def _note_dropped(self, seq: int) -> None:
        ranges = self.dropped_ranges
        if ranges:
            last = ranges[-1]
            # Extend the last range when every seq between it and this one is
            # still in the outbox (so they are events/results): the range stays exact.
            if seq == last[1] + 1 or self._count_between(last[1], seq) == seq - last[1] - 1:
                last[1] = seq
                return
        ranges.append([seq, seq])
        if len(ranges) > MAX_DROPPED_RANGES:
            # Bounded: fold the two oldest ranges into one. It may now cover
            # telemetry that was delivered; a report errs on "maybe missing".
            ranges[1][0] = ranges[0][0]
            del ranges[0]

    def _count_between(self, low: int, high: int) -> int:
        """How many outbox records have ``low < seq < high``."""
        count = 0
        chunks = self._chunks
        fills = self._fills
        for index in range(len(chunks)):
            chunk = chunks[index]
            end = fills[index]
            offset = 0
            while offset < end:
                seq, _, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                if seq >= high:
                    return count
                if seq > low:
                    count += 1
                offset += RECORD_HEADER_SIZE + size
        return count
