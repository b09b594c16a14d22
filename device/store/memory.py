"""``MemoryStore``: the store in RAM, for unit tests and the host simulation.

Nothing survives a restart: every open is boot 1, and the state and inbox
hooks persist nothing. Lean enough for ``micropython -X heapsize=128k``: the
outbox is a list of ``bytearray`` chunks holding records end to end, each a
25-byte header (seq, lane, boot, created_ms, size) then the payload's compact
JSON. Per-record Python objects (tuple + bytes) cost ~140 bytes each on the
Unix port; this costs 25. Payloads are decoded only when read (or folded).
Walking the chunks is O(records), fine for the hundreds a device holds.

Layout, and why. A small heap dies of fragmentation, not of size: chunks
grown with ``extend`` and re-copied at varied sizes left ~21 KB free in holes
too small for the next block. So every chunk is allocated once, as
``bytearray(chunk_bytes)`` (a record bigger than that gets one of its own, of
its exact size; rare), and never resized: its used length lives in the
parallel list ``_fills``. Records are written with ``struct.pack_into`` and
same-length slice assignment. Removing records (ack from the front, acked
seqs or folded telemetry from the middle) compacts the chunk in place,
moving the bytes after the cut down in pieces no longer than the cut, so no
piece overlaps itself and memmove semantics never matter.

Blocks are reserved early and recycled. Once a 128 KB device has run a
while, its free heap may be scattered in holes of a few hundred bytes, where
no new 1 KB block fits. So ``open()`` reserves the blocks the budget needs
(about ``1.25 * budget_bytes / chunk_bytes + 2``, at most
``MAX_RESERVE_CHUNKS``; as many as the heap gives, the rest come on demand)
and a chunk that empties or merges away goes back to that spare pool, not to
the heap. In steady state the outbox allocates nothing.

Bounded chunk count: a chunk whose fill drops to 0 is removed, except the
last (kept for reuse); a chunk is merged into its predecessor when both
fills fit in one chunk. Any two neighbours then hold more than a chunk
between them, so there are at most about ``2 * live_bytes / chunk_bytes + 1``
chunks, whatever the pattern of events left among folded telemetry.

Budget (``device.store.retention``): an append that would take the payload
bytes past the high-water mark first folds runs of consecutive telemetry,
oldest first, until the bytes (with the new record) are down to the
low-water mark or nothing more folds. The aggregate takes its run's first
seq, boot and created_ms and replaces the run where it stood: it is smaller,
so it fits there, and the chunk is compacted behind it. (A run that crosses
chunks and whose aggregate does not fit the first one's room gets a chunk
of its own between them, then neighbours are merged.) Events and results
are never folded; a record that still does not fit the budget is refused
with ``StoreFullError``, counted in ``full_rejections``. The folding code
(``device.store.memoryfold``, with ``device.store.retention``) is imported on
the first fold: a device whose outbox is acked in time never loads it.
"""

import json
import struct

from device.compat import IS_MICROPYTHON, const
from device.errors import StoreError, StoreFullError
from device.store.base import (
    LANES,
    Record,
    Store,
    check_lane,
    encode_payload,
    high_water,
    lane_mask,
    low_water,
)

RECORD_HEADER = "<qBIqI"  # seq, lane index, boot, created_ms, payload size
RECORD_HEADER_SIZE = const(25)
CHUNK_BYTES = 1024  # default chunk size; a record bigger than a chunk gets one of its own
MAX_RESERVE_CHUNKS = 16  # cap on blocks reserved and kept spare (a large budget grows on demand)


class MemoryStore(Store):
    backend = "memory"

    def __init__(self, budget_bytes: int = 262144, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__(budget_bytes)
        self._chunk_bytes = chunk_bytes
        # Fixed-size bytearrays of records in seq order, and how many bytes of
        # each are used. Only the last chunk may be empty.
        self._chunks: list = []
        self._fills: list = []
        # Free uniform blocks, used before allocating; at most _spare_max kept.
        self._spare: list = []
        self._spare_max = min((budget_bytes + budget_bytes // 4) // chunk_bytes + 2, MAX_RESERVE_CHUNKS)
        self._count = 0
        self._bytes = 0
        self._next_seq = 1
        self._readonly = False

    async def open(self, readonly: bool = False) -> None:
        self.boot_id = 1  # nothing came before: every run of a RAM store is its first boot
        self._readonly = readonly
        if readonly:
            return
        # Reserve the outbox's blocks now, while the heap has room for them.
        spare = self._spare
        try:
            while len(spare) + len(self._chunks) < self._spare_max:
                spare.append(bytearray(self._chunk_bytes))
        except MemoryError:
            pass  # keep what the heap gave; later chunks are allocated when needed

    async def close(self) -> None:
        return None

    def _writable(self) -> None:
        if self._readonly:
            raise StoreError("the store was opened read-only (inspection): it takes no writes")

    # -- state and inbox: held by the base class, persisted nowhere ----------

    async def _persist_nothing(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """The state and inbox hooks: nothing is written, but a read-only store still refuses."""
        self._writable()

    _save_state = _save_inbox = _drop_inbox = _persist_nothing

    # -- outbox ------------------------------------------------------------

    async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
        lane_index = check_lane(lane)
        self._writable()
        data = encode_payload(payload)
        size = len(data)
        budget = self.budget_bytes
        if self._bytes + size > high_water(budget):
            self._fold_down(low_water(budget) - size)
        if self._bytes + size > budget:
            self.counters["full_rejections"] += 1
            raise StoreFullError(
                "outbox full: a %d-byte %s record does not fit in the %d-byte budget "
                "(%d bytes held after folding telemetry); ack records or raise storage.budget_bytes"
                % (size, lane, budget, self._bytes)
            )
        seq = self._next_seq
        self._next_seq = seq + 1
        chunks = self._chunks
        fills = self._fills
        length = RECORD_HEADER_SIZE + size
        index = len(chunks) - 1
        if index > 0 and not fills[index] and fills[index - 1] + length <= len(chunks[index - 1]):
            # A fold or an ack emptied the last chunk: fill the one before first, or the
            # two would end up holding what fits in one.
            index -= 1
        elif index < 0 or fills[index] + length > len(chunks[index]):
            if index >= 0 and not fills[index]:
                # An empty chunk too small for an oversize record: replace it.
                self._release(chunks.pop())
                fills.pop()
            chunks.append(self._new_chunk(length))
            fills.append(0)
            index = len(chunks) - 1
        fills[index] = write_record(chunks[index], fills[index], seq, lane_index, self.boot_id, int(now_ms), data)
        self._count += 1
        self._bytes += size
        self.counters["appended"] += 1
        return seq

    async def read_outbox(self, limit: int, after_seq: int = 0, lanes=None) -> list:  # type: ignore[no-untyped-def]
        mask = lane_mask(lanes)
        out: list = []
        if limit <= 0 or not mask:
            return out
        chunks = self._chunks
        fills = self._fills
        last = len(chunks) - 1
        for index in range(len(chunks)):
            # Skip a whole chunk when the next one starts at or before after_seq: every
            # seq in this one is smaller. A drain reading past a long backlog walks
            # chunk heads, not records.
            if index < last and fills[index + 1] and struct.unpack_from("<q", chunks[index + 1], 0)[0] <= after_seq:
                continue
            chunk = chunks[index]
            end = fills[index]
            offset = 0
            while offset < end:
                seq, lane_index, _, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                if seq > after_seq and mask & (1 << lane_index):
                    out.append(decode_record(chunk, offset))
                    if len(out) >= limit:
                        return out
                offset += RECORD_HEADER_SIZE + size
        return out

    async def ack(self, upto_seq: int) -> int:
        self._writable()
        chunks = self._chunks
        fills = self._fills
        count = 0
        freed = 0
        for index in range(len(chunks)):
            chunk = chunks[index]
            end = fills[index]
            offset = 0
            while offset < end:
                seq, _, _, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                if seq > upto_seq:
                    break
                count += 1
                freed += size
                offset += RECORD_HEADER_SIZE + size
            fills[index] = shift_down(chunk, 0, offset, end)
            if offset < end:
                break
        return self._removed(count, freed)

    async def ack_seqs(self, seqs: list) -> int:
        self._writable()
        if not seqs:
            return 0
        wanted = set(seqs)
        highest = max(wanted)
        chunks = self._chunks
        fills = self._fills
        count = 0
        freed = 0
        for index in range(len(chunks)):
            chunk = chunks[index]
            offset = 0
            while offset < fills[index]:
                seq, _, _, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
                if seq > highest:
                    return self._removed(count, freed)
                end = offset + RECORD_HEADER_SIZE + size
                if seq in wanted:
                    fills[index] = shift_down(chunk, offset, end, fills[index])
                    count += 1
                    freed += size
                else:
                    offset = end
        return self._removed(count, freed)

    def _removed(self, count: int, freed: int) -> int:
        if count:
            self._settle()
        self._count -= count
        self._bytes -= freed
        self.counters["acked"] += count
        return count

    async def compact(self) -> int:
        self._writable()
        budget = self.budget_bytes
        if self._bytes <= high_water(budget):
            return 0
        return self._fold_down(low_water(budget))

    def depth(self) -> tuple:
        return (self._count, self._bytes)

    def seq_range(self) -> tuple:
        if not self._count:
            return (None, None)
        chunks = self._chunks
        fills = self._fills
        first = struct.unpack_from(RECORD_HEADER, chunks[0], 0)[0]
        index = len(chunks) - 1
        if not fills[index]:
            index -= 1  # the empty last chunk kept for reuse
        chunk = chunks[index]
        offset = 0
        last = first
        while offset < fills[index]:
            last, _, _, _, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
            offset += RECORD_HEADER_SIZE + size
        return (first, last)

    def next_seq(self) -> int:
        return self._next_seq

    # -- retention ---------------------------------------------------------

    def _fold_down(self, target: int) -> int:
        """Fold telemetry runs, oldest first, until the payload bytes are <= ``target``; return samples folded away."""
        from device.store.memoryfold import fold_down

        return fold_down(self, target)

    # -- chunks ------------------------------------------------------------

    def _new_chunk(self, length: int) -> bytearray:
        if length <= self._chunk_bytes:
            if self._spare:
                return self._spare.pop()
            return bytearray(self._chunk_bytes)
        return bytearray(length)

    def _settle(self) -> None:
        """Drop empty chunks (but the last) and merge every neighbour pair that fits in one."""
        chunks = self._chunks
        fills = self._fills
        i = 0
        while i < len(chunks) - 1:
            if not fills[i]:
                self._release(chunks.pop(i))
                fills.pop(i)
            elif self._fits(i):
                self._merge(i)
            else:
                i += 1

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


def decode_record(chunk: bytearray, offset: int) -> Record:
    seq, lane_index, boot, created_ms, size = struct.unpack_from(RECORD_HEADER, chunk, offset)
    start = offset + RECORD_HEADER_SIZE
    # MicroPython's json.loads reads a memoryview without copying; CPython's wants bytes.
    view = memoryview(chunk) if IS_MICROPYTHON else chunk
    payload = json.loads(view[start : start + size])  # type: ignore[arg-type,type-var]
    return Record(seq, LANES[lane_index], boot, created_ms, payload, size)


def write_record(
    chunk: bytearray, offset: int, seq: int, lane_index: int, boot: int, created_ms: int, data: bytes
) -> int:
    """Write one record at ``offset``; return the offset after it."""
    struct.pack_into(RECORD_HEADER, chunk, offset, seq, lane_index, boot, created_ms, len(data))
    offset += RECORD_HEADER_SIZE
    chunk[offset : offset + len(data)] = data  # same length: never resizes the chunk
    return offset + len(data)


def shift_down(chunk: bytearray, dest: int, src: int, fill: int) -> int:
    """Move bytes ``src:fill`` of ``chunk`` down to ``dest``; return the new fill."""
    gap = src - dest
    if gap <= 0:
        return fill
    view = memoryview(chunk)
    while src < fill:
        step = fill - src
        if step > gap:
            step = gap
        # Source and destination are `gap` apart and at most `gap` long: disjoint.
        chunk[src - gap : src - gap + step] = view[src : src + step]
        src += step
    return fill - gap
