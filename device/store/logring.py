"""The ``log`` backend's ring of segment files: writing, syncing, recycling, recovering.

``SegmentRing`` owns the segment slots (``seg000`` ...), the one open head
segment, the outbox index (``logindex``) and the per-slot wear figures. The
store (``device.store.log``) decides *what* to write; the ring decides where,
keeps it durable and rebuilds everything from the files at open.

Rules that keep recovery exact (``logrecover`` reads every segment from the
oldest live generation on, in generation order, and replays it):

* Slots are freed oldest generation first, only once no live record is left
  in them (an ack removed them, or they were copied forward), and never the
  newest segment, whose checkpoint carries next seq and acked-up-to.
* A free slot is reused least recently used first (lowest generation), so
  while a freed segment's file survives, every newer one does too: whatever
  removed its records (an ack, a drop marker, a newer copy, an aggregate) is
  still read after it. Reading a freed segment again is therefore harmless,
  and checkpoints record the oldest generation in use to skip most of them.
* A segment is synced before its slot's data can be needed elsewhere: before
  the next one is started, and after records are copied out of a slot that
  is then freed.

Durability: every complete record write gets a ticket; ``synced`` is the
highest ticket known durable. A failed sync marks its range of tickets lost,
seals the segment (nothing is written after garbage) and sets ``resync``: the
store then rebuilds RAM from the medium, so RAM never claims what the flash
may not have.
"""

import struct

from device.compat import const
from device.store.logformat import (
    CHECKPOINT,
    CHECKPOINT_BODY,
    DROP,
    PERSISTED_COUNTERS,
    REC_HEADER,
    REC_HEADER_SIZE,
    RECORD,
    SCAN_WINDOW,
    SEG_HEADER_SIZE,
    SEGMENT_OVERHEAD,
    encode_segment_header,
    header_problem,
    pack_record_header,
    record_ok,
    seg_name,
)
from device.store.logindex import OutboxIndex

MIN_SEGMENT_BYTES = const(256)
MAX_NOTES = const(40)
_MAX_LOST = const(8)
_MAX_DOUBTFUL = const(64)


def ring_slots(budget_bytes: int, segment_bytes: int) -> int:
    """Nominal slot count: room for 1.5x the budget (record headers, folded leftovers) plus two spare."""
    usable = segment_bytes - SEGMENT_OVERHEAD
    need = (budget_bytes * 3 // 2 + usable - 1) // usable + 2
    return need if need > 3 else 3


class SegmentRing:
    def __init__(self, files, segment_bytes: int, slots: int, fsync: bool) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        self.segment_bytes = segment_bytes
        self.nominal = slots
        self.fsync = fsync
        self.index = OutboxIndex()
        self.next_seq = 1
        self.acked_upto = 0
        self.boot = 0  # boot id written into records and checkpoints
        self.max_boot = 0  # the largest boot id found on the medium
        self.uptime_ms = 0  # device uptime over all boots in the newest checkpoint read
        self.clock = None  # callable -> device uptime over all boots, for new checkpoints
        self.counters: dict = {}  # the store's counters: checkpoints carry them across reboots
        self.saved_counters: tuple | None = None  # the counters in the newest checkpoint read or written
        self.notes: list = []  # what recovery skipped, for people
        self.damage = 0  # unreadable byte ranges found by the last recovery
        self.gen: list = []  # slot -> generation of its segment (0: none, unknown or destroyed)
        self.size: list = []  # slot -> bytes in its file (-1: no file)
        self.starts: list = []  # slot -> segments ever started in it
        self.worn: list = []  # slot -> bytes written to it before its current segment
        self.ring: list = []  # slots in use, oldest generation first
        self.free: list = []  # free slots that have a file, least recently used (lowest generation) first
        self._unused = 0  # slots below this index that have no file were all taken already
        self.max_gen = 0
        self.head = -1  # slot open for appending; -1: the next write opens one
        self.resume = -1  # a clean newest segment found by recovery: the first write appends to it
        self.boot_bytes = 0  # bytes written to segments this boot
        self.ticket = 0  # complete record writes so far
        self.synced = 0  # every ticket <= synced is durable
        self.lost: list = []  # (lo, hi]: ticket ranges a failed sync may have lost
        self.doubtful: list = []  # seqs reported failed that may be on the medium: dropped in the next segment
        self.resync = False  # a sync failed: rebuild RAM from the medium before going on
        self._handle = None
        self._dirty = False
        self._reclaiming = False
        self._hbuf = bytearray(REC_HEADER_SIZE)
        self._cache_slot = -1
        self._cache_at = 0
        self._cache = b""

    # -- slot tables -------------------------------------------------------------

    def _grow(self, slot: int) -> None:
        while len(self.gen) <= slot:
            self.gen.append(0)
            self.size.append(-1)
            self.starts.append(0)
            self.worn.append(0)

    def slot_bytes(self, slot: int) -> int:
        """Bytes ever written to ``slot``."""
        size = self.size[slot]
        return self.worn[slot] + (size if size > 0 else 0)

    def note(self, text: str, count: bool = True) -> None:
        if count:
            self.damage += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        elif len(self.notes) == MAX_NOTES:
            self.notes.append("(more not listed)")

    def reset(self) -> None:
        """Forget the outbox and the ring (recovery rebuilds them from the files)."""
        self.index = OutboxIndex()
        self.ring = []
        self.free = []
        self.head = -1
        self.resume = -1
        self._cache_slot = -1
        self._unused = 0

    def grow(self, slot: int) -> None:
        self._grow(slot)

    # -- reading -------------------------------------------------------------------

    def load(self, slot: int, offset: int, length: int):  # type: ignore[no-untyped-def]
        """``length`` bytes of ``slot`` at ``offset`` (a memoryview), or None if the file is shorter."""
        if slot == self.head and self._dirty:
            self.sync()  # reads go around the write buffer: make it reach the file first
        rel = offset - self._cache_at
        cache = self._cache
        if slot != self._cache_slot or rel < 0 or rel + length > len(cache):
            want = length if length > SCAN_WINDOW else SCAN_WINDOW
            self._cache = cache = b""
            self._cache_slot = -1
            cache = self.files.read_at(seg_name(slot), offset, want)
            self._cache = cache
            self._cache_slot = slot
            self._cache_at = offset
            rel = 0
        if rel + length > len(cache):
            return None
        return memoryview(cache)[rel : rel + length]

    def raw_record(self, i: int):  # type: ignore[no-untyped-def]
        """The whole stored record of index entry ``i`` (a memoryview), or None if it fails its checks."""
        seq, lane, slot, offset, size = self.index.get(i)
        view = self.load(slot, offset, REC_HEADER_SIZE + size)
        if view is None or not record_ok(view, 0):
            return None
        kind, lane_h, length, seq_h, last, _, _, _ = struct.unpack_from(REC_HEADER, view, 0)
        if (
            kind != RECORD
            or seq_h != seq
            or length != size
            or lane_h != lane
            or header_problem(kind, lane_h, length, seq_h, last)
        ):
            return None
        return view

    # -- writing ---------------------------------------------------------------------

    def write(self, kind: int, lane: int, seq: int, last: int, boot: int, created_ms: int, body) -> tuple:  # type: ignore[no-untyped-def]
        """Append one record; ``(slot, offset)`` where it went. Raises OSError (the segment is then sealed)."""
        length = REC_HEADER_SIZE + len(body)
        self._room(length)
        pack_record_header(self._hbuf, kind, lane, seq, last, boot, created_ms, body)
        return self._put(self._hbuf, body, length)

    def write_raw(self, view) -> tuple:  # type: ignore[no-untyped-def]
        """Append a stored record as it is (copied forward); ``(slot, offset)``."""
        length = len(view)
        self._room(length)
        return self._put(view[:REC_HEADER_SIZE], view[REC_HEADER_SIZE:], length)

    def _put(self, header, body, length: int, record: bool = True) -> tuple:  # type: ignore[no-untyped-def]
        slot = self.head
        offset = self.size[slot]
        handle = self._handle
        try:
            handle.write(header)  # type: ignore[attr-defined]
            if len(body):
                handle.write(body)  # type: ignore[attr-defined]
        except OSError:
            self.abandon()
            raise
        self.size[slot] = offset + length
        self.boot_bytes += length
        self._dirty = True
        if record:
            self.ticket += 1
        return slot, offset

    def _room(self, length: int) -> None:
        """Make the head able to take ``length`` more bytes (a fresh segment takes any record)."""
        for _ in range(4):
            head = self.head
            if head >= 0:
                used = self.size[head]
                if used + length <= self.segment_bytes or used <= SEGMENT_OVERHEAD:
                    return
            elif self.resume >= 0 and not self.doubtful:  # refused seqs to drop: a new segment does it
                self._resume()
                continue
            self.start_segment()
        if self.head < 0:
            self.start_segment()
        # else: copies forward filled fresh segments; let this one run over its size

    def _resume(self) -> None:
        slot = self.resume
        self.resume = -1
        self._handle = self.files.open_append(seg_name(slot))
        self.head = slot

    def start_segment(self) -> None:
        """Seal the head and open a new segment in the least recently used free slot."""
        self.seal()
        self.free_dead_tails()
        slot, spare = self._pick_slot()
        gen = self.max_gen + 1
        tail_gen = self.gen[self.ring[0]] if self.ring else gen
        old = self.size[slot]
        new_file = old < 0
        if self._cache_slot == slot:
            self._cache_slot = -1
        try:
            handle = self.files.create(seg_name(slot))
        except OSError:
            self.free.insert(0, slot)  # nothing changed (or it is garbage now): first in line again
            self.gen[slot] = 0
            raise
        # The slot's old bytes are gone from here on.
        self.worn[slot] += old if old > 0 else 0
        self.size[slot] = 0
        self.gen[slot] = 0
        self.starts[slot] += 1
        self._handle = handle
        self.head = slot
        try:
            self._put(encode_segment_header(gen), b"", SEG_HEADER_SIZE, False)
        except OSError:
            self.free.insert(0, slot)
            raise
        # From here the slot is the newest segment: nothing below may start another before it is one.
        self.gen[slot] = gen
        self.max_gen = gen
        self.ring.append(slot)
        self.write_checkpoint(tail_gen, self.starts[slot], self.worn[slot])
        # Seqs whose append failed after their bytes may have reached the file: make sure they stay gone.
        fit = (self.segment_bytes - SEGMENT_OVERHEAD - REC_HEADER_SIZE) // 4
        part = self.doubtful[: fit if fit > 1 else 1]
        if part:
            self.write(DROP, 0, part[0], part[-1], self.boot, 0, struct.pack("<%dI" % len(part), *part))
        if self.fsync:
            self.sync()
            if new_file:
                try:
                    self.files.sync_dir()
                except OSError:
                    self.abandon()
                    raise
        if part:
            del self.doubtful[: len(part)]
        if not spare and not self._reclaiming and len(self.ring) > 1:
            self.reclaim_tail()

    def write_checkpoint(self, tail_gen: int = 0, starts: int = 0, worn: int = 0) -> None:
        """A checkpoint: first in each segment (with the slot's wear), and at close (counters)."""
        clock = self.clock
        uptime = clock() if clock is not None else self.uptime_ms  # type: ignore[operator]
        acked = self.acked_upto if self.acked_upto < self.next_seq else self.next_seq - 1
        counters = self.counters_now()
        body = struct.pack(CHECKPOINT_BODY, tail_gen, starts, worn, *counters)
        self.write(CHECKPOINT, 0, self.next_seq, acked, self.boot, uptime, body)
        self.saved_counters = counters

    def counters_now(self) -> tuple:
        values = []
        for name in PERSISTED_COUNTERS:
            values.append(self.counters.get(name, 0) & 0xFFFFFFFF)
        return tuple(values)

    def _next_unused(self) -> int:
        """The lowest slot below ``nominal`` that never had a file, or -1 (does not take it)."""
        slot = self._unused
        size = self.size
        while slot < self.nominal:
            if slot >= len(size) or size[slot] < 0:
                self._unused = slot
                return slot
            slot += 1
        self._unused = slot
        return -1

    def _pick_slot(self) -> tuple:
        """``(slot, spare)``: the free slot to use next, and whether another free one is left.

        Garbage first, then slots never used, then the least recently used:
        freed slots join ``free`` in generation order, so its head is the oldest.
        """
        free = self.free
        if free and self.gen[free[0]] == 0:
            slot = free.pop(0)
        else:
            slot = self._next_unused()
            if slot >= 0:
                self._unused = slot + 1
            elif free:
                slot = free.pop(0)
            else:
                # Every slot holds live records: the ring grows (tiny records outweigh their budget).
                slot = len(self.gen)
                self.note("ring full of live records: added slot %d" % slot, False)
        self._grow(slot)
        return slot, bool(free) or self._next_unused() >= 0

    # -- durability ------------------------------------------------------------------

    def sync(self) -> None:
        """Make every write so far durable. Raises OSError (the segment is then sealed)."""
        handle = self._handle
        if handle is None or not self._dirty:
            return
        try:
            handle.sync()
        except OSError:
            self.abandon()
            raise
        self._dirty = False
        self.synced = self.ticket

    def seal(self) -> None:
        """Sync and close the head: the next write starts a segment."""
        handle = self._handle
        if handle is None:
            return
        self.sync()
        self._handle = None
        self.head = -1
        try:
            handle.close()
        except OSError:
            pass  # synced already: nothing of ours is lost

    def abandon(self) -> None:
        """A write or sync failed: keep what is complete if a sync still works, never write here again."""
        handle = self._handle
        self._handle = None
        self.head = -1
        if handle is None:
            return
        if self._dirty:
            self._dirty = False
            try:
                handle.sync()
                self.synced = self.ticket
            except OSError:
                self.lost.append((self.synced, self.ticket))
                if len(self.lost) > _MAX_LOST:
                    self.lost.pop(0)
                self.resync = True
        try:
            handle.close()
        except OSError:
            pass

    def forget(self, seq: int) -> None:
        """An append of ``seq`` was reported failed: drop it in the next segment in case it reached the file."""
        doubtful = self.doubtful
        doubtful.append(seq)
        if len(doubtful) > _MAX_DOUBTFUL:
            doubtful.pop(0)  # bounded RAM on a long-full flash; the oldest were most likely torn anyway

    def durable(self, ticket: int) -> bool:
        if ticket > self.synced:
            return False
        for lo, hi in self.lost:
            if lo < ticket <= hi:
                return False
        return True

    def close(self) -> None:
        try:
            self.seal()
        finally:
            self.abandon()

    # -- recycling ---------------------------------------------------------------------

    def free_dead_tails(self) -> None:
        """Free the oldest segments that hold no live record (never the newest)."""
        ring = self.ring
        index = self.index
        while len(ring) > 1 and ring[0] != self.head and index.live_in(ring[0]) == 0:
            self.free.append(ring.pop(0))

    def reclaim_tail(self) -> None:
        """Copy the oldest segment's live records forward, sync them, then free its slot."""
        tail = self.ring[0]
        if tail == self.head:
            return
        index = self.index
        moves = []
        bad = []
        self._reclaiming = True
        try:
            for i in range(index.count):
                if index.slot_at(i) != tail:
                    continue
                view = self.raw_record(i)
                if view is None:
                    bad.append(i)
                    continue
                slot, offset = self.write_raw(view)
                moves.append((i, slot, offset))
            self.sync()
        finally:
            self._reclaiming = False
        for i, slot, offset in moves:
            index.move(i, slot, offset)
        for k in range(len(bad) - 1, -1, -1):
            seq = index.seq_at(bad[k])
            self.note("%s: record seq %d failed its CRC when copied forward; dropped" % (seg_name(tail), seq))
            index.delete(bad[k])
        self.free_dead_tails()
