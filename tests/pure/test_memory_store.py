"""MemoryStore's own ways: the chunk layout, block reuse, folding in place, and the open_store factory.

The store contract itself is checked by ``store_conformance.py`` (see ``test_store_memory.py``).
"""

import asyncio
import struct

from device.errors import ConfigError, StoreError, StoreFullError
from device.store import memory, open_store
from device.store.base import COUNTER_NAMES, Store
from device.store.memory import MemoryStore
from tests.pure._check import raises
from tests.pure._store_check import forget_removed, payload_size, read_all, telemetry_accounted

H = memory.RECORD_HEADER_SIZE


def _do(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def _lcg(state):  # type: ignore[no-untyped-def]
    # a tiny deterministic generator: the same numbers on MicroPython and CPython
    return (state * 1103515245 + 12345) & 0x7FFFFFFF


def _check_layout(s, chunk_bytes):  # type: ignore[no-untyped-def]
    """Every record whole in one chunk; chunks never resized; count bounded; totals agree."""
    chunks = s._chunks
    fills = s._fills
    assert len(chunks) == len(fills)
    live = 0
    count = 0
    payload_bytes = 0
    for i in range(len(chunks)):
        cap = len(chunks[i])
        fill = fills[i]
        assert cap >= chunk_bytes  # uniform, or one oversize record's own
        assert 0 <= fill <= cap
        assert fill > 0 or i == len(chunks) - 1  # only the last chunk may be empty
        offset = 0
        while offset < fill:
            size = struct.unpack_from(memory.RECORD_HEADER, chunks[i], offset)[4]
            offset += H + size
            count += 1
            payload_bytes += size
        assert offset == fill  # the last record ends exactly at the fill: none straddles
        live += fill
    for i in range(len(chunks) - 1):
        if fills[i + 1] or i + 1 < len(chunks) - 1:
            assert fills[i] + fills[i + 1] > len(chunks[i])  # otherwise they would have merged
    assert len(chunks) * chunk_bytes < 2 * live + 2 * chunk_bytes
    assert s.depth() == (count, payload_bytes)
    assert len(s._spare) <= s._spare_max
    for block in s._spare:
        assert len(block) == chunk_bytes
        for chunk in chunks:
            assert block is not chunk  # a spare block is never also in use


class _Model:
    """What the outbox must hold: events and results as appended, telemetry accounted for.

    Acked records leave the model at once, so a long run holds no more than the store.
    """

    def __init__(self) -> None:
        self.others: dict = {}  # seq -> (lane, payload)
        self.telemetry: dict = {}  # seq -> (payload, created_ms)

    def appended(self, seq, lane, payload, now_ms):  # type: ignore[no-untyped-def]
        if lane == "telemetry":
            self.telemetry[seq] = (payload, now_ms)
        else:
            self.others[seq] = (lane, payload)

    def removed(self, records):  # type: ignore[no-untyped-def]
        forget_removed(records, self.telemetry, self.others)

    def check(self, records):  # type: ignore[no-untyped-def]
        assert [(r.seq, r.lane, r.payload) for r in records if r.lane != "telemetry"] == [
            (seq, self.others[seq][0], self.others[seq][1]) for seq in sorted(self.others)
        ]
        telemetry_accounted(records, self.telemetry, set())


def test_header_size_matches_its_format():
    assert struct.calcsize(memory.RECORD_HEADER) == H == 25


def test_base_store_methods_are_abstract():
    s = Store(1000)
    assert sorted(s.counters) == sorted(COUNTER_NAMES)
    raises(NotImplementedError, s.depth)
    raises(NotImplementedError, _do, s.append("event", {}))
    raises(NotImplementedError, _do, s.put_state("k", 1))  # no _save_state


def test_every_open_is_boot_one_and_starts_empty():
    async def main():
        s = MemoryStore(budget_bytes=4096)
        await s.open()
        await s.append("event", {"n": 1})
        await s.close()
        await s.open()  # the same object again: still boot 1, nothing reserved twice
        again = MemoryStore(budget_bytes=4096)
        await again.open()
        return s.boot_id, again.boot_id, again.depth(), again.next_seq(), await again.load_state()

    assert _do(main()) == (1, 1, (0, 0), 1, {})


def test_open_store_builds_memory_and_checks_the_config():
    s = open_store({"backend": "memory", "budget_bytes": 4096})
    assert isinstance(s, MemoryStore) and s.backend == "memory"
    assert s.budget_bytes == 4096
    assert open_store({"backend": "memory"}).budget_bytes == 262144
    e = raises(ConfigError, open_store, {"backend": "floppy"})
    assert "floppy" in e.message and "memory" in e.message
    e = raises(ConfigError, open_store, {})
    assert e.path == "storage.backend"
    e = raises(ConfigError, open_store, {"backend": "memory", "budget_bytes": "lots"})
    assert e.path == "storage.budget_bytes"
    e = raises(ConfigError, open_store, {"backend": "memory", "budget_bytes": True})
    assert e.path == "storage.budget_bytes"
    e = raises(ConfigError, open_store, {"backend": "memory", "fsync": "yes"})
    assert e.path == "storage.fsync"
    e = raises(ConfigError, open_store, "memory")
    assert e.path == "storage"


def test_readonly_open_takes_no_writes_and_reserves_nothing():
    async def main():
        s = MemoryStore(budget_bytes=4096)
        await s.open(readonly=True)
        try:
            await s.compact()
        except StoreError:
            refused = True
        else:
            refused = False
        return refused, len(s._spare), s.stats()["outbox"]

    refused, spare, stats = _do(main())
    assert refused and spare == 0
    assert stats == {"records": 0, "bytes": 0, "first_seq": None, "last_seq": None}


def test_hundreds_of_records_fit_a_small_heap():
    # Also run under `micropython -X heapsize=128k`: the outbox must stay lean.
    async def main():
        s = MemoryStore(budget_bytes=12000)
        await s.open()
        for i in range(600):
            lane = "event" if i % 60 == 0 else "telemetry"
            await s.append(lane, {"temp_c": 20.0 + i / 100, "n": i}, now_ms=i * 1000)
        batch = await s.read_outbox(50)
        await s.ack(batch[-1].seq)
        return s.depth(), s.counters

    depth, counters = _do(main())
    assert depth[1] <= 12000
    assert counters["appended"] == 600
    assert counters["compacted"] > 0 and counters["full_rejections"] == 0


# -- folding in place ----------------------------------------------------------


def _fold_across_chunks(chunk_bytes):  # type: ignore[no-untyped-def]
    async def main():
        s = MemoryStore(budget_bytes=1000, chunk_bytes=chunk_bytes)
        await s.open()
        model = _Model()
        for i in range(4):  # 212-byte records: the fourth passes the 800-byte high water
            payload = {"note": "x" * 200, "n": i}
            model.appended(await s.append("telemetry", payload, now_ms=i), "telemetry", payload, i)
            _check_layout(s, chunk_bytes)
        records = await read_all(s)
        model.check(records)
        return records, [len(c) for c in s._chunks], list(s._fills), s.counters["compacted"]

    return _do(main())


def test_a_run_in_one_chunk_folds_where_it_stood():
    records, caps, fills, compacted = _fold_across_chunks(1024)
    assert compacted == 2  # three records became one
    assert [r.seq for r in records] == [1, 4]
    assert records[0].payload["agg"]["n"] == 3 and records[0].created_ms == 0
    assert caps == [1024] and fills == [2 * H + records[0].size + records[1].size]


def test_a_run_across_chunks_folds_into_the_first_when_it_fits():
    records, caps, fills, compacted = _fold_across_chunks(400)  # one 237-byte record per chunk
    assert compacted == 2 and [r.seq for r in records] == [1, 4]
    assert caps == [400, 400] and fills == [H + records[0].size, H + records[1].size]


def test_a_run_of_oversize_records_folds_into_a_chunk_of_its_own():
    records, caps, fills, compacted = _fold_across_chunks(100)  # every record is oversize
    assert compacted == 2 and [r.seq for r in records] == [1, 4]
    assert caps == [H + records[0].size, H + records[1].size] and fills == caps


def test_folding_keeps_events_in_place_between_runs():
    async def main():
        chunk_bytes = 160
        s = MemoryStore(budget_bytes=1500, chunk_bytes=chunk_bytes)
        await s.open()
        model = _Model()
        for i in range(80):
            lane = "event" if i % 9 == 4 else "telemetry"
            payload = {"temp_c": 19 + i % 7, "mode": "heat", "i": i} if lane == "telemetry" else {"door": i}
            model.appended(await s.append(lane, payload, now_ms=i), lane, payload, i)
            _check_layout(s, chunk_bytes)
            if i % 30 == 29:
                events = [r for r in await read_all(s) if r.lane == "event"]
                await s.ack_seqs([r.seq for r in events[:2]])
                model.removed(events[:2])
                _check_layout(s, chunk_bytes)
            model.check(await read_all(s))
        return s.counters

    counters = _do(main())
    assert counters["compacted"] > 30 and counters["full_rejections"] == 0


# -- chunk layout: uniform preallocated blocks, compacted in place -------------


def test_small_chunks_keep_order_through_acks():
    async def main():
        # 3 records per chunk: acks cut into and empty chunks
        s = MemoryStore(budget_bytes=1000, chunk_bytes=3 * (H + 10))
        lanes = ["telemetry", "event", "telemetry", "result", "telemetry", "telemetry", "event", "telemetry"]
        for i in range(len(lanes)):
            await s.append(lanes[i], {"v": 1000 + i})  # 10 bytes each
        acked = await s.ack(4)
        gone = await s.ack_seqs([6, 7])
        await s.append("event", {"v": 2000})
        _check_layout(s, 3 * (H + 10))
        return acked, gone, [r.seq for r in await read_all(s)], s.depth(), s.seq_range()

    acked, gone, seqs, depth, span = _do(main())
    assert (acked, gone) == (4, 2)
    assert seqs == [5, 8, 9] and depth == (3, 30) and span == (5, 9)


def test_events_among_telemetry_keep_chunk_count_bounded():
    async def main():
        chunk_bytes = 4 * (H + 10)
        s = MemoryStore(budget_bytes=3000, chunk_bytes=chunk_bytes)
        most = 0
        for i in range(1500):
            # events at irregular spacing, so folds leave them scattered across chunks
            lane = "event" if i % 13 == 0 or i % 17 == 0 else "telemetry"
            payload = {"v": 1000 + i % 9000} if lane == "event" else {"v": i, "note": "steady-state"}
            await s.append(lane, payload)
            _check_layout(s, chunk_bytes)  # chunks never more than 2 * live bytes / chunk + 2
            most = max(most, len(s._chunks))
            if i % 50 == 49:
                # deliver the oldest events only, keeping 10 spread among the telemetry
                events = [r.seq for r in await read_all(s) if r.lane == "event"]
                if len(events) > 10:
                    await s.ack_seqs(events[:-10])
                    _check_layout(s, chunk_bytes)
        return s.counters, most, s.depth()

    counters, most, depth = _do(main())
    assert counters["compacted"] > 500 and counters["full_rejections"] == 0
    assert depth[1] <= 3000
    assert most <= 2 * (3000 + 300 * H) // (4 * (H + 10)) + 2  # at most 300 records of 10+ bytes


def test_records_stay_whole_and_intact_through_folds_and_acks():
    async def main():
        chunk_bytes = 100
        s = MemoryStore(budget_bytes=1500, chunk_bytes=chunk_bytes)
        model = _Model()
        rand = 7
        for i in range(800):
            rand = _lcg(rand)
            lane = ("telemetry", "telemetry", "telemetry", "event", "result")[rand % 5]
            payload = {"i": i, "pad": "x" * (rand % 40)}  # 17..60 bytes: records of varied length
            try:
                seq = await s.append(lane, payload, now_ms=i)
            except StoreFullError:
                assert s.depth()[1] + payload_size(payload) > 1500  # refused only when it did not fit
                batch = await s.read_outbox(len(model.others) // 2 + 1)
                await s.ack(batch[-1].seq)
                model.removed(batch)
                continue
            model.appended(seq, lane, payload, i)
            _check_layout(s, chunk_bytes)
            if rand % 13 == 0:
                records = await read_all(s)
                upto = records[len(records) // 3].seq
                await s.ack(upto)
                model.removed([r for r in records if r.seq <= upto])
                _check_layout(s, chunk_bytes)
            if i % 50 == 0:
                model.check(await read_all(s))
        model.check(await read_all(s))
        return s.counters

    counters = _do(main())
    assert counters["compacted"] > 0 and counters["acked"] > 0


def test_oversize_record_gets_its_own_exact_chunk():
    async def main():
        chunk_bytes = 80
        s = MemoryStore(budget_bytes=1000, chunk_bytes=chunk_bytes)
        small = {"v": 1000}  # 35-byte records: two per chunk
        big = {"blob": "y" * 200}
        await s.append("telemetry", small)  # 1
        await s.append("event", big)  # 2: its own chunk
        await s.append("telemetry", small)  # 3: a fresh chunk after it
        _check_layout(s, chunk_bytes)
        shapes = ([len(c) for c in s._chunks], list(s._fills))
        read = await read_all(s)
        await s.ack(1)
        after_ack = ([len(c) for c in s._chunks], list(s._fills))
        await s.ack(2)  # the oversize chunk empties and goes
        after_big = ([len(c) for c in s._chunks], list(s._fills))
        await s.ack(3)
        await s.append("event", big)  # the empty last chunk is too small: replaced
        replaced = ([len(c) for c in s._chunks], list(s._fills))
        _check_layout(s, chunk_bytes)
        return shapes, read, after_ack, after_big, replaced, payload_size(big)

    shapes, read, after_ack, after_big, replaced, big_size = _do(main())
    record = H + big_size
    assert shapes == ([80, record, 80], [35, record, 35])
    assert [r.seq for r in read] == [1, 2, 3]
    assert read[1].payload == {"blob": "y" * 200} and read[1].size == big_size
    assert after_ack == ([record, 80], [record, 35])
    assert after_big == ([80], [35])
    assert replaced == ([record], [record])


def test_long_churn_stays_consistent():
    async def main():
        s = MemoryStore(budget_bytes=4096)
        rand = 12345
        refused = 0
        for i in range(5000):
            rand = _lcg(rand)
            pick = rand % 10
            lane = "event" if pick == 0 else ("result" if pick == 1 else "telemetry")
            payload = {"n": i, "temp_c": 20.0 + (rand % 1000) / 100, "pad": "z" * (rand % 60)}
            try:
                await s.append(lane, payload, now_ms=i * 1000)
            except StoreFullError:
                refused += 1
            if i % 40 == 39:
                batch = await s.read_outbox(rand % 30 + 1)
                await s.ack(batch[-1].seq)
            if i % 500 == 0:
                _check_layout(s, 1024)
        _check_layout(s, 1024)
        return s, await read_all(s), refused

    s, records, refused = _do(main())
    count, payload_bytes = s.depth()
    assert count == len(records)
    assert payload_bytes == sum(r.size for r in records) <= 4096
    for i in range(1, len(records)):
        assert records[i - 1].seq < records[i].seq
    c = s.counters
    assert refused == c["full_rejections"]
    assert c["appended"] == 5000 - refused
    assert c["appended"] == c["acked"] + c["compacted"] + count
    assert len(s._chunks) <= 2 * 4096 // 1024 + 2 + 4096 // 1024  # well under: headers are ~3 KB more at most


def test_open_reserves_blocks_and_churn_recycles_them():
    async def main():
        s = MemoryStore(budget_bytes=4096)
        await s.open()
        reserved = list(s._spare)
        await s.open()  # opening again reserves nothing more
        again = len(s._spare)
        rand = 99
        strangers = 0
        for i in range(2000):
            rand = _lcg(rand)
            lane = "event" if rand % 9 == 0 else "telemetry"
            await s.append(lane, {"n": i, "temp_c": 21.5, "pad": "p" * (rand % 80)}, now_ms=i)
            if i % 25 == 24:
                batch = await s.read_outbox(rand % 20 + 1)
                await s.ack(batch[-1].seq)
            for chunk in s._chunks:
                known = False
                for block in reserved:
                    known = known or chunk is block
                strangers += 0 if known else 1
        _check_layout(s, 1024)
        return len(reserved), again, strangers, len(s._chunks) + len(s._spare), s.counters["compacted"]

    reserved, again, strangers, blocks, compacted = _do(main())
    assert reserved == (4096 + 1024) // 1024 + 2
    assert again == reserved
    assert compacted > 0
    assert strangers == 0  # every chunk came from the reserve: no allocation after open
    assert blocks == reserved
