"""MemoryStore: outbox sequence, order, ack, byte budget; state versions; the open_store factory."""

import asyncio

from device.errors import ConfigError, StoreError, StoreFullError
from device.store import open_store
from device.store.base import Record, StateEntry, Store
from device.store.memory import MAX_DROPPED_RANGES, MemoryStore
from tests.pure._check import raises


def _do(coro):
    return asyncio.run(coro)


def _size(payload):
    # compact JSON, as the store measures it
    import json

    return len(json.dumps(payload, separators=(",", ":")).encode())


def test_seq_is_monotonic_and_never_reused_after_acks():
    async def main():
        s = MemoryStore()
        seqs = []
        for i in range(3):
            seqs.append(await s.append("telemetry", {"t": i}, now_ms=i))
        assert await s.ack(seqs[-1]) == 3
        assert s.depth() == (0, 0)
        seqs.append(await s.append("event", {"e": 1}))
        seqs.append(await s.append("result", {"r": 1}))
        return seqs

    assert _do(main()) == [1, 2, 3, 4, 5]


def test_read_outbox_oldest_first_and_leaves_records_in_place():
    async def main():
        s = MemoryStore()
        await s.append("telemetry", {"temp_c": 20.5}, now_ms=100)
        await s.append("event", {"door": "open"}, now_ms=150)
        await s.append("result", {"cmd": 7, "ok": True}, now_ms=200)
        first = await s.read_outbox(2)
        again = await s.read_outbox(10)
        none = await s.read_outbox(0)
        return first, again, none

    first, again, none = _do(main())
    assert [r.seq for r in first] == [1, 2]
    assert first[0] == Record(1, "telemetry", 100, {"temp_c": 20.5}, _size({"temp_c": 20.5}))
    assert first[1].lane == "event" and first[1].payload == {"door": "open"} and first[1].created_ms == 150
    assert [r.seq for r in again] == [1, 2, 3]
    assert again[2].payload == {"cmd": 7, "ok": True}
    assert none == []


def test_ack_removes_up_to_seq_and_counts():
    async def main():
        s = MemoryStore()
        for i in range(5):
            await s.append("telemetry", {"i": i})
        removed = await s.ack(3)
        left = [r.seq for r in await s.read_outbox(10)]
        again = await s.ack(3)  # acking twice is harmless
        below = await s.ack(0)
        return removed, left, again, below, s.counters

    removed, left, again, below, counters = _do(main())
    assert removed == 3
    assert left == [4, 5]
    assert again == 0 and below == 0
    assert counters["appended"] == 5
    assert counters["acked"] == 3


def test_depth_counts_records_and_payload_bytes():
    async def main():
        s = MemoryStore()
        payloads = [{"temp_c": 21.25}, {"alarm": "smoke", "zone": 2}, {"x": "é"}]
        await s.append("telemetry", payloads[0])
        await s.append("event", payloads[1])
        await s.append("event", payloads[2])
        full = s.depth()
        await s.ack(1)
        return payloads, full, s.depth(), await s.read_outbox(5)

    payloads, full, after, records = _do(main())
    total = _size(payloads[0]) + _size(payloads[1]) + len('{"x":"é"}'.encode())
    assert full == (3, total)
    assert after == (2, total - _size(payloads[0]))
    assert records[1].size == 10  # UTF-8 bytes (é is 2), not escaped, on both interpreters
    assert after[1] == sum(r.size for r in records)


def test_budget_drops_oldest_telemetry_only():
    async def main():
        payload = {"v": 1000}  # 10 bytes each
        s = MemoryStore(budget_bytes=50)
        await s.append("telemetry", payload)  # 1
        await s.append("event", payload)  # 2
        await s.append("telemetry", payload)  # 3
        await s.append("telemetry", payload)  # 4
        await s.append("result", payload)  # 5: exactly full
        assert s.depth() == (5, 50)
        await s.append("event", payload)  # 6: drops telemetry 1
        await s.append("telemetry", payload)  # 7: drops telemetry 3
        left = [(r.seq, r.lane) for r in await s.read_outbox(10)]
        return left, s.depth(), s.counters, s.dropped_ranges

    left, depth, counters, ranges = _do(main())
    assert left == [(2, "event"), (4, "telemetry"), (5, "result"), (6, "event"), (7, "telemetry")]
    assert depth == (5, 50)
    assert counters["dropped"] == 2
    assert counters["full_rejections"] == 0
    # 2 (event) between the two drops is still held, so one exact range covers both
    assert ranges == [[1, 3]]


def test_dropped_ranges_split_when_a_gap_was_delivered():
    async def main():
        payload = {"v": 1000}
        s = MemoryStore(budget_bytes=30)
        await s.append("telemetry", payload)  # 1
        await s.append("event", payload)  # 2
        await s.append("telemetry", payload)  # 3
        await s.append("telemetry", payload)  # 4: drops 1
        await s.ack(2)  # event 2 delivered
        await s.append("telemetry", payload)  # 5
        await s.append("telemetry", payload)  # 6: drops 3
        return s.dropped_ranges

    assert _do(main()) == [[1, 1], [3, 3]]


def test_dropped_ranges_stay_bounded():
    async def main():
        s = MemoryStore(budget_bytes=20)
        payload = {"v": 1000}
        for _ in range(100):
            await s.append("telemetry", payload)
            await s.append("event", payload)
            await s.ack(10**9)  # deliver everything: no range can merge
        for _ in range(3 * MAX_DROPPED_RANGES):
            await s.ack(10**9)
            await s.append("telemetry", payload)
            await s.append("event", payload)
            await s.append("telemetry", payload)  # drops the first telemetry
        return s.dropped_ranges, s.counters["dropped"]

    ranges, dropped = _do(main())
    assert dropped == 3 * MAX_DROPPED_RANGES
    assert len(ranges) == MAX_DROPPED_RANGES
    for i in range(1, len(ranges)):
        assert ranges[i - 1][1] < ranges[i][0]


def test_small_chunks_keep_order_through_drops_and_acks():
    async def main():
        # 3 records per chunk: drops and acks cut into and empty chunks
        s = MemoryStore(budget_bytes=100, chunk_bytes=3 * (21 + 10))
        lanes = ["telemetry", "event", "telemetry", "result", "telemetry", "telemetry", "event", "telemetry"]
        for i in range(len(lanes)):
            await s.append(lanes[i], {"v": 1000 + i})  # 10 bytes each
        after_drops = [(r.seq, r.payload["v"]) for r in await s.read_outbox(20)]
        acked = await s.ack(4)
        await s.append("event", {"v": 2000})
        final = [r.seq for r in await s.read_outbox(20)]
        return after_drops, acked, final, s.depth(), s.dropped_ranges

    after_drops, acked, final, depth, ranges = _do(main())
    # 9 x 10 bytes fit the 100-byte budget: nothing is dropped
    assert after_drops == [(i + 1, 1000 + i) for i in range(8)]
    assert acked == 4
    assert final == [5, 6, 7, 8, 9]
    assert depth == (5, 50)
    assert ranges == []


def test_small_chunks_drop_from_the_middle():
    async def main():
        s = MemoryStore(budget_bytes=60, chunk_bytes=2 * (21 + 10))
        for lane in ("event", "telemetry", "event", "telemetry", "event", "telemetry"):
            await s.append(lane, {"v": 1000})
        await s.append("event", {"v": 1001})  # drops seq 2 (2nd record of chunk 1)
        await s.append("event", {"v": 1002})  # drops seq 4 (2nd record of chunk 2)
        return [(r.seq, r.lane) for r in await s.read_outbox(20)], s.depth(), s.dropped_ranges

    records, depth, ranges = _do(main())
    assert records == [(1, "event"), (3, "event"), (5, "event"), (6, "telemetry"), (7, "event"), (8, "event")]
    assert depth == (6, 60)
    assert ranges == [[2, 4]]


def test_store_full_when_only_events_remain():
    async def main():
        payload = {"v": 1000}
        s = MemoryStore(budget_bytes=30)
        await s.append("event", payload)
        await s.append("result", payload)
        await s.append("telemetry", payload)
        await s.append("event", payload)  # drops the telemetry
        try:
            await s.append("event", payload)
        except StoreFullError as exc:
            err = exc
        else:
            err = None
        try:
            await s.append("telemetry", payload)
        except StoreFullError:
            tele_refused = True
        else:
            tele_refused = False
        return err, tele_refused, s.depth(), s.counters, [r.seq for r in await s.read_outbox(10)]

    err, tele_refused, depth, counters, seqs = _do(main())
    assert err is not None
    assert "budget" in str(err)
    assert tele_refused
    assert depth == (3, 30)
    assert seqs == [1, 2, 4]  # no event lost, refused appends used no seq
    assert counters["full_rejections"] == 2
    assert counters["dropped"] == 1
    assert counters["appended"] == 4


def test_no_telemetry_dropped_when_it_would_not_make_room():
    async def main():
        s = MemoryStore(budget_bytes=40)
        await s.append("telemetry", {"v": 1000})  # 10 bytes
        await s.append("event", {"v": 1000})
        await s.append("event", {"v": 1000})
        try:
            await s.append("event", {"big": "x" * 20})  # needs 30 bytes, only 10 droppable
        except StoreFullError:
            pass
        return s.depth(), s.counters["dropped"]

    assert _do(main()) == ((3, 30), 0)


def test_seq_continues_after_a_refused_append():
    async def main():
        s = MemoryStore(budget_bytes=20)
        await s.append("event", {"v": 1000})
        await s.append("event", {"v": 1000})
        try:
            await s.append("event", {"v": 1000})
        except StoreFullError:
            pass
        await s.ack(2)
        return await s.append("event", {"v": 1000})

    assert _do(main()) == 3


def test_bad_lane_and_payload_are_refused():
    async def main():
        s = MemoryStore()
        errors = []
        for lane, payload in (("metrics", {"a": 1}), ("event", [1, 2]), ("event", {"a": float("nan")})):
            try:
                await s.append(lane, payload)
            except StoreError as exc:
                errors.append(str(exc))
        return errors, s.depth()

    errors, depth = _do(main())
    assert len(errors) == 3
    assert "metrics" in errors[0]
    assert "dict" in errors[1]
    assert "JSON" in errors[2]
    assert depth == (0, 0)


def test_state_versions_increment_per_put():
    async def main():
        s = MemoryStore()
        await s.open()
        assert await s.get_state("setpoint_c") is None
        a = await s.put_state("setpoint_c", 20.0, now_ms=5)
        b = await s.put_state("setpoint_c", 21.5, origin="lan", now_ms=9)
        c = await s.put_state("setpoint_c", 21.5, origin="cloud", now_ms=12)
        other = await s.put_state("mode", "heat", origin="schedule")
        got = await s.get_state("setpoint_c")
        everything = await s.load_state()
        await s.close()
        return a, b, c, other, got, everything

    a, b, c, other, got, everything = _do(main())
    assert (a.version, b.version, c.version) == (1, 2, 3)
    assert a == StateEntry("setpoint_c", 20.0, 1, "local", 5)
    assert got == StateEntry("setpoint_c", 21.5, 3, "cloud", 12)
    assert other.version == 1 and other.origin == "schedule"
    assert sorted(everything) == ["mode", "setpoint_c"]
    assert everything["setpoint_c"] == got


def test_state_is_a_copy_and_must_be_json():
    async def main():
        s = MemoryStore()
        value = {"low_c": 18, "high_c": 24}
        await s.put_state("limits", value)
        value["low_c"] = -40  # caller mutates its dict later
        kept = (await s.get_state("limits")).value
        try:
            await s.put_state("bad", {"x": object()})
        except StoreError:
            bad = True
        else:
            bad = False
        try:
            await s.put_state("k", 1, origin="martian")
        except StoreError as exc:
            origin_err = str(exc)
        return kept, bad, origin_err

    kept, bad, origin_err = _do(main())
    assert kept == {"low_c": 18, "high_c": 24}
    assert bad
    assert "martian" in origin_err


def test_header_size_matches_its_format():
    import struct

    from device.store import memory

    assert struct.calcsize(memory.RECORD_HEADER) == memory.RECORD_HEADER_SIZE


def test_base_store_methods_are_abstract():
    s = Store()
    assert sorted(s.counters) == ["acked", "appended", "compacted", "corrupt_skipped", "dropped", "full_rejections"]
    raises(NotImplementedError, s.depth)
    raises(NotImplementedError, _do, s.append("event", {}))


def test_open_store_builds_memory_and_refuses_the_rest():
    s = open_store({"backend": "memory", "budget_bytes": 4096})
    assert isinstance(s, MemoryStore)
    assert s.budget_bytes == 4096
    assert open_store({"backend": "memory"}).budget_bytes == 262144
    e = raises(ConfigError, open_store, {"backend": "sqlite", "path": "/data/store.db"})
    assert e.path == "storage.backend" and "not available yet" in e.message
    e = raises(ConfigError, open_store, {"backend": "log"})
    assert e.path == "storage.backend"
    e = raises(ConfigError, open_store, {"backend": "floppy"})
    assert "floppy" in e.message and "memory" in e.message
    e = raises(ConfigError, open_store, {})
    assert e.path == "storage.backend"
    e = raises(ConfigError, open_store, {"backend": "memory", "budget_bytes": "lots"})
    assert e.path == "storage.budget_bytes"
    e = raises(ConfigError, open_store, {"backend": "memory", "budget_bytes": True})
    assert e.path == "storage.budget_bytes"
    e = raises(ConfigError, open_store, "memory")
    assert e.path == "storage"


def test_hundreds_of_records_fit_a_small_heap():
    # Run under `micropython -X heapsize=128k`: the outbox must stay lean.
    async def main():
        s = MemoryStore(budget_bytes=12000)
        for i in range(600):
            lane = "event" if i % 10 == 0 else "telemetry"
            await s.append(lane, {"temp_c": 20.0 + i / 100, "n": i}, now_ms=i * 1000)
        batch = await s.read_outbox(50)
        await s.ack(batch[-1].seq)
        return s.depth(), s.counters

    depth, counters = _do(main())
    assert depth[1] <= 12000
    assert counters["appended"] == 600
    assert counters["dropped"] > 0


# -- chunk layout: uniform preallocated blocks, compacted in place -------------


def _lcg(state):
    # a tiny deterministic generator: the same numbers on MicroPython and CPython
    return (state * 1103515245 + 12345) & 0x7FFFFFFF


def _check_layout(s, chunk_bytes):
    """Every record whole in one chunk; chunks never resized; count bounded; totals agree."""
    import struct

    from device.store import memory

    chunks = s._chunks
    fills = s._fills
    assert len(chunks) == len(fills)
    live = 0
    count = 0
    payload_bytes = 0
    for i in range(len(chunks)):
        cap = len(chunks[i])
        fill = fills[i]
        assert cap == chunk_bytes or cap > chunk_bytes  # uniform, or one oversize record's own
        assert 0 <= fill <= cap
        assert fill > 0 or i == len(chunks) - 1  # only the last chunk may be empty
        offset = 0
        while offset < fill:
            size = struct.unpack_from(memory.RECORD_HEADER, chunks[i], offset)[3]
            offset += memory.RECORD_HEADER_SIZE + size
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


def test_events_among_telemetry_keep_chunk_count_bounded():
    async def main():
        chunk_bytes = 4 * (21 + 10)
        s = MemoryStore(budget_bytes=600, chunk_bytes=chunk_bytes)
        most = 0
        for i in range(1500):
            # events at irregular spacing, so drops leave them scattered across chunks
            lane = "event" if i % 7 == 0 or i % 11 == 0 else "telemetry"
            await s.append(lane, {"v": 1000 + i % 9000})
            _check_layout(s, chunk_bytes)
            most = max(most, len(s._chunks))
            if i % 50 == 49:
                # deliver the oldest events only, keeping 20 spread among the telemetry
                events = [r.seq for r in await s.read_outbox(1000) if r.lane == "event"]
                if len(events) > 20:
                    await s.ack(events[-21])
                    _check_layout(s, chunk_bytes)
        return s.counters, most, s.depth()

    counters, most, depth = _do(main())
    assert counters["dropped"] > 1000
    assert depth[1] <= 600
    # 600 payload bytes in 10-byte records is 60 records of 31 bytes: under 16 chunks of 124
    assert most <= 2 * 60 * 31 // (4 * 31) + 2


def test_records_stay_whole_and_intact_through_drops_and_acks():
    async def main():
        chunk_bytes = 100
        s = MemoryStore(budget_bytes=700, chunk_bytes=chunk_bytes)
        model = []  # (seq, lane, payload) still held, as the contract says they must be
        rand = 7
        for i in range(800):
            rand = _lcg(rand)
            lane = ("telemetry", "telemetry", "event", "result")[rand % 4]
            payload = {"i": i, "pad": "x" * (rand % 40)}  # 17..60 bytes: records of varied length
            size = _size(payload)
            over = sum(_size(p) for _, _, p in model) + size - 700
            if over > sum(_size(p) for _, ln, p in model if ln == "telemetry"):
                try:
                    await s.append(lane, payload, now_ms=i)
                except StoreFullError:
                    pass
                else:
                    raise AssertionError("expected StoreFullError")
                await s.ack(model[len(model) // 2][0])
                model = model[len(model) // 2 + 1 :]
                continue
            j = 0
            while over > 0:
                if model[j][1] == "telemetry":
                    over -= _size(model[j][2])
                    del model[j]
                else:
                    j += 1
            seq = await s.append(lane, payload, now_ms=i)
            model.append((seq, lane, payload))
            _check_layout(s, chunk_bytes)
            if rand % 13 == 0:
                upto = model[len(model) // 3][0]
                await s.ack(upto)
                model = [m for m in model if m[0] > upto]
                _check_layout(s, chunk_bytes)
            if i % 50 == 0:
                got = [(r.seq, r.lane, r.payload) for r in await s.read_outbox(1000)]
                assert got == model
        got = [(r.seq, r.lane, r.payload, r.created_ms) for r in await s.read_outbox(1000)]
        return got, model, s.counters

    got, model, counters = _do(main())
    assert [g[:3] for g in got] == model
    assert [g[3] for g in got] == [g[2]["i"] for g in got]  # created_ms kept with each record
    assert counters["dropped"] > 0 and counters["acked"] > 0


def test_oversize_record_gets_its_own_exact_chunk():
    async def main():
        chunk_bytes = 64
        s = MemoryStore(budget_bytes=1000, chunk_bytes=chunk_bytes)
        small = {"v": 1000}  # 31-byte records: two per chunk
        big = {"blob": "y" * 200}
        await s.append("telemetry", small)  # 1
        await s.append("event", big)  # 2: its own chunk
        big_chunk = s._chunks[-1]
        await s.append("telemetry", small)  # 3: a fresh chunk after it
        _check_layout(s, chunk_bytes)
        shapes = ([len(c) for c in s._chunks], list(s._fills))
        read = await s.read_outbox(10)
        await s.ack(1)
        after_ack = ([len(c) for c in s._chunks], list(s._fills))
        await s.ack(2)  # the oversize chunk empties and goes
        after_big = ([len(c) for c in s._chunks], list(s._fills), big_chunk in s._chunks)
        await s.ack(3)
        await s.append("event", big)  # the empty last chunk is too small: replaced
        replaced = ([len(c) for c in s._chunks], list(s._fills))
        _check_layout(s, chunk_bytes)
        return shapes, read, after_ack, after_big, replaced, _size(big)

    shapes, read, after_ack, after_big, replaced, big_size = _do(main())
    record = 21 + big_size
    assert shapes == ([64, record, 64], [31, record, 31])
    assert [r.seq for r in read] == [1, 2, 3]
    assert read[1].payload == {"blob": "y" * 200} and read[1].size == big_size
    assert after_ack == ([record, 64], [record, 31])
    assert after_big == ([64], [31], False)
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
        return s, await s.read_outbox(10**6), refused

    s, records, refused = _do(main())
    count, payload_bytes = s.depth()
    assert count == len(records)
    assert payload_bytes == sum(r.size for r in records) <= 4096
    for i in range(1, len(records)):
        assert records[i - 1].seq < records[i].seq
    c = s.counters
    assert c["appended"] == 5000 - refused
    assert c["appended"] == c["acked"] + c["dropped"] + count
    assert len(s._chunks) <= 2 * 4096 // 1024 + 2 + 4096 // 1024  # well under: headers are ~2 KB more at most


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
        return len(reserved), again, strangers, len(s._chunks) + len(s._spare)

    reserved, again, strangers, blocks = _do(main())
    assert reserved == (4096 + 1024) // 1024 + 2
    assert again == reserved
    assert strangers == 0  # every chunk came from the reserve: no allocation after open
    assert blocks == reserved
