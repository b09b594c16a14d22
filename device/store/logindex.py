"""The ``log`` backend's outbox index: where each live record sits, in seq order, in small chunks.

Payloads stay on flash; RAM holds 15 bytes per live record (seq, lane, slot,
offset, payload size) packed end to end and sorted by seq, so reading the
outbox oldest first is a walk and finding a seq is a binary search. A Python
tuple per record would cost ~10x that on MicroPython.

The entries live in fixed chunks of ``CHUNK`` entries (960 bytes), never one
big buffer: on a 128 KB heap that has run a while, a free block of 15 KB may
not exist while 40 KB are free in pieces. A full chunk splits in two; a
chunk that empties goes to a small spare pool; neighbours that fit in one
chunk merge, so there are at most ``2 * count / CHUNK + 1`` chunks. Moves
inside a chunk are one slice assignment (MicroPython and CPython both
memmove overlapping slices of the same buffer).

Positions (``i``) are global, ``0 .. count-1``. The chunk of the last lookup
is remembered, so walking positions in order costs O(1) per step.

It also keeps what the store asks about all the time: record count, payload
bytes, and live records per segment slot (a slot with none left may be
recycled).
"""

import struct

from device.compat import const

ENTRY = "<IBHII"  # seq, lane index, slot, offset in the segment file, payload size
ENTRY_SIZE = const(15)
CHUNK = const(64)  # entries per chunk
_CHUNK_BYTES = const(960)  # CHUNK * ENTRY_SIZE
_SPARE = const(2)  # empty chunks kept for reuse


class OutboxIndex:
    def __init__(self) -> None:
        self._chunks: list = []
        self._fills: list = []  # entries used in each chunk
        self._spare: list = []
        self._at_chunk = 0  # the chunk of the last lookup ...
        self._at_base = 0  # ... and the position of its first entry
        self.count = 0
        self.bytes = 0  # payload bytes of every entry
        self.slot_live: list = []  # slot -> entries in it

    # -- finding ---------------------------------------------------------------

    def _locate(self, i: int) -> tuple:
        """``(chunk, entry in it)`` of position ``i`` (``0 <= i < count``)."""
        k = self._at_chunk
        base = self._at_base
        fills = self._fills
        if k >= len(fills) or i < base:
            k = 0
            base = 0
        while i >= base + fills[k]:
            base += fills[k]
            k += 1
        self._at_chunk = k
        self._at_base = base
        return k, i - base

    def _forget(self) -> None:
        self._at_chunk = 0
        self._at_base = 0

    def get(self, i: int) -> tuple:
        """``(seq, lane, slot, offset, size)`` of entry ``i``."""
        k, j = self._locate(i)
        return struct.unpack_from(ENTRY, self._chunks[k], j * ENTRY_SIZE)

    def seq_at(self, i: int) -> int:
        k, j = self._locate(i)
        return struct.unpack_from("<I", self._chunks[k], j * ENTRY_SIZE)[0]  # type: ignore[no-any-return]

    def lane_at(self, i: int) -> int:
        k, j = self._locate(i)
        return self._chunks[k][j * ENTRY_SIZE + 4]  # type: ignore[no-any-return]

    def slot_at(self, i: int) -> int:
        k, j = self._locate(i)
        return struct.unpack_from("<H", self._chunks[k], j * ENTRY_SIZE + 5)[0]  # type: ignore[no-any-return]

    def find(self, seq: int) -> int:
        """Position of the first entry with a seq >= ``seq`` (``count`` if none)."""
        chunks = self._chunks
        fills = self._fills
        # The first chunk whose last seq is >= seq (binary search over chunks) ...
        lo = 0
        hi = len(chunks)
        while lo < hi:
            mid = (lo + hi) // 2
            last = struct.unpack_from("<I", chunks[mid], (fills[mid] - 1) * ENTRY_SIZE)[0]
            if last < seq:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(chunks):
            return self.count
        base = 0
        for k in range(lo):
            base += fills[k]
        # ... then the entry inside it.
        chunk = chunks[lo]
        a = 0
        b = fills[lo]
        while a < b:
            mid = (a + b) // 2
            if struct.unpack_from("<I", chunk, mid * ENTRY_SIZE)[0] < seq:
                a = mid + 1
            else:
                b = mid
        return base + a

    def position(self, seq: int) -> int:
        """Position of the entry with exactly ``seq``, or -1."""
        i = self.find(seq)
        if i < self.count and self.seq_at(i) == seq:
            return i
        return -1

    def live_in(self, slot: int) -> int:
        return self.slot_live[slot] if slot < len(self.slot_live) else 0  # type: ignore[no-any-return]

    # -- changing ------------------------------------------------------------

    def _count_slot(self, slot: int, delta: int) -> None:
        live = self.slot_live
        while len(live) <= slot:
            live.append(0)
        live[slot] += delta

    def _new_chunk(self) -> bytearray:
        if self._spare:
            return self._spare.pop()  # type: ignore[no-any-return]
        return bytearray(_CHUNK_BYTES)

    def insert(self, i: int, seq: int, lane: int, slot: int, offset: int, size: int) -> None:
        """Put a new entry at position ``i`` (the caller keeps seq order)."""
        chunks = self._chunks
        fills = self._fills
        if i >= self.count:
            k = len(chunks) - 1
            if k < 0 or fills[k] == CHUNK:
                chunks.append(self._new_chunk())
                fills.append(0)
                k += 1
            j = fills[k]
        else:
            k, j = self._locate(i)
            if fills[k] == CHUNK:
                # Split the full chunk in two halves.
                half = CHUNK // 2
                upper = self._new_chunk()
                upper[: half * ENTRY_SIZE] = memoryview(chunks[k])[half * ENTRY_SIZE :]
                chunks.insert(k + 1, upper)
                fills.insert(k + 1, CHUNK - half)
                fills[k] = half
                if j > half:
                    k += 1
                    j -= half
        chunk = chunks[k]
        at = j * ENTRY_SIZE
        used = fills[k] * ENTRY_SIZE
        if at < used:
            chunk[at + ENTRY_SIZE : used + ENTRY_SIZE] = memoryview(chunk)[at:used]
        struct.pack_into(ENTRY, chunk, at, seq, lane, slot, offset, size)
        fills[k] += 1
        self._forget()
        self.count += 1
        self.bytes += size
        self._count_slot(slot, 1)

    def append(self, seq: int, lane: int, slot: int, offset: int, size: int) -> None:
        self.insert(self.count, seq, lane, slot, offset, size)

    def move(self, i: int, slot: int, offset: int) -> None:
        """Entry ``i`` now lives at ``slot``/``offset`` (copied forward, same bytes)."""
        k, j = self._locate(i)
        seq, lane, old_slot, _, size = struct.unpack_from(ENTRY, self._chunks[k], j * ENTRY_SIZE)
        struct.pack_into(ENTRY, self._chunks[k], j * ENTRY_SIZE, seq, lane, slot, offset, size)
        self._count_slot(old_slot, -1)
        self._count_slot(slot, 1)

    def replace(self, i: int, lane: int, slot: int, offset: int, size: int) -> None:
        """Entry ``i`` keeps its seq but now is another record (an aggregate, a newer copy)."""
        k, j = self._locate(i)
        seq, _, old_slot, _, old_size = struct.unpack_from(ENTRY, self._chunks[k], j * ENTRY_SIZE)
        struct.pack_into(ENTRY, self._chunks[k], j * ENTRY_SIZE, seq, lane, slot, offset, size)
        self.bytes += size - old_size
        self._count_slot(old_slot, -1)
        self._count_slot(slot, 1)

    def delete(self, i: int, n: int = 1) -> None:
        """Remove entries ``i .. i+n-1``."""
        while n > 0:
            k, j = self._locate(i)
            chunk = self._chunks[k]
            fill = self._fills[k]
            take = fill - j if fill - j < n else n
            for e in range(j, j + take):
                _, _, slot, _, size = struct.unpack_from(ENTRY, chunk, e * ENTRY_SIZE)
                self.bytes -= size
                self._count_slot(slot, -1)
            end = (j + take) * ENTRY_SIZE
            used = fill * ENTRY_SIZE
            if end < used:
                chunk[j * ENTRY_SIZE : used - take * ENTRY_SIZE] = memoryview(chunk)[end:used]
            self._fills[k] = fill - take
            self.count -= take
            n -= take
            self._tidy(k)

    def _tidy(self, k: int) -> None:
        """After chunk ``k`` shrank: drop it if empty, or merge it with a neighbour it fits with."""
        chunks = self._chunks
        fills = self._fills
        self._forget()
        if not fills[k]:
            self._release(chunks.pop(k))
            fills.pop(k)
            return
        if k + 1 < len(chunks) and fills[k] + fills[k + 1] <= CHUNK:
            self._merge(k)
        elif k > 0 and fills[k - 1] + fills[k] <= CHUNK:
            self._merge(k - 1)

    def _merge(self, k: int) -> None:
        """Move chunk ``k + 1``'s entries onto the end of chunk ``k``."""
        chunks = self._chunks
        fills = self._fills
        at = fills[k] * ENTRY_SIZE
        moved = fills[k + 1] * ENTRY_SIZE
        chunks[k][at : at + moved] = memoryview(chunks[k + 1])[:moved]
        fills[k] += fills[k + 1]
        self._release(chunks.pop(k + 1))
        fills.pop(k + 1)

    def _release(self, chunk: bytearray) -> None:
        if len(self._spare) < _SPARE:
            self._spare.append(chunk)
