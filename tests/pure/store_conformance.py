"""The store contract (``device/store/base.py``), checked the same way on every backend.

A library, not a test module: each ``check_*`` is an ``async def`` taking

* ``make(budget_bytes) -> open_fn``: fresh, empty storage with that budget;
  ``await open_fn()`` (or ``open_fn(readonly=True)``) builds a store on it and
  opens it. Called again after ``close``, it reopens the same storage: a
  reboot for a durable backend, a new empty store for ``memory``.
* ``durable``: whether the storage outlives a store (reopen checks run only then).

Backend wrappers (``test_store_memory.py``, ``test_store_log.py``,
``tests/unit/test_store_sqlite_conformance.py``) turn ``CHECKS`` into tests:
the portable ones with one plain ``test_<check>`` function per check (both
pytest and ``tests/portable/mprun.py`` count and run only functions written
out in the source), checked complete with ``unwrapped``; the CPython one with
pytest's parametrize. Plain asserts, no pytest import: this runs under
MicroPython too.
"""

import asyncio
import json

from device.errors import StoreError, StoreFullError
from device.hlc import make_stamp, physical_ms
from device.store.base import COUNTER_NAMES, INBOX_MAX, StateEntry
from tests.pure._store_check import payload_size, read_all, telemetry_accounted

BIG = 1 << 16  # a budget no check that is not about the budget comes near (64 KiB)


async def refused(exc_type, coro) -> bool:  # type: ignore[no-untyped-def]
    """Await ``coro``; True if it raised ``exc_type`` (other errors propagate)."""
    try:
        await coro
    except exc_type:
        return True
    return False


async def reopen(store, open_fn):  # type: ignore[no-untyped-def]
    await store.close()
    return await open_fn()


# -- state -------------------------------------------------------------------


async def check_state_versions_origins_and_stamps(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        assert await s.get_state("setpoint_c") is None
        assert await s.load_state() == {}
        a = await s.put_state("setpoint_c", 20.0)
        b = await s.put_state("setpoint_c", 21.5, "lan", wall_ms=1_700_000_000_000)
        c = await s.put_state("setpoint_c", 21.5, origin="cloud")  # wall time unknown again
        other = await s.put_state("mode", "heat", origin="schedule", wall_ms=5)  # a wall clock far behind
        given = make_stamp(1_800_000_000_000, 7)
        d = await s.put_state("mode", "cool", origin="cloud", stamp=given)
        older = make_stamp(1_000, 1)
        e = await s.put_state("fan", True, origin="lan", stamp=older)  # kept, though older than the clock
        f = await s.put_state("fan", False)

        assert [x.version for x in (a, b, c, other, d, e, f)] == [1, 2, 3, 1, 2, 1, 2]
        assert [x.origin for x in (a, b, c, other, d, e, f)] == [
            "local",
            "lan",
            "cloud",
            "schedule",
            "cloud",
            "lan",
            "local",
        ]
        assert a.stamp < b.stamp < c.stamp < other.stamp < d.stamp < f.stamp
        assert physical_ms(b.stamp) == 1_700_000_000_000  # the clock jumped to wall time
        assert d.stamp == given and e.stamp == older
        assert a == StateEntry("setpoint_c", 20.0, 1, "local", a.stamp)
        assert await s.get_state("setpoint_c") == c
        assert c == StateEntry("setpoint_c", 21.5, 3, "cloud", c.stamp)
        everything = await s.load_state()
        assert sorted(everything) == ["fan", "mode", "setpoint_c"]
        assert everything["mode"] == d and everything["fan"] == f
        everything.clear()  # a new dict each time: the store's own is untouched
        assert len(await s.load_state()) == 3
    finally:
        await s.close()


async def check_state_values_are_copies_of_plain_json(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        value = {"low_c": 18, "high_c": 24.5, "days": [1, 2, 3], "label": "séjour", "off": None, "on": True}
        await s.put_state("limits", value)
        value["low_c"] = -40  # the caller changes its dict later
        value["days"].append(9)
        got = await s.get_state("limits")
        assert got.value == {"low_c": 18, "high_c": 24.5, "days": [1, 2, 3], "label": "séjour", "off": None, "on": True}
        none = await s.put_state("nothing", None)
        assert none.value is None and (await s.get_state("nothing")).value is None
    finally:
        await s.close()


async def check_bad_state_is_refused_and_changes_nothing(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        good = await s.put_state("k", 1)
        assert await refused(StoreError, s.put_state("k", object()))
        assert await refused(StoreError, s.put_state("k", float("nan")))
        assert await refused(StoreError, s.put_state("k", {"x": float("inf")}))
        assert await refused(StoreError, s.put_state("k", 2, origin="martian"))
        assert await refused(StoreError, s.put_state("", 2))
        assert await refused(StoreError, s.put_state(5, 2))
        assert await s.get_state("k") == good
        assert sorted(await s.load_state()) == ["k"]
        assert (await s.put_state("k", 3)).version == 2  # refusals used no version
    finally:
        await s.close()


async def check_state_survives_reopen_and_stamps_keep_increasing(make, durable):  # type: ignore[no-untyped-def]
    if not durable:
        return
    open_fn = make(BIG)
    s = await open_fn()
    try:
        await s.put_state("setpoint_c", 20.0, wall_ms=1_700_000_000_000)
        await s.put_state("setpoint_c", 21.0, "cloud", stamp=make_stamp(1_900_000_000_000, 3))
        await s.put_state("schedule", {"mon": [[420, 21.0], [1320, 17.5]]}, "lan")
        await s.put_state("label", "séjour")
        before = await s.load_state()
        highest = max(entry.stamp for entry in before.values())
        s = await reopen(s, open_fn)
        after = await s.load_state()
        assert sorted(after) == sorted(before)
        for key in before:
            assert after[key] == before[key], key
        # No wall time after the reboot: the clock still starts past every stored stamp.
        nxt = await s.put_state("setpoint_c", 22.0)
        assert nxt.version == 3 and nxt.stamp > highest
        s = await reopen(s, open_fn)
        assert await s.get_state("setpoint_c") == nxt
    finally:
        await s.close()


# -- outbox ------------------------------------------------------------------


async def check_seq_strictly_increases_and_is_never_reused(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    try:
        seqs = []
        for i in range(6):
            expected = s.next_seq()
            seq = await s.append(("telemetry", "event", "result")[i % 3], {"i": i}, now_ms=i)
            assert seq == expected
            assert not seqs or seq > seqs[-1]
            seqs.append(seq)
        assert s.seq_range() == (seqs[0], seqs[-1])
        assert await s.ack(seqs[-1]) == 6
        assert s.depth() == (0, 0) and s.seq_range() == (None, None)
        assert s.next_seq() > seqs[-1]
        seqs.append(await s.append("event", {"after": "all acked"}))
        assert seqs[-1] > seqs[-2]
        if durable:
            await s.ack(seqs[-1])  # everything acked, then a reboot: still no reuse
            s = await reopen(s, open_fn)
            assert s.next_seq() > seqs[-1]
            seqs.append(await s.append("telemetry", {"boot": 2}))
            s = await reopen(s, open_fn)  # a boot that appends nothing
            s = await reopen(s, open_fn)
            seqs.append(await s.append("telemetry", {"boot": 4}))
            assert await s.ack(seqs[-1]) == 2
            s = await reopen(s, open_fn)
            seqs.append(await s.append("result", {"boot": 5}))
        for i in range(1, len(seqs)):
            assert seqs[i] > seqs[i - 1], seqs
    finally:
        await s.close()


async def check_read_outbox_oldest_first_and_after_seq(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        payloads = [{"temp_c": 20.5}, {"door": "open"}, {"cmd": "c-7", "ok": True}, {"temp_c": 20.25}]
        lanes = ["telemetry", "event", "result", "telemetry"]
        seqs = []
        for i in range(4):
            seqs.append(await s.append(lanes[i], payloads[i], now_ms=100 + 50 * i))
        first = await s.read_outbox(2)
        assert [r.seq for r in first] == seqs[:2]
        for i in range(2):
            r = first[i]
            assert (r.lane, r.payload, r.created_ms, r.boot) == (lanes[i], payloads[i], 100 + 50 * i, s.boot_id)
            assert r.size == payload_size(payloads[i])
        assert [r.seq for r in await s.read_outbox(10)] == seqs
        assert await s.read_outbox(0) == []
        assert [r.seq for r in await s.read_outbox(10, after_seq=seqs[0])] == seqs[1:]
        assert [r.seq for r in await s.read_outbox(1, after_seq=seqs[1])] == [seqs[2]]
        assert await s.read_outbox(10, after_seq=seqs[-1]) == []
        await s.ack_seqs([seqs[1]])
        # after_seq need not be a seq still held
        assert [r.seq for r in await s.read_outbox(10, after_seq=seqs[1])] == seqs[2:]
        assert [r.seq for r in await s.read_outbox(2, after_seq=seqs[0])] == [seqs[2], seqs[3]]
        assert s.depth()[0] == 3  # reading leaves records in place
    finally:
        await s.close()


async def check_read_outbox_lanes_filter(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        lanes = ["telemetry", "event", "telemetry", "result", "telemetry", "event", "telemetry", "result"]
        seqs = []
        for i in range(len(lanes)):
            seqs.append(await s.append(lanes[i], {"i": i}))

        def of(*wanted):  # type: ignore[no-untyped-def]
            return [seqs[i] for i in range(len(lanes)) if lanes[i] in wanted]

        assert [r.seq for r in await s.read_outbox(10, lanes=("event",))] == of("event")
        assert [r.seq for r in await s.read_outbox(10, lanes=["result", "event"])] == of("event", "result")
        assert [r.seq for r in await s.read_outbox(10, lanes=None)] == seqs
        assert [r.seq for r in await s.read_outbox(10, lanes=("telemetry", "event", "result"))] == seqs
        got = await s.read_outbox(10, lanes=("result",))
        assert [(r.lane, r.payload) for r in got] == [("result", {"i": 3}), ("result", {"i": 7})]
        # limit counts only the records returned; after_seq works with the filter
        assert [r.seq for r in await s.read_outbox(1, lanes=("event",))] == [seqs[1]]
        assert [r.seq for r in await s.read_outbox(10, after_seq=seqs[1], lanes=("event",))] == [seqs[5]]
        assert [r.seq for r in await s.read_outbox(2, after_seq=seqs[0], lanes=("telemetry",))] == [seqs[2], seqs[4]]
        assert await s.read_outbox(10, after_seq=seqs[5], lanes=("event",)) == []
        assert await s.read_outbox(10, lanes=()) == []
        assert await s.read_outbox(0, lanes=("event",)) == []
        assert await refused(StoreError, s.read_outbox(10, lanes=("alarm",)))
        await s.ack_seqs([seqs[1]])
        assert [r.seq for r in await s.read_outbox(10, lanes=("event",))] == [seqs[5]]
        await s.ack_seqs(of("event"))
        assert await s.read_outbox(10, lanes=("event",)) == []
        assert [r.seq for r in await s.read_outbox(10, lanes=("telemetry", "result"))] == of("telemetry", "result")
        assert s.depth()[0] == 6  # reading leaves records in place
        # A longer outbox (several chunks or pages), read in pages per lane as a drain does.
        model = {}
        for i in range(240):
            lane = "event" if i % 7 == 0 else ("result" if i % 11 == 0 else "telemetry")
            model[await s.append(lane, {"i": i, "pad": "x" * (i % 13)})] = lane
        await s.ack(seqs[-1])  # the first part's records
        gone = sorted(model)[3::5]  # acked here and there
        await s.ack_seqs(gone)
        for seq in gone:
            del model[seq]
        held = sorted(model)
        for wanted in (("event",), ("result",), ("telemetry",), ("event", "result")):
            expect = [seq for seq in held if model[seq] in wanted]
            got: list = []
            after = 0
            for _ in range(len(expect) + 2):  # pages of 7
                page = await s.read_outbox(7, after_seq=after, lanes=wanted)
                got += [r.seq for r in page]
                if len(page) < 7:
                    break
                after = page[-1].seq
            assert got == expect, wanted
    finally:
        await s.close()


async def check_ack_upto_and_ack_seqs(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        seqs = []
        for i in range(8):
            seqs.append(await s.append("event" if i % 2 else "telemetry", {"i": i}))
        assert await s.ack(seqs[2]) == 3
        assert await s.ack(seqs[2]) == 0  # acking twice is harmless
        assert await s.ack(0) == 0
        assert await s.ack_seqs([seqs[4], seqs[6], seqs[-1] + 1000]) == 2  # absent seqs are ignored
        assert await s.ack_seqs([]) == 0
        assert await s.ack_seqs([seqs[4]]) == 0
        assert [r.seq for r in await read_all(s)] == [seqs[3], seqs[5], seqs[7]]
        assert await s.ack(seqs[6]) == 2  # seqs[4] and seqs[6] are already gone
        assert [r.payload for r in await read_all(s)] == [{"i": 7}]
        assert s.counters["appended"] == 8 and s.counters["acked"] == 7
        assert await s.ack(seqs[-1] + 5) == 1
        assert s.depth() == (0, 0)
    finally:
        await s.close()


async def check_depth_and_seq_range(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        assert s.depth() == (0, 0) and s.seq_range() == (None, None)
        payloads = [{"temp_c": 21.25}, {"alarm": "smoke", "zone": 2}, {"x": "é"}, {"y": "日本"}]
        seqs = []
        for payload in payloads:
            seqs.append(await s.append("event", payload))
        sizes = [payload_size(p) for p in payloads]
        assert sizes[2] == 10 and sizes[3] == 14  # UTF-8 bytes, not \\u escapes
        assert s.depth() == (4, sum(sizes))
        assert s.seq_range() == (seqs[0], seqs[3])
        assert [r.size for r in await read_all(s)] == sizes
        await s.ack(seqs[0])
        assert s.depth() == (3, sum(sizes[1:])) and s.seq_range() == (seqs[1], seqs[3])
        await s.ack_seqs([seqs[3]])
        assert s.depth() == (2, sizes[1] + sizes[2]) and s.seq_range() == (seqs[1], seqs[2])
        await s.ack_seqs([seqs[1]])
        assert s.depth() == (1, sizes[2]) and s.seq_range() == (seqs[2], seqs[2])
    finally:
        await s.close()


async def check_bad_lane_and_payload_are_refused(make, durable):  # type: ignore[no-untyped-def]
    s = await make(BIG)()
    try:
        nxt = s.next_seq()
        for lane, payload in (
            ("metrics", {"a": 1}),
            ("event", [1, 2]),
            ("event", "text"),
            ("event", {"a": float("nan")}),
            ("event", {"a": object()}),
        ):
            assert await refused(StoreError, s.append(lane, payload)), (lane, payload)
        assert s.depth() == (0, 0) and s.next_seq() == nxt
        assert s.counters["appended"] == 0
    finally:
        await s.close()


async def check_records_survive_reopen_unchanged(make, durable):  # type: ignore[no-untyped-def]
    if not durable:
        return
    open_fn = make(BIG)
    s = await open_fn()
    try:
        first_boot = s.boot_id
        payloads = [
            {"temp_c": 20.5, "heat": True, "mode": "heat", "rh": None},
            {"type": "door", "zone": "séjour", "nested": {"a": [1, 2.5, "x"], "b": {}}},
            {"cmd": "c-1", "ok": False, "error": "out of range: 99"},
            {"big": 2**40, "neg": -17, "f": 1e-7},
            {},
        ]
        seqs = []
        for i in range(len(payloads)):
            lane = ("telemetry", "event", "result", "telemetry", "event")[i]
            seqs.append(await s.append(lane, payloads[i], now_ms=1000 * i + 2**33))
        await s.ack(seqs[0])
        await s.ack_seqs([seqs[2]])
        before = await read_all(s)
        depth, span = s.depth(), s.seq_range()
        s = await reopen(s, open_fn)
        assert await read_all(s) == before
        assert s.depth() == depth and s.seq_range() == span
        assert [r.boot for r in before] == [first_boot] * 3
        new = await s.append("event", {"boot": "second"}, now_ms=5)
        s = await reopen(s, open_fn)
        after = await read_all(s)
        assert after[:3] == before
        assert after[3].seq == new and after[3].boot == first_boot + 1 and after[3].created_ms == 5
    finally:
        await s.close()


async def check_boot_id_counts_opens(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    try:
        assert s.boot_id >= 1
        boot = s.boot_id
        seq = await s.append("event", {"n": 1})
        assert (await read_all(s))[0].boot == boot
        s = await reopen(s, open_fn)
        if not durable:
            assert s.boot_id == 1  # a RAM store starts over every time
            return
        assert s.boot_id == boot + 1
        s = await reopen(s, open_fn)
        assert s.boot_id == boot + 2
        await s.append("event", {"n": 2})
        records = await read_all(s)
        assert (records[0].seq, records[0].boot) == (seq, boot)
        assert records[1].boot == boot + 2
        assert s.stats()["boot_id"] == boot + 2
    finally:
        await s.close()


# -- budget and retention ----------------------------------------------------


def _sample(i: int) -> dict:
    return {
        "temp_c": 18 + (i * 7 % 50) / 10,
        "heat": i % 3 == 0,
        "rh": None if i % 4 == 0 else 40 + i % 9,
        "mode": "heat" if i < 150 else "off",
    }


def _sampled(i: int) -> tuple:
    """Sample ``i`` and its created_ms, as ``telemetry_accounted`` looks them up (``telemetry``: seq -> i)."""
    return _sample(i), i * 1000


async def check_telemetry_folds_into_aggregates_within_budget(make, durable):  # type: ignore[no-untyped-def]
    budget = 3000
    open_fn = make(budget)
    s = await open_fn()
    try:
        telemetry: dict = {}
        events: dict = {}
        for i in range(300):
            if i % 50 == 3:
                payload = {"type": "door", "n": i}
                events[await s.append("event", payload, now_ms=i * 1000)] = payload
            else:
                payload = _sample(i)
                telemetry[await s.append("telemetry", payload, now_ms=i * 1000)] = i
            assert s.depth()[1] <= budget
        records = await read_all(s)
        assert s.counters["compacted"] > 0 and s.counters["full_rejections"] == 0
        assert s.counters["appended"] == 300
        # Nothing was acked: every record not held was folded into an aggregate.
        assert s.counters["appended"] - s.counters["compacted"] == len(records) == s.depth()[0]
        assert sum(r.size for r in records) == s.depth()[1]
        held_events = [r for r in records if r.lane == "event"]
        assert [(r.seq, r.payload) for r in held_events] == sorted(events.items())
        assert any(isinstance(r.payload.get("agg"), dict) for r in records)
        for i in range(1, len(records)):
            assert records[i - 1].seq < records[i].seq
        telemetry_accounted(records, telemetry, set(), _sampled)
        assert records[-1].payload == _sample(299)  # the oldest fold first: the newest stay as they came
        aggregate = next(r for r in records if isinstance(r.payload.get("agg"), dict))
        assert "heat" in aggregate.payload["stats"]  # booleans fold as 0/1: a duty cycle
        if durable:
            s = await reopen(s, open_fn)
            assert await read_all(s) == records
    finally:
        await s.close()


async def check_acked_seqs_inside_a_fold_are_not_counted(make, durable):  # type: ignore[no-untyped-def]
    budget = 2500
    s = await make(budget)()
    try:
        telemetry: dict = {}
        acked: set = set()
        for i in range(200):
            seq = await s.append("telemetry", _sample(i), now_ms=i * 1000)
            telemetry[seq] = i
            if i % 25 == 24:
                # The cloud got a few scattered records (plain ones, not aggregates).
                plain = [r.seq for r in await read_all(s) if "agg" not in r.payload]
                chosen = plain[1::4]
                assert await s.ack_seqs(chosen) == len(chosen)
                acked.update(chosen)
        records = await read_all(s)
        telemetry_accounted(records, telemetry, acked, _sampled)
        assert s.counters["appended"] == s.counters["acked"] + s.counters["compacted"] + len(records)
    finally:
        await s.close()


async def check_events_are_never_folded_and_a_full_budget_refuses(make, durable):  # type: ignore[no-untyped-def]
    budget = 1200
    s = await make(budget)()
    try:
        telemetry: dict = {}
        for i in range(60):
            telemetry[await s.append("telemetry", _sample(i), now_ms=i * 1000)] = i
        events: dict = {}
        full = False
        for i in range(200):  # events push the telemetry into aggregates, then fill the budget
            payload = {"type": "alarm", "n": i, "pad": "e" * 20}
            nxt, depth = s.next_seq(), s.depth()
            try:
                seq = await s.append("result" if i % 2 else "event", payload, now_ms=100 + i)
            except StoreFullError as exc:
                assert "budget" in str(exc)
                # No seq used, nothing added (telemetry may have folded trying to make room).
                assert s.next_seq() == nxt and s.depth()[1] <= depth[1]
                full = True
                break
            events[seq] = payload
            assert s.depth()[1] <= budget
        assert full and len(events) > 15
        assert s.counters["full_rejections"] == 1
        # A telemetry sample that does not fit is refused too: the control loop catches it and goes on.
        big = {"temp_c": 20.0, "note": "t" * 200}
        assert await refused(StoreFullError, s.append("telemetry", big))
        assert s.counters["full_rejections"] == 2
        records = await read_all(s)
        assert [(r.seq, r.payload) for r in records if r.lane != "telemetry"] == sorted(events.items())
        telemetry_accounted(records, telemetry, set(), _sampled)
        # Acking makes room again.
        await s.ack_seqs(sorted(events)[:10])
        assert await s.append("event", {"type": "after"}) > max(events)
    finally:
        await s.close()


async def check_compact_folds_only_past_high_water(make, durable):  # type: ignore[no-untyped-def]
    budget = 1000  # high water 800, low water 600
    open_fn = make(budget)
    s = await open_fn()
    try:
        assert await s.compact() == 0  # empty
        telemetry: dict = {}
        events = []
        for i in range(5):
            # Alternating lanes leave no run to fold, so the bytes may pass the high water.
            events.append(await s.append("event", {"e": i}, now_ms=2 * i))
            payload = {"note": "x" * 150, "n": i}
            telemetry[await s.append("telemetry", payload, now_ms=2 * i + 1)] = (payload, 2 * i + 1)
        assert s.counters["compacted"] == 0 and s.depth()[1] > 800
        await s.ack_seqs([events[1]])  # two telemetry records become neighbours
        before = s.depth()
        assert before[1] > 800
        folded = await s.compact()
        assert folded >= 1 and s.counters["compacted"] == folded
        assert s.depth()[0] == before[0] - folded and s.depth()[1] < before[1]
        records = await read_all(s)
        assert [r.seq for r in records if r.lane == "event"] == [events[0]] + events[2:]
        telemetry_accounted(records, telemetry, set())
        if s.depth()[1] <= 800:
            assert await s.compact() == 0  # under the high water retention does nothing
            assert await read_all(s) == records
        if durable:
            s = await reopen(s, open_fn)
            assert await read_all(s) == records
    finally:
        await s.close()


# -- inbox -------------------------------------------------------------------


async def check_inbox_seen_add_expire(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    try:
        assert not await s.inbox_seen("c1")
        assert await s.inbox_add("c1", 1000) is True
        assert await s.inbox_add("c1", 5000) is False  # already there: kept as it was
        assert await s.inbox_seen("c1")
        await s.inbox_add("c2", 2000)
        await s.inbox_add("c3", 3000)
        assert await s.inbox_expire(999) == 0
        assert await s.inbox_expire(1000) == 1  # expiry is inclusive
        assert not await s.inbox_seen("c1") and await s.inbox_seen("c2")
        assert await refused(StoreError, s.inbox_add("", 10))
        assert await refused(StoreError, s.inbox_add(7, 10))
        if durable:
            s = await reopen(s, open_fn)
            assert not await s.inbox_seen("c1")
            assert await s.inbox_seen("c2") and await s.inbox_seen("c3")
            assert await s.inbox_expire(2500) == 1
            s = await reopen(s, open_fn)
            assert not await s.inbox_seen("c2") and await s.inbox_seen("c3")
        assert s.stats()["inbox"] == (1 if durable else 2)
    finally:
        await s.close()


async def check_inbox_evicts_the_soonest_to_expire(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    try:
        await s.inbox_add("soonest", 500)
        for i in range(INBOX_MAX - 1):
            await s.inbox_add("cmd-%d" % i, 10_000 + i)
        assert s.stats()["inbox"] == INBOX_MAX and s.counters["inbox_evicted"] == 0
        assert await s.inbox_add("newest", 99_999)
        assert s.counters["inbox_evicted"] == 1
        assert not await s.inbox_seen("soonest") and await s.inbox_seen("newest")
        await s.inbox_add("one-more", 99_999)
        assert not await s.inbox_seen("cmd-0") and await s.inbox_seen("cmd-1")
        assert s.stats()["inbox"] == INBOX_MAX
        if durable:
            s = await reopen(s, open_fn)
            assert s.stats()["inbox"] == INBOX_MAX
            assert not await s.inbox_seen("soonest") and not await s.inbox_seen("cmd-0")
            assert await s.inbox_seen("newest") and await s.inbox_seen("one-more")
            assert await s.inbox_seen("cmd-%d" % (INBOX_MAX - 2))
    finally:
        await s.close()


# -- counters, stats, lifecycle ------------------------------------------------


async def check_counters_and_stats_shape(make, durable):  # type: ignore[no-untyped-def]
    s = await make(50_000)()
    try:
        assert sorted(s.counters) == sorted(COUNTER_NAMES)
        for name in COUNTER_NAMES:
            assert s.counters[name] == 0, name
        a = await s.append("telemetry", {"t": 1})
        b = await s.append("event", {"e": 2})
        c = await s.append("result", {"r": 3})
        await s.ack(a)
        await s.put_state("mode", "heat")
        await s.inbox_add("c1", 10)
        stats = s.stats()
        for key in ("backend", "boot_id", "budget_bytes", "outbox", "next_seq", "state_keys", "inbox", "counters"):
            assert key in stats, key
        assert stats["backend"] == s.backend and s.backend in ("memory", "sqlite", "log")
        assert stats["budget_bytes"] == 50_000 and stats["boot_id"] == s.boot_id
        assert stats["outbox"] == {"records": 2, "bytes": s.depth()[1], "first_seq": b, "last_seq": c}
        assert stats["next_seq"] == s.next_seq()
        assert stats["state_keys"] == 1 and stats["inbox"] == 1
        assert stats["counters"]["appended"] == 3 and stats["counters"]["acked"] == 1
        stats["counters"]["appended"] = -1  # a copy: the store's counters are its own
        assert s.counters["appended"] == 3
        json.dumps(stats)  # plain JSON, for `brickproof store stats`
    finally:
        await s.close()


async def check_close_twice_and_reopen(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    await s.append("event", {"n": 1})
    await s.close()
    await s.close()
    s = await open_fn()
    try:
        assert s.depth()[0] == (1 if durable else 0)
    finally:
        await s.close()
        await s.close()


async def check_readonly_open_reads_and_refuses_writes(make, durable):  # type: ignore[no-untyped-def]
    open_fn = make(BIG)
    s = await open_fn()
    await s.append("event", {"n": 1})
    await s.put_state("mode", "heat")
    boot = s.boot_id
    records = await read_all(s)
    await s.close()
    s = await open_fn(readonly=True)
    try:
        if durable:
            assert await read_all(s) == records
            assert (await s.get_state("mode")).value == "heat"
        depth = s.depth()
        assert await refused(StoreError, s.append("event", {"n": 2}))
        assert await refused(StoreError, s.put_state("mode", "cool"))
        assert await refused(StoreError, s.inbox_add("c1", 10))
        assert s.depth() == depth
    finally:
        await s.close()
    if durable:
        s = await open_fn()
        try:
            assert s.boot_id == boot + 1  # the inspection was not a boot
            assert await read_all(s) == records
        finally:
            await s.close()


CHECKS = (
    check_state_versions_origins_and_stamps,
    check_state_values_are_copies_of_plain_json,
    check_bad_state_is_refused_and_changes_nothing,
    check_state_survives_reopen_and_stamps_keep_increasing,
    check_seq_strictly_increases_and_is_never_reused,
    check_read_outbox_oldest_first_and_after_seq,
    check_read_outbox_lanes_filter,
    check_ack_upto_and_ack_seqs,
    check_depth_and_seq_range,
    check_bad_lane_and_payload_are_refused,
    check_records_survive_reopen_unchanged,
    check_boot_id_counts_opens,
    check_telemetry_folds_into_aggregates_within_budget,
    check_acked_seqs_inside_a_fold_are_not_counted,
    check_events_are_never_folded_and_a_full_budget_refuses,
    check_compact_folds_only_past_high_water,
    check_inbox_seen_add_expire,
    check_inbox_evicts_the_soonest_to_expire,
    check_counters_and_stats_shape,
    check_close_twice_and_reopen,
    check_readonly_open_reads_and_refuses_writes,
)


def check_name(check) -> str:  # type: ignore[no-untyped-def]
    return check.__name__[len("check_") :]


def run(check, make, durable, cleanup=None) -> None:  # type: ignore[no-untyped-def]
    """Run one check to the end; ``cleanup()`` afterwards, pass or fail."""
    try:
        asyncio.run(check(make, durable))
    finally:
        if cleanup is not None:
            cleanup()


def unwrapped(namespace: dict) -> list:
    """The checks a backend's test module has no ``test_<check>`` for (it should have none)."""
    return [check_name(c) for c in CHECKS if "test_" + check_name(c) not in namespace]
