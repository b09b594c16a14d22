"""The sync engine over a real mosquitto, with both MQTT clients, checked by the cloud ledger.

A backlog drains exactly once and in order per lane and leaves the store
empty; a desired document is applied and reported; a command makes the round
trip; a drain interrupted by a disconnect resumes without loss (the same
client object with its session, and a new client object). Every wait is
bounded by a generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.ledger import LedgerSubscriber
from device.clock import MonotonicClock
from device.link import topics
from device.link.client import ClientBase
from device.link.sync import SyncEngine
from device.store import open_store
from device.store.base import Store

LOCAL = "127.0.0.1"
PATIENCE_S = 60.0  # generous: a bound on waiting, never a timing assertion


class Env:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = MonotonicClock()


def make_client(kind: str, device_id: str, window: int = 20, clean_session: bool = False) -> ClientBase:
    will = (topics.status_topic(device_id), b"offline", 1, True)
    options: dict[str, Any] = {"keepalive_s": 30, "clean_session": clean_session, "window": window, "will": will}
    if kind == "paho":
        from device.link.paho_client import PahoClient

        return PahoClient(device_id, **options)
    from device.link.mqtt import MqttClient

    return MqttClient(device_id, queue_len=64, **options)


async def open_sqlite(path: Path, budget_bytes: int = 4 << 20) -> Store:
    store = open_store({"backend": "sqlite", "path": str(path), "budget_bytes": budget_bytes, "fsync": False})
    await store.open()
    return store


async def until(done: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not done():
        if loop.time() > deadline:
            raise AssertionError("gave up waiting for " + what)
        await asyncio.sleep(0.01)


@asynccontextmanager
async def serving(engine: SyncEngine, client: ClientBase, port: int) -> AsyncIterator[asyncio.Task[str]]:
    """Connect ``client``, run ``engine.serve`` on it, and close both at the end."""
    await client.connect(LOCAL, port)
    task = asyncio.create_task(engine.serve(client))
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait_for(task, PATIENCE_S)


@pytest.fixture(params=["paho", "mqtt"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger_for(broker: Mosquitto) -> Any:
    started: list[LedgerSubscriber] = []

    def start(device_id: str) -> LedgerSubscriber:
        sub = LedgerSubscriber(LOCAL, broker.port, devices=[device_id], client_id="ledger-" + device_id).start()
        started.append(sub)
        return sub

    yield start
    for sub in started:
        sub.stop()


async def fill_backlog(store: Store, n: int) -> list[int]:
    """``n`` records, mostly telemetry with events and results among them; their seqs."""
    appends = []
    for i in range(n):
        lane = "event" if i % 10 == 3 else ("result" if i % 50 == 7 else "telemetry")
        payload = {"i": i, "temp_c": 20 + (i % 40) / 4} if lane == "telemetry" else {"i": i, "kind": lane}
        appends.append(store.append(lane, payload, now_ms=i))
    seqs = []
    for k in range(0, n, 250):  # a batch at a time shares the sqlite store's group commits
        seqs += await asyncio.gather(*appends[k : k + 250])
    return seqs


async def test_a_backlog_drains_exactly_once_in_order_per_lane(
    kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any, tmp_path: Path
) -> None:
    n = 2000
    store = await open_sqlite(tmp_path / "store.sqlite")
    try:
        seqs = await fill_backlog(store, n)
        ledger = ledger_for(unique_id).ledger
        engine = SyncEngine(Env(store), unique_id, window=20)
        client = make_client(kind, unique_id)
        async with serving(engine, client, broker.port):
            await until(lambda: ledger.count(unique_id) >= n, "every record at the ledger")
            await until(lambda: store.depth()[0] == 0, "an empty outbox")
        report = ledger.report(unique_id, expected=seqs)
        assert report.ok, report
        assert report.lost == [] and report.unexpected == [] and report.delivered == n
        for lane in ("event", "result", "telemetry"):
            arrivals = ledger.arrivals(unique_id, lane)
            assert arrivals == sorted(arrivals)
        assert report.per_lane == {"event": 200, "result": 40, "telemetry": 1760}
        assert report.latency_ms is not None  # the records were made this boot, with a wall clock
        stats = engine.stats()
        assert stats["published"] >= n and stats["store_acks"] == n and stats["in_flight"] == 0
        assert store.depth() == (0, 0)
    finally:
        await store.close()


async def test_an_interrupted_drain_resumes_without_loss(
    kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any, tmp_path: Path
) -> None:
    n = 600
    store = await open_sqlite(tmp_path / "store.sqlite")
    try:
        seqs = await fill_backlog(store, n)
        ledger = ledger_for(unique_id).ledger
        engine = SyncEngine(Env(store), unique_id, window=10)
        client = make_client(kind, unique_id, window=10)
        # 1: cut the connection a third of the way through
        async with serving(engine, client, broker.port):
            await until(lambda: ledger.count(unique_id) >= n // 3, "a third delivered")
        # 2: the same client object reconnects: the broker kept its session
        async with serving(engine, client, broker.port):
            assert client.session_present
            await until(lambda: ledger.count(unique_id) >= 2 * n // 3, "two thirds delivered")
        # 3: a new client object (another endpoint, say) for the rest
        other = make_client(kind, unique_id, window=10, clean_session=True)
        async with serving(engine, other, broker.port):
            await until(lambda: ledger.count(unique_id) >= n, "everything delivered")
            await until(lambda: store.depth()[0] == 0, "an empty outbox")
        report = ledger.report(unique_id, expected=seqs)
        assert report.ok, report
        assert report.conflicts == [] and report.order_violations == [] and report.lost == []
        assert engine.stats()["serves"] == 3
    finally:
        await store.close()


async def test_a_crash_between_pubacks_and_their_batched_store_ack_resends_and_loses_nothing(
    kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any, tmp_path: Path
) -> None:
    # Store acks go in batches after the PUBACKs: a device that dies in between still holds the
    # records. After the reboot they go out again and the cloud drops the copies on (device, seq).
    # The crash is a copy of the store's files taken while PUBACKs wait for their batch (no write
    # is under way then: the backlog is in, and no ack batch has been written).
    n = 4000
    store = await open_sqlite(tmp_path / "store.sqlite")
    seqs = await fill_backlog(store, n)
    ledger = ledger_for(unique_id).ledger
    engine = SyncEngine(Env(store), unique_id, window=10, ack_batch=1_000_000, ack_delay_ms=1_000_000_000)
    crashed = tmp_path / "crashed"
    at_crash: list[int] = []

    def crash_now() -> bool:
        if engine.counters["acked"] < 50:
            return False
        assert engine.counters["ack_flushes"] == 0  # PUBACKed, none of it written to the store
        crashed.mkdir()
        for name in ("store.sqlite", "store.sqlite-wal"):
            if (tmp_path / name).exists():
                shutil.copyfile(tmp_path / name, crashed / name)
        at_crash.append(engine.counters["acked"])
        return True

    try:
        async with serving(engine, make_client(kind, unique_id, window=10, clean_session=True), broker.port):
            await until(crash_now, "PUBACKs waiting for their store ack")
    finally:
        await store.close()

    store = await open_sqlite(crashed / "store.sqlite")  # the reboot: every record is still there
    try:
        assert store.depth()[0] == n
        engine = SyncEngine(Env(store), unique_id, window=10)
        async with serving(engine, make_client(kind, unique_id, window=10, clean_session=True), broker.port):
            await until(lambda: store.depth()[0] == 0, "an empty outbox")
        assert engine.counters["store_acks"] == n
        await until(lambda: ledger.count(unique_id) >= n, "everything delivered")
        await until(lambda: ledger.report(unique_id).duplicates >= at_crash[0], "the copies at the ledger")
        report = ledger.report(unique_id, expected=seqs)
        assert report.ok, report
        assert report.lost == [] and report.conflicts == [] and report.delivered == n
    finally:
        await store.close()


async def test_a_desired_document_is_applied_and_reported(
    kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any
) -> None:
    store = open_store({"backend": "memory", "budget_bytes": 1 << 16})
    await store.open()
    outage_change = await store.put_state("setpoint_c", 23.5, "lan", wall_ms=MonotonicClock().wall_ms())
    await store.put_state("limits.max_c", 28.0)
    sub = ledger_for(unique_id)
    ledger = sub.ledger
    older = outage_change.stamp - 65536 * 60_000  # the cloud's document is a minute older than the LAN change
    newer = outage_change.stamp + 65536 * 60_000
    doc = {
        "version": 4,
        "state": {
            "setpoint_c": {"value": 19.0, "stamp": older},
            "mode": {"value": "cool", "stamp": newer},
            "limits.max_c": {"value": 60.0, "stamp": newer},
        },
    }
    sub.publish(topics.desired_topic(unique_id), json.dumps(doc).encode(), qos=1, retain=True)
    try:
        engine = SyncEngine(Env(store), unique_id, policies={"limits.*": "device_wins"})
        client = make_client(kind, unique_id)

        def reported(key: str) -> Any:
            with ledger.changed:
                doc = ledger.reported.get(unique_id, {})
            return doc.get("state", {}).get(key, {}).get("value")

        async with serving(engine, client, broker.port):
            await until(lambda: reported("mode") == "cool", "the applied value reported")
        assert (await store.get_state("mode")).value == "cool"  # type: ignore[union-attr]
        assert (await store.get_state("setpoint_c")).value == 23.5  # type: ignore[union-attr]
        assert (await store.get_state("limits.max_c")).value == 28.0  # type: ignore[union-attr]
        assert reported("setpoint_c") == 23.5 and reported("limits.max_c") == 28.0
        assert ledger.status[unique_id] in ("online", "offline")
        stats = engine.stats()
        assert stats["desired_applied"] == 1 and stats["desired_ignored"] == 2
    finally:
        sub.publish(topics.desired_topic(unique_id), b"", qos=1, retain=True)  # clear the retained document
        await store.close()


async def test_a_command_makes_the_round_trip(kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any) -> None:
    store = open_store({"backend": "memory", "budget_bytes": 1 << 16})
    await store.open()
    sub = ledger_for(unique_id)
    ledger = sub.ledger
    got: list[dict[str, Any]] = []

    async def set_mode(args: dict[str, Any]) -> dict[str, Any]:
        got.append(args)
        await store.put_state("mode", args["mode"], "cloud")
        return {"mode": args["mode"]}

    engine = SyncEngine(Env(store), unique_id, commands={"set_mode": set_mode})
    client = make_client(kind, unique_id)
    wall = MonotonicClock().wall_ms()
    assert wall is not None
    cmd = {"id": "c-1", "name": "set_mode", "args": {"mode": "heat"}, "expires_wall_ms": wall + 600_000}
    stale = {"id": "c-2", "name": "set_mode", "args": {"mode": "off"}, "expires_wall_ms": wall - 1}
    try:
        async with serving(engine, client, broker.port):
            await until(lambda: ledger.status.get(unique_id) == "online", "online")  # subscribed by then
            for message in (cmd, cmd, stale):
                sub.publish(topics.command_topic(unique_id), json.dumps(message).encode(), qos=1)
            await until(lambda: len(ledger.results.get(unique_id, {})) == 2, "both results")
            await until(lambda: store.depth()[0] == 0, "an empty outbox")
        results = ledger.results[unique_id]
        assert results["c-1"] == {"id": "c-1", "name": "set_mode", "status": "ok", "result": {"mode": "heat"}}
        assert results["c-2"]["status"] == "expired"
        assert got == [{"mode": "heat"}]
        stats = engine.stats()
        assert stats["commands_duplicate"] == 1 and stats["commands_expired"] == 1
        assert ledger.report(unique_id).ok
    finally:
        await store.close()


async def test_telemetry_folded_during_the_drain_is_never_lost(
    kind: str, broker: Mosquitto, unique_id: str, ledger_for: Any
) -> None:
    """Retention folds the oldest telemetry -- the records in flight -- while a rate-limited drain runs."""
    store = open_store({"backend": "memory", "budget_bytes": 6000})
    await store.open()
    ledger = ledger_for(unique_id).ledger
    engine = SyncEngine(Env(store), unique_id, window=8, drain_per_s=400)
    client = make_client(kind, unique_id, window=8)
    seqs: list[int] = []
    try:
        await client.connect(LOCAL, broker.port)
        task = asyncio.create_task(engine.serve(client, rate_limited=True))
        for burst in range(12):  # bursts far faster than the drain: the outbox stays past its high-water mark
            for i in range(150):
                seqs.append(await store.append("telemetry", {"temp_c": 20 + i % 7, "burst": burst}, now_ms=i))
            if burst % 4 == 1:
                seqs.append(await store.append("event", {"burst": burst}))  # never folded
            await asyncio.sleep(0.05)
        await until(lambda: store.depth()[0] == 0, "an empty outbox")
        await until(lambda: ledger.count(unique_id) >= len(seqs), "every seq accounted for")
        await client.close()
        await asyncio.wait_for(task, PATIENCE_S)
        assert store.counters["compacted"] > 0  # folding did happen
        report = ledger.report(unique_id, expected=seqs)
        assert report.lost == [] and report.conflicts == [] and report.order_violations == [], report
        assert report.per_lane["event"] == 3 and report.folded > 0
    finally:
        await client.close()
        await store.close()
