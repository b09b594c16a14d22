"""The ``log`` backend from the inside: record format, the segment ring, recovery, wear, write errors.

The store contract itself is checked by ``store_conformance`` (``test_store_log.py``)
and power cuts by ``tests/store/``; these tests pin what is particular to the log
backend. Portable: plain functions, real files under /tmp, no pytest import.
"""

import asyncio
import os

from device.compat import perf_us
from device.errors import StoreWriteError
from device.store.fileio import Files
from device.store.log import STATE_FILE, LogStore
from device.store.logformat import (
    REC_HEADER_SIZE,
    RECORD,
    SEG_HEADER_SIZE,
    SegmentScanner,
    decode_segment_header,
    encode_segment_header,
    pack_record_header,
    parse_seg_name,
    record_ok,
    seg_name,
)
from device.store.logindex import OutboxIndex

_made = [0]


def _tmpdir() -> str:
    while True:
        _made[0] += 1
        path = "/tmp/bp_log_%d_%d" % (perf_us() % 1000000000, _made[0])
        try:
            os.mkdir(path)
            return path
        except OSError:
            continue


def _remove(path: str) -> None:
    for name in os.listdir(path):
        os.remove(path + "/" + name)
    os.rmdir(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class FakeClock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


class _FlakyHandle:
    def __init__(self, files, inner) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        self.inner = inner

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        if self.files.full:
            raise OSError(28, "No space left on device")
        self.inner.write(data)

    def sync(self) -> None:
        if self.files.sync_fails:
            raise OSError(5, "Input/output error")
        self.files.syncs += 1
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()


class FlakyFiles(Files):
    """Real files that can refuse every write (a full flash) or every sync (EIO), and count syncs."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.full = False
        self.sync_fails = False
        self.syncs = 0

    def open_append(self, name: str):  # type: ignore[no-untyped-def]
        return _FlakyHandle(self, Files.open_append(self, name))

    def create(self, name: str):  # type: ignore[no-untyped-def]
        return _FlakyHandle(self, Files.create(self, name))


async def _opened(root: str, **kw) -> LogStore:  # type: ignore[no-untyped-def]
    files = kw.pop("files", None) or Files(root)
    store = LogStore(files, **kw)
    await store.open()
    return store


async def _append_many(store, lane: str, payloads: list) -> list:  # type: ignore[no-untyped-def]
    # A loop, not a comprehension: MicroPython has no await inside comprehensions.
    seqs = []
    for i in range(len(payloads)):
        seqs.append(await store.append(lane, payloads[i], i))
    return seqs


def _sample(i: int) -> dict:
    return {"temp_c": 20 + (i % 9) / 10, "i": i}


# -- format ------------------------------------------------------------------------


def test_record_header_carries_a_crc_over_header_and_body():
    body = b'{"temp_c":21.5}'
    buf = bytearray(REC_HEADER_SIZE)
    pack_record_header(buf, RECORD, 0, 7, 7, 3, 123456789012, body)
    record = bytes(buf) + body
    assert len(buf) == 30 and record_ok(record, 0)
    for at in (0, 3, 9, 20, 27, REC_HEADER_SIZE + 4):  # any flipped byte, header or body, fails it
        damaged = bytearray(record)
        damaged[at] ^= 0x40
        assert not record_ok(damaged, 0), at
    assert parse_seg_name(seg_name(12)) == 12 and seg_name(12) == "seg012"
    assert parse_seg_name("state.json") == -1 and parse_seg_name("seg") == -1 and parse_seg_name("seg1x") == -1


def test_segment_header_round_trip_and_refusal():
    header = encode_segment_header(41)
    assert len(header) == SEG_HEADER_SIZE and decode_segment_header(header) == 41
    assert decode_segment_header(b"BPLG") == -1
    damaged = bytearray(header)
    damaged[9] ^= 1  # the generation, under the header CRC
    assert decode_segment_header(damaged) == -1
    assert decode_segment_header(b"XXXX" + header[4:]) == -1


def test_scanner_reads_records_then_stops_at_a_torn_one():
    root = _tmpdir()
    try:
        files = Files(root)
        handle = files.create("seg000")
        handle.write(encode_segment_header(1))
        buf = bytearray(REC_HEADER_SIZE)
        for seq in (1, 2, 3):
            body = ('{"n":%d}' % seq).encode()
            pack_record_header(buf, RECORD, 1, seq, seq, 1, seq * 10, body)
            handle.write(bytes(buf))
            handle.write(body)
        handle.write(bytes(buf)[:11])  # a header cut short by the power
        handle.close()
        scanner = SegmentScanner(files, "seg000", files.size("seg000"))
        seen = []
        while True:
            item = scanner.next()
            if item is None:
                break
            seen.append((item[3], item[6], bytes(item[7])))
        assert seen == [(1, 10, b'{"n":1}'), (2, 20, b'{"n":2}'), (3, 30, b'{"n":3}')]
        assert scanner.error.startswith("truncated record header") and scanner.end == files.size("seg000") - 11
    finally:
        _remove(root)


def test_index_keeps_seq_order_sizes_and_live_counts_per_slot():
    index = OutboxIndex()
    for seq in (1, 2, 5, 9):
        index.append(seq, 0, seq % 2, seq * 100, 10 * seq)
    index.insert(index.find(4), 4, 1, 3, 4000, 40)  # grows past its capacity, keeps order
    assert [index.seq_at(i) for i in range(index.count)] == [1, 2, 4, 5, 9]
    assert index.bytes == 10 + 20 + 40 + 50 + 90 and index.live_in(1) == 3 and index.live_in(3) == 1
    assert index.position(4) == 2 and index.position(3) == -1 and index.find(10) == 5
    index.move(2, 7, 77)
    assert index.get(2) == (4, 1, 7, 77, 40) and index.live_in(3) == 0 and index.live_in(7) == 1
    index.replace(0, 0, 7, 88, 3)  # an aggregate takes the first seq of its run
    index.delete(1, 2)
    assert [index.seq_at(i) for i in range(index.count)] == [1, 5, 9]
    assert index.bytes == 3 + 50 + 90 and index.live_in(7) == 1 and index.live_in(0) == 0


def test_index_matches_a_plain_list_through_chunk_splits_and_merges():
    index = OutboxIndex()
    model = []  # [seq, slot, size]
    state = 12345

    def rand(n: int) -> int:
        nonlocal state
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        return state % n

    seq = 0
    for step in range(3000):
        op = rand(10)
        if op < 5 or not model:  # append, as the store does for new records
            seq += 1 + rand(3)
            model.append([seq, seq % 5, seq % 70])
            index.append(seq, 0, seq % 5, 0, seq % 70)
        elif op < 7:  # insert an older seq in a gap (recovery replays copies and aggregates)
            i = rand(len(model))
            lo = model[i - 1][0] if i else 0
            if model[i][0] - lo > 1:
                new = lo + 1
                model.insert(i, [new, 7, 1])
                assert index.find(new) == i
                index.insert(i, new, 0, 7, 0, 1)
        elif op < 9:  # delete a run (ack upto, a fold, ack_seqs)
            i = rand(len(model))
            n = 1 + rand(min(len(model) - i, 80))
            del model[i : i + n]
            index.delete(i, n)
        else:
            i = rand(len(model))
            index.move(i, 9, 99)
            model[i][1] = 9
        if step % 100 == 0 or step > 2950:
            assert index.count == len(model)
            assert [index.seq_at(i) for i in range(index.count)] == [m[0] for m in model]
            assert index.bytes == sum(m[2] for m in model)
            for slot in range(10):
                assert index.live_in(slot) == len([m for m in model if m[1] == slot]), slot
            if model:
                probe = model[rand(len(model))][0]
                assert index.position(probe) == [m[0] for m in model].index(probe)
            assert len(index._chunks) <= 2 * len(model) // 64 + 1


# -- the ring ------------------------------------------------------------------------


async def test_rotation_spreads_writes_over_every_slot():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=1200, segment_bytes=256)
        slots = s._ring.nominal
        for i in range(slots * 12):
            seq = await s.append("telemetry", _sample(i), i)
            if i % 4 == 3:
                await s.ack(seq)  # the cloud keeps up: segments die young
        wear = s.wear_by_slot()
        starts = [w[1] for w in wear]
        assert len(wear) == slots, "the ring grew though nothing was held"
        assert min(starts) >= 2 and max(starts) - min(starts) <= 1, starts
        written = [w[0] for w in wear]
        assert min(written) * 3 >= max(written), written  # bytes spread evenly too
        await s.close()
    finally:
        _remove(root)


async def test_acked_segments_are_recycled():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=4096, segment_bytes=256)
        for i in range(60):
            await s.append("event", {"n": i, "pad": "e" * 20}, i)
        held = s.stats()["log"]["segments_in_use"]
        assert held >= 8
        seq = (await s.read_outbox(30))[-1].seq
        await s.ack(seq)
        assert s.stats()["log"]["segments_in_use"] < held
        await s.ack(s.next_seq() - 1)
        assert s.depth() == (0, 0) and s.stats()["log"]["segments_in_use"] == 1  # only the newest stays
        await s.close()
    finally:
        _remove(root)


async def test_checkpoint_keeps_seq_after_everything_was_acked_and_recycled():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=4096, segment_bytes=256)
        for i in range(40):
            await s.append("telemetry", _sample(i), i)
        await s.ack(40)
        await s.close()
        newest = s._ring.ring[-1]
        # Only the newest segment is left (the others were recycled, here: lost): its checkpoint knows.
        for name in os.listdir(root):
            if name.startswith("seg") and name != seg_name(newest):
                os.remove(root + "/" + name)
        s = await _opened(root, budget_bytes=4096, segment_bytes=256)
        assert s.depth() == (0, 0) and s.next_seq() == 41
        assert await s.append("event", {"after": 1}) == 41
        assert s.counters["appended"] == 41 and s.counters["acked"] == 40  # counters travel in checkpoints
        await s.close()
    finally:
        _remove(root)


async def test_records_pinned_in_the_oldest_segment_are_copied_forward_in_seq_order():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=2000, segment_bytes=256)
        pinned = await s.append("event", {"door": "open"}, 1)  # never acked during the outage
        first_slot = s._ring.index.get(0)[2]
        for i in range(s._ring.nominal * 8):
            seq = await s.append("telemetry", _sample(i), i)
            await s.ack_seqs([seq])
        assert s._ring.index.get(0)[2] != first_slot, "the pinned record never moved"
        assert len(s.wear_by_slot()) == s._ring.nominal  # copying forward kept the ring its size
        tail = await s.append("result", {"ok": True})
        records = await s.read_outbox(10)
        assert [(r.seq, r.payload) for r in records] == [(pinned, {"door": "open"}), (tail, {"ok": True})]
        await s.close()
        s = await _opened(root, budget_bytes=2000, segment_bytes=256)
        assert await s.read_outbox(10) == records
        await s.close()
    finally:
        _remove(root)


# -- recovery ------------------------------------------------------------------------


async def test_recovery_stops_at_a_bad_record_reports_it_and_goes_on():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=50000, segment_bytes=1024)
        seqs = await _append_many(s, "event", [{"n": i, "pad": "x" * 40} for i in range(30)])
        ring = s._ring
        victim = ring.index.get(5)  # (seq, lane, slot, offset, size) of the 6th record
        damaged_slot = victim[2]
        await s.close()
        path = root + "/" + seg_name(damaged_slot)
        data = bytearray(_read(path))
        data[victim[3] + REC_HEADER_SIZE + 3] ^= 0x01  # one flipped bit in its payload
        _write(path, bytes(data))
        s = await _opened(root, budget_bytes=50000, segment_bytes=1024)
        got = [r.seq for r in await s.read_outbox(100)]
        lost = [seq for seq in seqs if seq not in got]
        assert seqs[5] in lost and seqs[:5] == got[:5]
        assert lost == seqs[5 : 5 + len(lost)]  # the rest of that segment, nothing more
        assert got[-1] == seqs[-1]  # later segments were read
        assert s.counters["corrupt_skipped"] == 1
        notes = s.stats()["log"]["recovery"]
        assert len(notes) == 1 and seg_name(damaged_slot) in notes[0] and "CRC" in notes[0], notes
        assert "skipped bytes %d..%d" % (victim[3], len(data)) in notes[0]
        new = await s.append("event", {"n": "new"})
        await s.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=1024)
        assert [r.seq for r in await s.read_outbox(100)] == got + [new]
        await s.close()
    finally:
        _remove(root)


async def test_a_torn_newest_segment_is_sealed_not_appended_to():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=50000, segment_bytes=4096)
        seqs = await _append_many(s, "telemetry", [_sample(i) for i in range(5)])
        head = s._ring.head
        await s.close()
        path = root + "/" + seg_name(head)
        data = _read(path)
        _write(path, data + data[SEG_HEADER_SIZE : SEG_HEADER_SIZE + 17])  # half a record: a torn append
        s = await _opened(root, budget_bytes=50000, segment_bytes=4096)
        assert s.counters["corrupt_skipped"] == 1
        seqs.append(await s.append("telemetry", _sample(9), 9))
        assert s._ring.head != head  # a fresh segment: nothing lands after garbage
        await s.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=4096)
        assert [r.seq for r in await s.read_outbox(100)] == seqs
        await s.close()
    finally:
        _remove(root)


async def test_garbage_empty_and_truncated_files_never_stop_open():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        await s.put_state("mode", "heat")
        seqs = await _append_many(s, "event", [{"n": i} for i in range(3)])
        await s.close()
        _write(root + "/seg007", b"\x00\xff garbage, not a segment " * 9)
        _write(root + "/seg008", b"")
        _write(root + "/seg009", encode_segment_header(99)[:9])
        _write(root + "/notes.txt", b"left by someone")
        _write(root + "/" + STATE_FILE, b"BPST1 00000000 5\n{}{}{")
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        assert [r.seq for r in await s.read_outbox(10)] == seqs
        assert await s.get_state("mode") is None  # the snapshot was garbage: reported, state starts empty
        assert s.counters["corrupt_skipped"] == 4  # three bad segment files and the snapshot
        notes = " | ".join(s.recovery)
        for what in ("seg007", "seg008", "seg009", STATE_FILE):
            assert what in notes, (what, notes)
        seq = await s.append("event", {"n": "after"})
        await s.put_state("mode", "cool")
        await s.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        assert [r.seq for r in await s.read_outbox(10)][-1] == seq
        assert (await s.get_state("mode")).value == "cool"
        await s.close()
    finally:
        _remove(root)


async def test_readonly_open_writes_nothing():
    root = _tmpdir()
    try:
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        for i in range(20):
            await s.append("telemetry", _sample(i), i)
        await s.close()
        before = {name: _read(root + "/" + name) for name in os.listdir(root)}
        s = LogStore(Files(root), budget_bytes=50000, segment_bytes=512)
        await s.open(readonly=True)
        assert s.depth()[0] == 20 and s.stats()["counters"]["appended"] == 20
        await s.close()
        assert {name: _read(root + "/" + name) for name in os.listdir(root)} == before
    finally:
        _remove(root)


# -- write errors, syncs ---------------------------------------------------------------


async def test_a_refused_write_counts_raises_and_leaves_a_usable_store():
    root = _tmpdir()
    try:
        files = FlakyFiles(root)
        s = await _opened(root, files=files, budget_bytes=50000, segment_bytes=512)
        kept = await _append_many(s, "event", [{"n": i} for i in range(3)])
        files.full = True
        try:
            await s.append("event", {"n": "refused"})
            raise AssertionError("a full flash took the record")
        except StoreWriteError as exc:
            assert exc.errno == 28 and "28" in str(exc)
        assert s.counters["write_errors"] == 1 and s.depth()[0] == 3
        files.full = False
        kept.append(await s.append("event", {"n": "room again"}))
        assert kept[-1] > kept[-2] + 1  # the refused record's seq is never handed out again
        await s.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        assert [r.seq for r in await s.read_outbox(10)] == kept
        await s.close()
    finally:
        _remove(root)


async def test_a_failed_sync_refuses_the_append_and_it_never_comes_back():
    root = _tmpdir()
    try:
        files = FlakyFiles(root)
        s = await _opened(root, files=files, budget_bytes=50000, segment_bytes=512)
        kept = await _append_many(s, "event", [{"n": i} for i in range(3)])
        files.sync_fails = True  # the bytes reach the file, the sync says EIO: durability unknown
        try:
            await s.append("event", {"n": "unsure"})
            raise AssertionError("an unsynced record was reported durable")
        except StoreWriteError as exc:
            assert exc.errno == 5
        assert s.counters["write_errors"] == 1
        files.sync_fails = False
        # RAM was rebuilt from the files: the refused record is not in the outbox, here or later.
        assert [r.seq for r in await s.read_outbox(10)] == kept
        kept.append(await s.append("event", {"n": "after"}))
        await s.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=512)
        assert [r.payload["n"] for r in await s.read_outbox(10)] == [0, 1, 2, "after"]
        await s.close()
    finally:
        _remove(root)


async def test_every_append_is_synced_and_group_commit_shares_syncs():
    root = _tmpdir()
    try:
        files = FlakyFiles(root)
        s = await _opened(root, files=files, budget_bytes=50000, segment_bytes=4096)
        await s.append("event", {"warm": 0})  # starts the first segment (synced on its own)
        before = files.syncs
        for i in range(5):
            await s.append("telemetry", _sample(i), i)
        assert files.syncs - before == 5
        await s.close()
        grouped = await _opened(root, files=files, budget_bytes=50000, segment_bytes=4096, group_commit=True)
        await grouped.append("event", {"warm": 1})  # opens the head segment
        before = files.syncs
        seqs = await asyncio.gather(*[grouped.append("telemetry", _sample(i), i) for i in range(10)])
        assert files.syncs - before == 1 and sorted(seqs) == list(seqs)
        await grouped.close()
        s = await _opened(root, budget_bytes=50000, segment_bytes=4096)
        assert [r.seq for r in await s.read_outbox(100)][-10:] == list(seqs)
        await s.close()
    finally:
        _remove(root)


# -- wear --------------------------------------------------------------------------------


async def test_wear_figures_move_and_survive_a_reboot():
    root = _tmpdir()
    try:
        clock = FakeClock()
        s = await _opened(root, budget_bytes=4096, segment_bytes=512, erase_block_bytes=512, clock=clock)
        start = s.stats()["wear"]
        assert start["projected_years"] is None  # no rate known yet
        for i in range(200):
            clock.ms += 60000  # a sample a minute
            seq = await s.append("telemetry", _sample(i), clock.ms)
            if i % 10 == 9:
                await s.ack(seq)
        wear = s.stats()["wear"]
        assert wear["segment_bytes_written"] > start["segment_bytes_written"] + 200 * 30
        assert wear["erase_equivalents_max"] >= wear["erase_equivalents_mean"] > 0
        assert wear["segments_started"] > s._ring.nominal
        assert wear["uptime_ms"] == 200 * 60000
        years = wear["projected_years"]
        assert years is not None and years > 1  # ~12 KB in 200 minutes over 17 slots: years, not days
        await s.close()
        clock2 = FakeClock()
        s = await _opened(root, budget_bytes=4096, segment_bytes=512, erase_block_bytes=512, clock=clock2)
        again = s.stats()["wear"]
        assert again["segment_bytes_written"] >= wear["segment_bytes_written"]
        assert again["segments_started"] >= wear["segments_started"]
        assert again["uptime_ms"] >= 199 * 60000  # kept in checkpoints across the reboot
        await s.close()
    finally:
        _remove(root)
