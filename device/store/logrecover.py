"""Recovery of the ``log`` backend: rebuild the ring and the outbox index from the segment files.

``recover(ring, names)`` reads the start of every segment file (header and
start checkpoint: generation, oldest generation still in use, the slot's
wear), then replays the segments from that oldest generation on, in
generation order, record by record:

* a record (or an aggregate, or a copy) replaces every entry with a seq in
  its ``seq .. last`` written before it;
* a drop marker removes its seqs; ack markers and checkpoints raise
  acked-up-to (applied at the end: nothing with a seq at or below it lives);
* checkpoints raise next seq, carry the counters and the device uptime.

The first record that fails its checks ends its segment: the rest of that
segment is skipped and noted with its byte range; recovery goes on with the
next segment. Bad data never raises; an OSError reading a file is noted and
that file skipped. See ``logring`` for why replaying freed segments that are
still on flash is harmless.
"""

import struct

from device.store.logformat import (
    CHECKPOINT,
    CHECKPOINT_BODY,
    CHECKPOINT_BODY_SIZE,
    DROP,
    PERSISTED_COUNTERS,
    REC_HEADER_SIZE,
    RECORD,
    SEG_HEADER_SIZE,
    SEGMENT_OVERHEAD,
    SegmentScanner,
    decode_segment_header,
    header_problem,
    parse_seg_name,
    record_ok,
    seg_name,
)


def _is_start_checkpoint(head, at: int) -> bool:  # type: ignore[no-untyped-def]
    if len(head) < at + REC_HEADER_SIZE + CHECKPOINT_BODY_SIZE:
        return False
    kind, lane, length, seq, last = struct.unpack_from("<BBIII", head, at)
    return kind == CHECKPOINT and not header_problem(kind, lane, length, seq, last) and record_ok(head, at)


class _Replay:
    def __init__(self, ring) -> None:  # type: ignore[no-untyped-def]
        self.ring = ring
        self.max_seq = 0
        self.checkpoint_seq = 0  # next seq in the newest checkpoint replayed so far
        self.appends_since = 0  # new appends after that checkpoint (its counters do not have them)

    def read_start(self, slot: int) -> int:
        """Check a segment's header and start checkpoint, load the slot's wear; its tail generation or -1."""
        ring = self.ring
        name = seg_name(slot)
        size = ring.files.size(name)
        ring.size[slot] = size
        ring.gen[slot] = 0
        if size == 0:
            ring.note("%s: empty file (a segment start cut short); slot free again" % name)
            return -1
        head = ring.files.read_at(name, 0, SEGMENT_OVERHEAD)
        gen = decode_segment_header(head)
        if gen < 0:
            ring.note("%s: no valid segment header; skipped bytes 0..%d" % (name, size))
            return -1
        ring.gen[slot] = gen
        if gen > ring.max_gen:
            ring.max_gen = gen
        at = SEG_HEADER_SIZE
        if not _is_start_checkpoint(head, at):
            ring.note("%s (generation %d): start checkpoint damaged; skipped bytes %d..%d" % (name, gen, at, size))
            return -1
        tail_gen, starts, worn = struct.unpack_from(CHECKPOINT_BODY, head, at + REC_HEADER_SIZE)[:3]
        # The slot's own history, written when it was started: survives reboots with the slot.
        if starts > ring.starts[slot]:
            ring.starts[slot] = starts
        if worn > ring.worn[slot]:
            ring.worn[slot] = worn
        return tail_gen  # type: ignore[no-any-return]

    def scan(self, slot: int) -> bool:
        """Replay one segment into the index; stop at its first bad record. True if it ends cleanly."""
        ring = self.ring
        name = seg_name(slot)
        size = ring.size[slot]
        scanner = SegmentScanner(ring.files, name, size)
        index = ring.index
        while True:
            try:
                item = scanner.next()
            except OSError as exc:
                scanner.error = "read error (%s)" % (exc,)
                item = None
            if item is None:
                break
            offset, kind, lane, seq, last, boot, created_ms, body = item
            if boot > ring.max_boot:
                ring.max_boot = boot
            if kind == RECORD:
                if last > self.max_seq:
                    self.max_seq = last
                if seq >= self.checkpoint_seq and seq == last:
                    self.appends_since += 1  # a new append, not a copy or an aggregate
                i = index.find(seq)
                # An aggregate (or a newer copy) replaces what it covers that was written before it.
                index.delete(i, index.find(last + 1) - i)
                index.insert(i, seq, lane, slot, offset, len(body))
            elif kind == DROP:
                for k in range(0, len(body), 4):
                    i = index.position(struct.unpack_from("<I", body, k)[0])
                    if i >= 0:
                        index.delete(i)
            else:  # ACK or CHECKPOINT: last = acked up to
                if kind == CHECKPOINT:
                    if seq > ring.next_seq:
                        ring.next_seq = seq
                    if created_ms > ring.uptime_ms:
                        ring.uptime_ms = created_ms
                    ring.saved_counters = struct.unpack_from(CHECKPOINT_BODY, body, 0)[3:]
                    self.checkpoint_seq = seq
                    self.appends_since = 0
                if last > ring.acked_upto:
                    ring.acked_upto = last
        if scanner.error:
            ring.note(
                "%s (generation %d): %s at byte %d; skipped bytes %d..%d"
                % (name, ring.gen[slot], scanner.error, scanner.end, scanner.end, size)
            )
            return False
        return True


def recover(ring, names: list) -> dict:  # type: ignore[no-untyped-def]
    """Rebuild ``ring`` (index, slots, seqs) from the segment files among ``names``.

    Returns the counters as the newest checkpoint left them, plus the appends
    made after it (``{}`` when there is no checkpoint).
    """
    ring.reset()
    found = []
    for name in names:
        slot = parse_seg_name(name)
        if slot >= 0:
            ring.grow(slot)
            found.append(slot)
    present = bytearray(len(ring.gen))
    for slot in found:
        present[slot] = 1
    for slot in range(len(ring.gen)):
        if not present[slot]:
            ring.size[slot] = -1
            ring.gen[slot] = 0
    replay = _Replay(ring)
    segments = []
    floor = 0
    for slot in found:
        try:
            tail_gen = replay.read_start(slot)
        except OSError as exc:
            ring.note("%s: unreadable (%s); skipped" % (seg_name(slot), exc))
            tail_gen = -1
        if tail_gen >= 0:
            segments.append((ring.gen[slot], slot))
            if tail_gen > floor:
                floor = tail_gen
    segments.sort()
    clean = False
    in_ring = bytearray(len(ring.gen))
    for gen, slot in segments:
        if gen >= floor:  # older ones were freed before the newest checkpoint was written
            ring.ring.append(slot)
            in_ring[slot] = 1
            clean = replay.scan(slot)
    free = []
    for slot in found:
        if not in_ring[slot]:
            free.append((ring.gen[slot], slot))
    free.sort()  # garbage (generation 0) first, then least recently used
    ring.free = [slot for _, slot in free]
    if clean and ring.size[ring.ring[-1]] + REC_HEADER_SIZE < ring.segment_bytes:
        ring.resume = ring.ring[-1]  # the newest segment ends cleanly: go on appending to it
    index = ring.index
    index.delete(0, index.find(ring.acked_upto + 1))
    for seq in ring.doubtful:
        i = index.position(seq)
        if i >= 0:
            index.delete(i)
    if replay.max_seq >= ring.next_seq:
        ring.next_seq = replay.max_seq + 1
    if ring.acked_upto >= ring.next_seq:
        ring.next_seq = ring.acked_upto + 1
    ring.free_dead_tails()  # segments freed after the last checkpoint was written
    counters: dict = {}
    saved = ring.saved_counters
    if saved is not None:
        for k in range(len(PERSISTED_COUNTERS)):
            counters[PERSISTED_COUNTERS[k]] = saved[k]
        counters["appended"] += replay.appends_since
    return counters
