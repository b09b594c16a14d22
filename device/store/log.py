"""``LogStore``: the store on flash as append-only segment files, for MicroPython boards and CPython.

Every byte goes through a ``device.store.fileio.Files`` (tests swap in one
that cuts the power or fills up). Files in the store's directory:

* ``seg000`` ... ``segNNN``: a ring of segment slots (``logring``), records
  in the format of ``logformat``: a 16-byte segment header (magic, version,
  generation), then records with a 30-byte header (kind, lane, length, seq,
  last, boot, created_ms, CRC32 over header and body). Kinds: outbox
  record (an aggregate is a record whose ``last`` > ``seq``), ack marker
  (acked up to a seq, so acks are durable without rewriting), drop marker
  (``ack_seqs``), checkpoint (next seq, acked-up-to, boot, device uptime,
  the slot's wear; first in every segment, so seqs survive reboots even
  after every old segment was recycled).
* ``state.json``: state entries and inbox, one snapshot replaced atomically
  (temp + rename) on every ``put_state``/inbox change: after a power cut it
  is the old snapshot or the new one (``logstate``).
* ``boot.N``: an empty file naming the last boot id: counting a boot writes
  no data, so it works on a full flash too.

Slot count: room for 1.5x ``budget_bytes`` (record headers, folded
leftovers) plus two spare, at least 3 (``logring.ring_slots``): the budget
counts payload bytes as the contract says, so the ring is larger than the
budget. If tiny records make live data outgrow it, the ring adds slots.

Writes go to the head segment; a full head is synced and sealed and the next
segment takes the least recently used free slot (writes spread evenly over
the ring). The oldest segments are freed as soon as all their records are
acked; when no spare slot is left, the oldest segment's live records are
copied forward verbatim, synced, and its slot freed. Retention is the
contract's (``device.store.retention``), triggered by the payload budget
exactly as on every backend: the aggregate is appended at the head with the
run's first seq and replaces the run (the index is sorted by seq, so the
outbox reads in seq order wherever its records sit on flash).

RAM: payloads stay on flash; the index holds 15 bytes per live record
(``logindex``) and reads go through one 1 KB window.

Durability (``fsync=True``): an append or ack returns after a sync covering
its record. By default it syncs before returning without ever suspending
(a single writer needs no event loop). With ``group_commit=True`` appends
made in the same event-loop turn share one sync (``_durable``): the first
yields once so the others can write, syncs, and each is told only after it.
A write or sync the medium refuses (ENOSPC, EIO) counts ``write_errors``,
raises ``StoreWriteError`` and seals the segment (nothing lands after
garbage); if a sync failed, RAM is rebuilt from the files (``logrecover``)
before the next operation, and seqs of appends reported failed go into a
drop marker in the next segment, so they can never reappear.

Counters other than ``corrupt_skipped`` (what this open found) are kept
across reboots in checkpoints, and a checkpoint is written at ``close``.

Recovery (``open``): segments from the oldest generation still in use, in
generation order; each record's CRC is checked; the first bad or torn record
ends that segment (counted in ``corrupt_skipped``, with a note of the byte
range skipped in ``recovery`` and ``stats()["log"]["recovery"]``) and
recovery goes on with the next segment. A damaged newest segment is not
appended to again. Garbage files, truncated headers, flipped bytes,
zero-length segments, a missing or corrupt ``state.json`` (state and inbox
then start empty, reported) never make ``open`` raise.

Flash wear (``stats()["wear"]``, ``wear()``): bytes written per slot and
erase-equivalents (bytes / ``erase_block_bytes`` + one erase per segment
started in the slot), their max and mean, and the lifetime projected at the
rate seen over the device's uptime (kept in checkpoints across boots). Slot
history lives in each segment's checkpoint, so it survives reboots.
"""

import asyncio
import json
import struct

from device.compat import IS_MICROPYTHON, monotonic_ms, release_modules
from device.errors import StoreError, StoreFullError, StoreWriteError
from device.store.base import (
    LANES,
    Record,
    StateEntry,
    Store,
    check_lane,
    encode_json,
    encode_payload,
    lane_mask,
    low_water,
    over_high_water,
)
from device.store.logformat import ACK, DROP, REC_HEADER, REC_HEADER_SIZE, RECORD, SEGMENT_OVERHEAD, seg_name
from device.store.logring import MIN_SEGMENT_BYTES, SegmentRing, ring_slots
from device.store.logstate import STATE_FILE, frame_snapshot

# Loaded on first use, not kept from boot (a 128 KiB heap): the open path (``logopen``, released
# after open), recovery (at open and after a write error, released after), the folding code
# (``logfold`` and ``retention``, at the first fold), wear figures (for ``stats``).


def recover(ring, names: list) -> dict:  # type: ignore[no-untyped-def]
    from device.store.logrecover import recover as _recover

    try:
        return _recover(ring, names)  # type: ignore[no-any-return]
    finally:
        release_modules(("device.store.logrecover",))  # its code goes back to the heap until needed again


class _Batch:
    """Appends waiting for one shared sync."""

    def __init__(self) -> None:
        self.done = asyncio.Event()


class LogStore(Store):
    backend = "log"

    def __init__(  # type: ignore[no-untyped-def]
        self,
        files,
        budget_bytes: int = 262144,
        fsync: bool = True,
        segment_bytes: int = 4096,
        erase_block_bytes: int = 4096,
        erase_cycles: int = 100000,
        clock=None,
        group_commit: bool = False,
    ) -> None:
        super().__init__(budget_bytes)
        if segment_bytes < MIN_SEGMENT_BYTES:
            raise StoreError("segment_bytes %d is too small: use at least %d" % (segment_bytes, MIN_SEGMENT_BYTES))
        self.files = files
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self.erase_block_bytes = erase_block_bytes
        self.erase_cycles = erase_cycles
        self.group_commit = group_commit
        self.readonly = False
        self._clock = clock if clock is not None else monotonic_ms  # monotonic ms, for the wear rate
        self._opened_at = 0
        self._uptime_base = 0
        self._open = False
        self._state_bytes = 0  # state snapshot bytes written, over the device's life
        self._state_boot_bytes = 0
        self._batch: _Batch | None = None
        self._errno = 0
        self._ring = SegmentRing(files, segment_bytes, ring_slots(budget_bytes, segment_bytes), fsync)
        self._ring.clock = self._uptime_ms  # type: ignore[assignment]
        self._ring.counters = self.counters
        self.recovery = self._ring.notes  # what recovery skipped, for people (also in stats)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self, readonly: bool = False) -> None:
        # The open path runs once per boot: its code (device.store.logopen) goes back to the heap.
        from device.store.logopen import open_log

        try:
            open_log(self, readonly)
        finally:
            release_modules(("device.store.logopen",))

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        ring = self._ring
        if not self.readonly and ring.counters_now() != ring.saved_counters:
            try:
                ring.write_checkpoint()  # the counters, for the next boot and for inspection
            except OSError as exc:
                ring.note("counters not saved at close: %s" % (exc,), False)  # everything promised is synced
        try:
            ring.close()
        except OSError as exc:
            raise self._medium_error(exc, "close the store") from None

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError("the store was opened read-only (inspection): it takes no writes")
        self._readable()

    def _readable(self) -> None:
        if not self._open:
            raise StoreError("the log store is not open: await store.open() first")
        ring = self._ring
        if ring.resync:
            # A sync failed: what RAM says may not be on flash. Believe the flash.
            try:
                recover(ring, self.files.listdir())
            except OSError as exc:
                raise StoreError("log store: could not reread the flash after a write error: %s" % (exc,)) from None
            ring.damage = 0
            ring.resync = False

    def _medium_error(self, exc: OSError, what: str) -> StoreWriteError:
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
        self.counters["write_errors"] += 1
        self._errno = errno
        return StoreWriteError("log store: could not %s: %s" % (what, exc), errno)

    # -- state and inbox: one snapshot file ---------------------------------------------

    def _snapshot(self, entry=None, add=None, evict=None, drop=None) -> bytes:  # type: ignore[no-untyped-def]
        state = []
        for key in self._state:
            if entry is None or key != entry.key:
                old = self._state[key]
                state.append([key, old.value, old.version, old.origin, old.stamp])
        if entry is not None:
            state.append([entry.key, entry.value, entry.version, entry.origin, entry.stamp])
        inbox = []
        for cid in self._inbox:
            if cid != evict and (drop is None or cid not in drop):
                inbox.append([cid, self._inbox[cid]])
        if add is not None:
            inbox.append(add)
        snap = {"boot": self.boot_id, "state": state, "inbox": inbox, "wear_bytes": self._state_bytes}
        return encode_json(snap, "state snapshot")

    def _write_snapshot(self, body: bytes) -> None:
        data = frame_snapshot(body)
        try:
            self.files.replace(STATE_FILE, data)
        except OSError as exc:
            raise self._medium_error(exc, "save the state snapshot") from None
        self._state_bytes += len(data)
        self._state_boot_bytes += len(data)

    async def _save_state(self, entry: StateEntry, value_json: bytes) -> None:
        self._writable()
        self._write_snapshot(self._snapshot(entry=entry))

    async def _save_inbox(self, command_id: str, expires_ms: int, evict: str | None) -> None:
        self._writable()
        self._write_snapshot(self._snapshot(add=[command_id, expires_ms], evict=evict))

    async def _drop_inbox(self, command_ids: list) -> None:
        self._writable()
        drop = {}
        for cid in command_ids:
            drop[cid] = True
        self._write_snapshot(self._snapshot(drop=drop))

    # -- outbox ------------------------------------------------------------------------

    async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
        self._writable()
        lane_index = check_lane(lane)
        data = encode_payload(payload)
        size = len(data)
        ring = self._ring
        seq = 0
        try:
            self._make_room(size)
            seq = ring.next_seq
            ring.next_seq = seq + 1  # used even if the write fails: a seq is never handed out twice
            slot, offset = ring.write(RECORD, lane_index, seq, seq, self.boot_id, int(now_ms), data)
        except OSError as exc:
            if seq:
                ring.forget(seq)  # torn, most likely; but a buffered file may still complete it
            raise self._medium_error(exc, "append a %s record" % lane) from None
        ticket = ring.ticket
        index = ring.index
        index.append(seq, lane_index, slot, offset, size)
        self.counters["appended"] += 1
        try:
            await self._durable(ticket)
        except StoreWriteError:
            self.counters["appended"] -= 1
            ring.forget(seq)
            i = index.position(seq)
            if i >= 0 and index.get(i)[2:4] == (slot, offset):
                index.delete(i)
            raise
        return seq

    def _make_room(self, size: int) -> None:
        budget = self.budget_bytes
        index = self._ring.index
        if over_high_water(index.bytes, size, budget):
            self._fold_down(low_water(budget) - size)
        if index.bytes + size > budget:
            self.counters["full_rejections"] += 1
            raise StoreFullError(
                "outbox full: a %d-byte record does not fit in the %d-byte budget (%d bytes held, "
                "no telemetry left to fold); ack records or raise storage.budget_bytes" % (size, budget, index.bytes)
            )

    async def read_outbox(self, limit: int, after_seq: int = 0, lanes=None) -> list:  # type: ignore[no-untyped-def]
        self._readable()
        mask = lane_mask(lanes)
        index = self._ring.index
        out: list = []
        if limit <= 0 or not mask:
            return out
        i = index.find(after_seq + 1)  # a binary search: acked records are not walked
        try:
            while i < index.count and len(out) < limit:
                if not mask & (1 << index.lane_at(i)):
                    i += 1  # another lane: skipped in RAM, its bytes stay on flash
                    continue
                record = self._record(i)
                if record is None:
                    self._drop_corrupt(i)
                    continue
                out.append(record)
                i += 1
        except OSError as exc:
            raise StoreError("log store: could not read the outbox: %s" % (exc,)) from None
        return out

    async def ack(self, upto_seq: int) -> int:
        self._writable()
        ring = self._ring
        index = ring.index
        if not index.count or index.seq_at(0) > upto_seq:
            return 0
        upto = upto_seq if upto_seq < ring.next_seq else ring.next_seq - 1
        try:
            ring.write(ACK, 0, upto, upto, self.boot_id, 0, b"")
        except OSError as exc:
            raise self._medium_error(exc, "record an ack") from None
        ticket = ring.ticket
        n = index.find(upto + 1)
        index.delete(0, n)
        if upto > ring.acked_upto:
            ring.acked_upto = upto
        self.counters["acked"] += n
        ring.free_dead_tails()
        await self._durable(ticket)
        return n

    async def ack_seqs(self, seqs: list) -> int:
        self._writable()
        ring = self._ring
        index = ring.index
        present = {}
        for seq in seqs:
            if isinstance(seq, int) and index.position(seq) >= 0:
                present[seq] = True
        if not present:
            return 0
        order = sorted(present)
        fit = (self.segment_bytes - SEGMENT_OVERHEAD - REC_HEADER_SIZE) // 4
        removed = 0
        ticket = 0
        for k in range(0, len(order), fit):
            part = order[k : k + fit]
            try:
                ring.write(DROP, 0, part[0], part[-1], self.boot_id, 0, struct.pack("<%dI" % len(part), *part))
            except OSError as exc:
                raise self._medium_error(exc, "record an ack") from None
            ticket = ring.ticket
            for seq in part:
                i = index.position(seq)
                if i >= 0:
                    index.delete(i)
                    removed += 1
                    self.counters["acked"] += 1
        ring.free_dead_tails()
        await self._durable(ticket)
        return removed

    async def compact(self) -> int:
        self._writable()
        budget = self.budget_bytes
        ring = self._ring
        if not over_high_water(ring.index.bytes, 0, budget):
            return 0
        try:
            folded = self._fold_down(low_water(budget))
        except OSError as exc:
            raise self._medium_error(exc, "write an aggregate") from None
        if folded:
            await self._durable(ring.ticket)
        return folded

    def depth(self) -> tuple:
        index = self._ring.index
        return (index.count, index.bytes)

    def seq_range(self) -> tuple:
        index = self._ring.index
        if not index.count:
            return (None, None)
        return (index.seq_at(0), index.seq_at(index.count - 1))

    def next_seq(self) -> int:
        return self._ring.next_seq  # type: ignore[no-any-return]

    # -- reading records back ----------------------------------------------------------

    def _record(self, i: int) -> Record | None:
        """Index entry ``i`` read from flash, or None if its bytes fail their checks."""
        view = self._ring.raw_record(i)
        if view is None:
            return None
        _, lane, length, seq, _, boot, created_ms, _ = struct.unpack_from(REC_HEADER, view, 0)
        body = view[REC_HEADER_SIZE:]
        try:
            # MicroPython's json reads a memoryview in place; CPython's wants bytes.
            payload = json.loads(body if IS_MICROPYTHON else bytes(body))  # type: ignore[arg-type]
        except ValueError:
            return None
        return Record(seq, LANES[lane], boot, created_ms, payload, length)

    def _drop_corrupt(self, i: int) -> None:
        index = self._ring.index
        seq, _, slot, offset, _ = index.get(i)
        self._ring.note(
            "%s: record seq %d at byte %d failed its checks when read; dropped" % (seg_name(slot), seq, offset)
        )
        self.counters["corrupt_skipped"] += 1
        index.delete(i)

    # -- retention -----------------------------------------------------------------------

    def _fold_down(self, target: int) -> int:
        """Fold telemetry runs, oldest first, until the payload bytes are <= ``target``; samples folded away."""
        from device.store.logfold import fold_down  # loaded at the first fold (like retention)

        return fold_down(self, target)

    # -- durability ------------------------------------------------------------------------

    async def _durable(self, ticket: int) -> None:
        """Return once the write with ``ticket`` is synced; ``StoreWriteError`` if it may be lost.

        With ``group_commit``, callers in the same event-loop turn share one
        sync: the first waits one turn for the others to write, syncs, and
        wakes them.
        """
        if not self.fsync:
            return
        ring = self._ring
        if not ring.durable(ticket) and not self.group_commit:
            try:
                ring.sync()
            except OSError as exc:
                self._medium_error(exc, "sync")
        elif not ring.durable(ticket):
            batch = self._batch
            if batch is None:
                batch = self._batch = _Batch()
                try:
                    await asyncio.sleep(0)
                finally:
                    self._batch = None
                    try:
                        ring.sync()
                    except OSError as exc:
                        self._medium_error(exc, "sync")
                    batch.done.set()
            else:
                await batch.done.wait()
        if not ring.durable(ticket):
            raise StoreWriteError(
                "log store: the flash did not confirm the write (errno %d)" % self._errno, self._errno
            )

    # -- inspection ------------------------------------------------------------------------

    def _uptime_ms(self) -> int:
        """Device uptime over all boots (as far as checkpoints kept it) plus this boot's."""
        return self._uptime_base + self._clock() - self._opened_at  # type: ignore[no-any-return]

    def wear_by_slot(self) -> list:
        """``[bytes written, segments started]`` per slot, over the device's life."""
        ring = self._ring
        return [[ring.slot_bytes(slot), ring.starts[slot]] for slot in range(len(ring.gen))]

    def wear(self) -> dict:
        """Flash-wear figures (``device.store.logwear``); plain numbers, like counters."""
        from device.store.logwear import wear_figures

        state = (self._state_bytes, self._state_boot_bytes)
        return wear_figures(
            self._ring, self.segment_bytes, self.erase_block_bytes, self.erase_cycles, state, self._uptime_ms()
        )

    def _more_stats(self, out: dict) -> None:
        ring = self._ring
        out["wear"] = self.wear()
        out["log"] = {
            "segment_bytes": self.segment_bytes,
            "nominal_slots": ring.nominal,
            "segments_in_use": len(ring.ring),
            "head_slot": ring.head,
            "generation": ring.max_gen,
            "acked_upto": ring.acked_upto,
            "readonly": self.readonly,
            "recovery": list(self.recovery),
        }
