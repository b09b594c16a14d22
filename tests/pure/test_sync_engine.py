"""The sync engine (device/link/sync.py) against a fake MQTT client and a memory store.

The fake client is a ``ClientBase`` that records what is published and lets
the test decide when PUBACKs arrive, when messages come in and when the
session is lost. Waits are bounded by a generous real-time limit, never
asserted on.
"""

import asyncio
import json

from device.compat import monotonic_ms, sleep_ms
from device.link import topics
from device.link.client import ClientBase
from device.link.sync import DESIRED_VERSION_KEY, SyncEngine
from device.linkerrors import LinkBusyError
from device.store.memory import MemoryStore

DEV = "dev1"
LIMIT_MS = 10000  # generous: a bound on waiting, not a timing assertion


class FakeClock:
    def __init__(self, now=1000, wall=None):  # type: ignore[no-untyped-def]
        self.now = now
        self.wall = wall  # wall ms at `now`, or None

    def now_ms(self):  # type: ignore[no-untyped-def]
        return self.now

    def wall_ms(self):  # type: ignore[no-untyped-def]
        return self.wall


class Env:
    def __init__(self, store, clock):  # type: ignore[no-untyped-def]
        self.store = store
        self.clock = clock


class FakeClient(ClientBase):
    def __init__(self, window=16, auto_ack=False):  # type: ignore[no-untyped-def]
        super().__init__("fake-" + DEV, window=window)
        self.auto_ack = auto_ack
        self.sent = []  # (pid, topic, payload bytes, qos, retain)
        self.unacked = {}  # pid -> index in sent
        self.subscribed = []
        self.most_records_in_flight = 0
        self._next_pid = 0
        self._note_open(False)

    async def subscribe(self, filters):  # type: ignore[no-untyped-def]
        self._check_open()
        self.subscribed = self.subscribed + list(filters)
        return [f[1] for f in filters]

    def publish(self, topic, payload, qos=1, retain=False):  # type: ignore[no-untyped-def]
        self._check_open()
        pid = 0
        if qos:
            if len(self.unacked) >= self.window:
                raise LinkBusyError("window full", "busy")
            self._next_pid = self._next_pid % 65535 + 1
            while self._next_pid in self.unacked:
                self._next_pid = self._next_pid % 65535 + 1
            pid = self._next_pid
            self.unacked[pid] = len(self.sent)
        self.sent.append((pid, topic, bytes(payload), qos, retain))
        records = 0
        for p in self.unacked:
            if "/out/" in self.sent[self.unacked[p]][1]:
                records += 1
        self.most_records_in_flight = max(self.most_records_in_flight, records)
        if self.auto_ack and qos:
            self.ack([pid])
        return pid

    def in_flight(self):  # type: ignore[no-untyped-def]
        return len(self.unacked)

    # -- the test's side ------------------------------------------------------

    def ack(self, pids=None):  # type: ignore[no-untyped-def]
        for pid in list(self.unacked) if pids is None else pids:
            del self.unacked[pid]
            self._note_ack(pid)

    def ack_records(self, n=None):  # type: ignore[no-untyped-def]
        """PUBACK the oldest ``n`` outstanding records (all when None)."""
        pids = sorted((self.unacked[p], p) for p in self.unacked if "/out/" in self.sent[self.unacked[p]][1])
        if n is not None:
            pids = pids[:n]
        self.ack([p for _, p in pids])

    def feed(self, topic, payload):  # type: ignore[no-untyped-def]
        self._note_message(topic, payload)

    def lose_session(self):  # type: ignore[no-untyped-def]
        """The broker forgot the session: every unacked QoS 1 publish is reported dropped."""
        dropped = list(self.unacked)
        self.unacked = {}
        self._note_dropped(dropped)

    async def close(self):  # type: ignore[no-untyped-def]
        self._note_closed("closed")

    # -- reading what went out ---------------------------------------------------

    def records(self):  # type: ignore[no-untyped-def]
        """Outbox records published, in order: decoded envelopes."""
        return [json.loads(s[2]) for s in self.sent if "/out/" in s[1]]

    def on(self, topic):  # type: ignore[no-untyped-def]
        return [s for s in self.sent if s[1] == topic]


async def make_store(budget=1 << 16):  # type: ignore[no-untyped-def]
    store = MemoryStore(budget_bytes=budget)
    await store.open()
    return store


async def until(cond, what="condition"):  # type: ignore[no-untyped-def]
    start = monotonic_ms()
    while not cond():
        if monotonic_ms() - start > LIMIT_MS:
            raise AssertionError("timed out waiting for " + what)
        await sleep_ms(2)


async def session(engine, client, body, rate_limited=False):  # type: ignore[no-untyped-def]
    """Run ``engine.serve(client)`` while ``await body()`` drives it; close the client; return serve's result."""
    task = asyncio.create_task(engine.serve(client, rate_limited))
    try:
        await body()
    finally:
        await client.close()
    return await asyncio.wait_for(task, LIMIT_MS / 1000)


def engine_for(store, clock=None, **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("poll_ms", 5)
    return SyncEngine(Env(store, clock or FakeClock()), DEV, **kwargs)


# -- setup and order ---------------------------------------------------------------


async def test_serve_subscribes_reports_online_and_returns_on_close():
    store = await make_store()
    await store.put_state("mode", "heat")
    await store.put_state("_link.lkg.primary", ["10.0.0.2"])
    client = FakeClient()
    engine = engine_for(store)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: client.on(topics.reported_topic(DEV)), "reported")

    assert await session(engine, client, body) == "closed"
    assert sorted(client.subscribed) == [(topics.command_topic(DEV), 1), (topics.desired_topic(DEV), 1)]
    status = client.on(topics.status_topic(DEV))
    assert status[0][2:] == (b"online", 1, True)
    reported = client.on(topics.reported_topic(DEV))[0]
    assert reported[3:] == (1, True)
    doc = json.loads(reported[2])
    assert list(doc["state"]) == ["mode"] and doc["version"] == 1  # the private key stays home
    assert doc["state"]["mode"]["value"] == "heat" and doc["state"]["mode"]["origin"] == "local"


async def test_lanes_drain_by_priority_each_in_seq_order():
    store = await make_store()
    lanes = ["telemetry", "telemetry", "event", "telemetry", "result", "event", "telemetry", "result"]
    for i in range(len(lanes)):
        await store.append(lanes[i], {"i": i})
    client = FakeClient(auto_ack=True)
    engine = engine_for(store)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty outbox")

    await session(engine, client, body)
    got = [(r["lane"], r["p"]["i"]) for r in client.records()]
    assert got == [("event", 2), ("event", 5), ("result", 4), ("result", 7)] + [("telemetry", i) for i in (0, 1, 3, 6)]
    for s in client.sent:
        if "/out/" in s[1]:
            lane = json.loads(s[2])["lane"]
            assert s[1] == topics.out_topic(DEV, lane) and s[3] == 1 and not s[4]


async def test_an_event_appended_during_a_telemetry_backlog_goes_next():
    store = await make_store()
    for i in range(30):
        await store.append("telemetry", {"i": i})
    client = FakeClient()
    engine = engine_for(store, window=4)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 4, "first window")
        await store.append("event", {"alarm": "smoke"})
        client.ack_records(1)
        await until(lambda: len(client.records()) == 5, "next publish")
        client.ack_records()
        await until(lambda: len(client.records()) == 9, "next window")

    await session(engine, client, body)
    assert client.records()[4]["p"] == {"alarm": "smoke"}


# -- window and acks ------------------------------------------------------------------


async def test_the_window_is_never_exceeded_and_every_record_goes_out_once():
    store = await make_store()
    for i in range(120):
        await store.append("event" if i % 9 == 0 else "telemetry", {"i": i})
    client = FakeClient(window=32)  # more room than the engine's window: the engine's limit holds
    engine = engine_for(store, window=5, ack_batch=7)

    async def body():  # type: ignore[no-untyped-def]
        n = 0
        while store.depth()[0] and n < 2000:
            n += 1
            await until(lambda: client.unacked, "a record in flight")
            client.ack_records(1 + n % 3)
            await sleep_ms(1)
        await until(lambda: store.depth()[0] == 0, "empty outbox")

    await session(engine, client, body)
    assert client.most_records_in_flight == 5
    seqs = [r["seq"] for r in client.records()]
    assert sorted(seqs) == list(range(1, 121))  # each exactly once
    stats = engine.stats()
    assert stats["published"] == 120 and stats["acked"] == 120 and stats["store_acks"] == 120
    assert stats["republished"] == 0 and stats["in_flight"] == 0


async def test_the_client_window_bounds_the_engine_too():
    store = await make_store()
    for i in range(40):
        await store.append("telemetry", {"i": i})
    client = FakeClient(window=3)
    engine = engine_for(store, window=20)

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(200):
            if not store.depth()[0]:
                break
            await until(lambda: client.unacked, "in flight")
            client.ack_records(1)
            await sleep_ms(1)

    await session(engine, client, body)
    assert client.most_records_in_flight <= 3  # status/reported share the client's window
    assert store.depth()[0] == 0


async def test_records_leave_the_store_only_after_their_puback():
    store = await make_store()
    for i in range(6):
        await store.append("telemetry", {"i": i})
    client = FakeClient()
    engine = engine_for(store, ack_delay_ms=0)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 6, "all published")
        for _ in range(20):
            await sleep_ms(2)  # many engine turns with nothing acked
        assert store.depth()[0] == 6
        client.ack_records(2)
        await until(lambda: store.depth()[0] == 4, "two acked")
        assert [r.seq for r in await store.read_outbox(10)] == [3, 4, 5, 6]
        client.ack_records()
        await until(lambda: store.depth()[0] == 0, "all acked")

    await session(engine, client, body)
    assert engine.stats()["unknown_acks"] == 0


async def test_acks_waiting_in_a_batch_are_flushed_when_the_session_ends():
    store = await make_store()
    for i in range(10):
        await store.append("telemetry", {"i": i})
    client = FakeClient()
    engine = engine_for(store, ack_batch=1000, ack_delay_ms=10**6)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 10, "all published")
        client.ack_records(4)  # six still in flight: the batch waits
        await until(lambda: engine.stats()["acked"] == 4, "acks taken")
        assert store.depth()[0] == 10

    await session(engine, client, body)
    assert store.depth()[0] == 6 and engine.stats()["acks_waiting"] == 0


# -- lost sessions ----------------------------------------------------------------------


async def test_publishes_dropped_with_the_session_are_published_again():
    store = await make_store()
    for i in range(8):
        await store.append("telemetry" if i % 2 else "event", {"i": i})
    client = FakeClient()
    engine = engine_for(store, window=5)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 5, "first window")
        client.ack_records(2)
        client.lose_session()
        await until(lambda: len(client.records()) == 10, "the lost three and two more")
        client.ack_records()
        await until(lambda: len(client.records()) == 11, "the rest")
        client.ack_records()
        await until(lambda: store.depth()[0] == 0, "empty")

    await session(engine, client, body)
    records = client.records()
    # events (odd seqs) first, then telemetry; the lost ones come back in the same lane order
    assert [r["seq"] for r in records] == [1, 3, 5, 7, 2] + [5, 7, 2, 4, 6] + [8]
    assert [r["p"] for r in records[5:8]] == [r["p"] for r in records[2:5]]  # the same content
    stats = engine.stats()
    assert stats["dropped"] == 3 and stats["republished"] == 3


async def test_a_new_client_object_gets_everything_that_was_in_flight():
    store = await make_store()
    for i in range(6):
        await store.append("telemetry", {"i": i})
    old = FakeClient()
    engine = engine_for(store, window=4)

    async def first():  # type: ignore[no-untyped-def]
        await until(lambda: len(old.records()) == 4, "window")
        old.ack_records(1)

    await session(engine, old, first)
    assert store.depth()[0] == 5  # the acked one flushed at the end of the session
    new = FakeClient(auto_ack=True)

    async def second():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty")

    await session(engine, new, second)
    assert [r["seq"] for r in new.records()] == [2, 3, 4, 5, 6]
    assert engine.stats()["republished"] == 3


async def test_the_same_client_reconnected_keeps_its_in_flight_records():
    store = await make_store()
    for i in range(3):
        await store.append("telemetry", {"i": i})
    client = FakeClient()
    engine = engine_for(store)

    async def first():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 3, "all published")

    await session(engine, client, first)
    client._note_open(True)  # session present: the client re-sends and the acks come back

    async def second():  # type: ignore[no-untyped-def]
        for _ in range(10):
            await sleep_ms(2)
        client.ack_records()
        await until(lambda: store.depth()[0] == 0, "empty")

    await session(engine, client, second)
    assert len(client.records()) == 3 and engine.stats()["republished"] == 0


# -- retention meets the drain ----------------------------------------------------------


async def test_a_record_folded_while_in_flight_is_republished_as_its_aggregate():
    store = await make_store(budget=1000)
    for i in range(10):
        await store.append("telemetry", {"temp_c": 20 + i, "pad": "x" * 40})
    client = FakeClient()
    engine = engine_for(store, window=4, ack_delay_ms=0)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: len(client.records()) == 4, "window")
        for i in range(10):  # past the high-water mark: the oldest telemetry (in flight) folds
            await store.append("telemetry", {"temp_c": 30 + i, "pad": "x" * 40})
        assert store.counters["compacted"] > 0
        client.ack_records()
        for _ in range(200):
            if not store.depth()[0]:
                break
            await sleep_ms(2)
            client.ack_records()

    await session(engine, client, body)
    assert store.depth()[0] == 0
    records = client.records()
    aggregates = [r for r in records if "agg" in r["p"]]
    assert aggregates and engine.stats()["refolded"] >= 1
    # every sample is accounted for: delivered raw, or inside an aggregate delivered later
    covered = set()
    for r in records:
        agg = r["p"].get("agg")
        if agg:
            covered.update(range(agg["first"], agg["last"] + 1))
        else:
            covered.add(r["seq"])
    assert covered == set(range(1, 21))
    # the aggregate that replaced an in-flight record came after that record
    first_agg = aggregates[0]
    raw_seqs = [r["seq"] for r in records[: records.index(first_agg)] if "agg" not in r["p"]]
    assert first_agg["seq"] in raw_seqs


# -- rate limit ------------------------------------------------------------------------------


async def test_the_drain_rate_limit_holds_records_back_then_lifts_when_empty():
    store = await make_store()
    for i in range(30):
        await store.append("telemetry", {"i": i})
    client = FakeClient(auto_ack=True)
    # A burst of 5, then 100/s: unless every engine turn took 50 ms, some record has to wait.
    engine = engine_for(store, window=5, drain_per_s=100)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty")
        await until(lambda: not engine.stats()["rate_limited"], "limit lifted")

    await session(engine, client, body, rate_limited=True)
    stats = engine.stats()
    assert stats["published"] == 30 and stats["rate_waits"] > 0


async def test_no_rate_limit_unless_asked():
    store = await make_store()
    for i in range(25):
        await store.append("telemetry", {"i": i})
    client = FakeClient(auto_ack=True)
    engine = engine_for(store, window=5, drain_per_s=1)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty")

    await session(engine, client, body, rate_limited=False)
    assert engine.stats()["rate_waits"] == 0


# -- wall time on the wire ----------------------------------------------------------------


async def test_wall_time_is_derived_for_this_boot_and_null_without_a_clock():
    store = await make_store()
    await store.append("event", {"a": 1}, now_ms=4000)
    clock = FakeClock(now=10000, wall=None)
    client = FakeClient(auto_ack=True)
    engine = engine_for(store, clock)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty")
        clock.wall = 1_700_000_010_000
        await store.append("event", {"a": 2}, now_ms=9000)
        await until(lambda: store.depth()[0] == 0, "empty again")

    await session(engine, client, body)
    first, second = client.records()
    assert first["wall_ms"] is None and first["t_ms"] == 4000 and first["boot"] == store.boot_id
    assert second["wall_ms"] == 1_700_000_009_000
    assert first["dev"] == DEV


# -- shadow ---------------------------------------------------------------------------------


async def test_desired_state_is_merged_applied_and_reported():
    store = await make_store()
    local = await store.put_state("limits.max_c", 28.0)
    await store.put_state("setpoint_c", 20.0)
    client = FakeClient(auto_ack=True)
    engine = engine_for(store, policies={"limits.*": "device_wins"})
    cloud = local.stamp + 65536 * 1000
    doc = {
        "version": 3,
        "state": {
            "setpoint_c": {"value": 22.0, "stamp": cloud},
            "limits.max_c": {"value": 45.0, "stamp": cloud},
            "_link.lkg.primary": {"value": ["6.6.6.6"], "stamp": cloud},
        },
    }

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: client.on(topics.reported_topic(DEV)), "first report")
        client.feed(topics.desired_topic(DEV), json.dumps(doc).encode())
        await until(lambda: engine.stats()["desired_applied"] == 1, "applied")
        await until(lambda: len(client.on(topics.reported_topic(DEV))) >= 2, "second report")
        client.feed(topics.desired_topic(DEV), b"{broken")
        client.feed(topics.desired_topic(DEV), b"")
        await until(lambda: engine.stats()["desired_received"] == 3, "all read")

    await session(engine, client, body)
    entry = await store.get_state("setpoint_c")
    assert entry.value == 22.0 and entry.origin == "cloud" and entry.stamp == cloud
    assert (await store.get_state("limits.max_c")).value == 28.0
    assert await store.get_state("_link.lkg.primary") is None
    assert (await store.get_state(DESIRED_VERSION_KEY)).value == 3
    last = json.loads(client.on(topics.reported_topic(DEV))[-1][2])
    assert last["state"]["setpoint_c"]["value"] == 22.0 and last["state"]["limits.max_c"]["value"] == 28.0
    assert DESIRED_VERSION_KEY not in last["state"]
    stats = engine.stats()
    assert stats["desired_ignored"] == 2 and stats["desired_malformed"] == 1


async def test_a_local_change_is_reported_without_any_cloud_message():
    store = await make_store()
    await store.put_state("mode", "heat")
    client = FakeClient(auto_ack=True)
    engine = engine_for(store)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: client.on(topics.reported_topic(DEV)), "first report")
        await store.put_state("mode", "cool", "lan")
        await until(lambda: len(client.on(topics.reported_topic(DEV))) == 2, "report of the change")
        await store.put_state("_private", 1)
        for _ in range(10):
            await sleep_ms(2)

    await session(engine, client, body)
    reports = client.on(topics.reported_topic(DEV))
    assert len(reports) == 2  # a private key's change is not reported
    assert json.loads(reports[1][2])["state"]["mode"] == {
        "value": "cool",
        "version": 2,
        "stamp": (await store.get_state("mode")).stamp,
        "origin": "lan",
    }


async def test_the_retained_desired_document_again_after_a_reconnect_does_not_clobber():
    store = await make_store()
    client = FakeClient(auto_ack=True)
    engine = engine_for(store, policies={"schedule": "cloud_wins"})
    doc = json.dumps(
        {"version": 2, "state": {"setpoint_c": {"value": 21.0, "stamp": 5}, "schedule": {"value": ["a"], "stamp": 5}}}
    ).encode()

    async def first():  # type: ignore[no-untyped-def]
        client.feed(topics.desired_topic(DEV), doc)
        await until(lambda: engine.stats()["desired_applied"] == 2, "applied")

    await session(engine, client, first)
    await store.put_state("setpoint_c", 23.0, "lan")  # the outage: the owner changes both
    await store.put_state("schedule", ["mine"], "lan")
    client._note_open(True)

    async def second():  # type: ignore[no-untyped-def]
        client.feed(topics.desired_topic(DEV), doc)  # the broker hands the retained document over again
        await until(lambda: engine.stats()["desired_received"] == 2, "read")

    await session(engine, client, second)
    assert (await store.get_state("setpoint_c")).value == 23.0
    assert (await store.get_state("schedule")).value == ["mine"]


# -- commands -------------------------------------------------------------------------------


async def test_commands_run_once_and_expired_unknown_and_bad_ones_are_answered():
    store = await make_store()
    clock = FakeClock(wall=1_700_000_000_000)
    ran = []

    async def set_mode(args):  # type: ignore[no-untyped-def]
        ran.append(args["mode"])
        return {"mode": args["mode"]}

    async def broken(args):  # type: ignore[no-untyped-def]
        raise RuntimeError("relay stuck")

    client = FakeClient(auto_ack=True)
    engine = engine_for(store, clock, commands={"set_mode": set_mode, "broken": broken})
    now = clock.wall
    cmd = topics.command_topic(DEV)
    messages = [
        {"id": "c1", "name": "set_mode", "args": {"mode": "heat"}, "expires_wall_ms": now + 60000},
        {"id": "c1", "name": "set_mode", "args": {"mode": "heat"}, "expires_wall_ms": now + 60000},
        {"id": "c2", "name": "set_mode", "args": {"mode": "cool"}, "expires_wall_ms": now - 1},
        {"id": "c3", "name": "set_mode", "args": {"mode": "off"}, "issued_wall_ms": now - 5000, "ttl_ms": 1000},
        {"id": "c4", "name": "reboot_into_dfu", "args": {}},
        {"id": "c5", "name": "broken"},
        {"id": "c6", "name": "set_mode", "args": {"mode": "auto"}, "issued_wall_ms": now - 500, "ttl_ms": 1000},
        {"name": "set_mode"},
    ]

    async def body():  # type: ignore[no-untyped-def]
        for m in messages:
            client.feed(cmd, json.dumps(m).encode())
        client.feed(cmd, b"\x00garbage")
        await until(lambda: engine.stats()["commands"] == 9, "all handled")
        await until(lambda: store.depth()[0] == 0, "results out")

    await session(engine, client, body)
    assert ran == ["heat", "auto"]
    results = {}
    for r in client.records():
        assert r["lane"] == "result"
        results[r["p"]["id"]] = r["p"]
    assert sorted(results) == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert results["c1"] == {"id": "c1", "name": "set_mode", "status": "ok", "result": {"mode": "heat"}}
    assert results["c2"]["status"] == "expired" and results["c3"]["status"] == "expired"
    assert results["c4"]["status"] == "rejected"
    assert results["c5"]["status"] == "error" and "relay stuck" in results["c5"]["error"]
    assert results["c6"]["status"] == "ok"
    stats = engine.stats()
    assert stats["commands_duplicate"] == 1 and stats["commands_expired"] == 2
    assert stats["commands_rejected"] == 1 and stats["commands_failed"] == 1
    assert stats["commands_accepted"] == 3 and stats["commands_malformed"] == 2


async def test_without_a_wall_clock_commands_with_an_expiry_are_accepted_and_counted():
    store = await make_store()
    ran = []

    async def ping(args):  # type: ignore[no-untyped-def]
        ran.append(1)
        return {}

    client = FakeClient(auto_ack=True)
    engine = engine_for(store, FakeClock(wall=None), commands={"ping": ping})
    cmd = topics.command_topic(DEV)

    async def body():  # type: ignore[no-untyped-def]
        client.feed(cmd, b'{"id": "p1", "name": "ping", "expires_wall_ms": 5}')
        client.feed(cmd, b'{"id": "p2", "name": "ping", "ttl_ms": 1000}')
        client.feed(cmd, b'{"id": "p1", "name": "ping", "expires_wall_ms": 5}')
        await until(lambda: engine.stats()["commands"] == 3, "handled")

    await session(engine, client, body)
    stats = engine.stats()
    assert ran == [1, 1] and stats["commands_expiry_unchecked"] == 2 and stats["commands_duplicate"] == 1
    assert await store.inbox_seen("p1") and await store.inbox_seen("p2")


async def test_a_slow_handler_times_out_and_says_so():
    from device.link.commands import Commands

    store = await make_store()

    async def slow(args):  # type: ignore[no-untyped-def]
        await sleep_ms(10000)
        return {}

    clock = FakeClock()
    commands = Commands(store, clock, {"slow": slow}, handler_timeout_ms=20)
    status = await commands.handle(b'{"id": "s1", "name": "slow"}')
    assert status == "timeout" and commands.counters["timeout"] == 1
    record = (await store.read_outbox(1))[0]
    assert record.lane == "result" and record.payload["status"] == "timeout"


class CountingStore(MemoryStore):
    """A memory store that counts ``read_outbox`` calls per lane filter."""

    def __init__(self, budget_bytes):  # type: ignore[no-untyped-def]
        super().__init__(budget_bytes=budget_bytes)
        self.reads = {}

    async def read_outbox(self, limit, after_seq=0, lanes=None):  # type: ignore[no-untyped-def]
        key = ",".join(lanes) if lanes else "all"
        self.reads[key] = self.reads.get(key, 0) + 1
        return await super().read_outbox(limit, after_seq, lanes)


async def test_a_long_backlog_is_read_in_pages_and_empty_lanes_are_not_rescanned():
    store = CountingStore(1 << 16)
    await store.open()
    for i in range(600):
        await store.append("telemetry", {"i": i})
    client = FakeClient(window=20, auto_ack=True)
    engine = engine_for(store, window=20, read_ahead=50)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: store.depth()[0] == 0, "empty")
        await store.append("event", {"late": True})
        await until(lambda: store.depth()[0] == 0, "the late event out")

    await session(engine, client, body)
    assert len(client.records()) == 601 and client.records()[-1]["p"] == {"late": True}
    # 12 full pages and a short one; the empty lanes once each, and again after the late append
    assert store.reads["telemetry"] <= 14
    assert store.reads["event"] <= 3 and store.reads["result"] <= 3


def test_the_token_bucket_bursts_then_paces():
    from device.link.lanes import TokenBucket

    bucket = TokenBucket(5, 100)  # 5 at once, then one every 10 ms
    bucket.fill(1000)
    assert [bucket.take(1000) for _ in range(5)] == [0, 0, 0, 0, 0]
    assert bucket.take(1000) == 11  # ms until the next token (rounded up)
    assert bucket.take(1004) == 7
    assert bucket.take(1010) == 0
    assert bucket.take(1010) != 0
    assert [bucket.take(2000) for _ in range(6)] == [0, 0, 0, 0, 0, 11]  # never more than 5 saved up
