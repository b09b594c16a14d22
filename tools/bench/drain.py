"""``drain``: empty a 14-hour backlog (50,400 records, 1/s) into mosquitto over QoS 1, store acks included.

The device side: a sqlite store (fsync on, the host boards' group commit)
holding the backlog, drained by ``SyncEngine`` through ``PahoClient`` (paho
driven from asyncio) with a window of 20: read oldest first by lane, publish,
and delete from the store only on PUBACK. Timed from the first publish to an
empty store. The same through the portable ``MqttClient``.

The baseline, in the same run against the same broker: raw paho-mqtt (its own
network thread, ``max_inflight_messages_set(20)``) publishing the very same
wire messages (the engine's envelope for the same device id, wall times
included, pre-encoded) to the same topics, timed until its last PUBACK. It
does no store reads and no store deletes: the ratio prices everything
Brickproof adds. Goal: >= 0.8. (Until the device id and wall times were
shared, the raw side sent ~20% fewer bytes per message than the engine.)

Figures are messages per second, medians over ``--runs`` (default 3); within
a run the three take turns. The ratio is the median of the per-run ratios;
``ratios`` lists them all, since the machine's noise is most of the spread.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from cloud_shim.broker import Mosquitto
from device.clock import MonotonicClock
from device.env import Env
from device.link.client import ClientBase
from device.link.sync import SyncEngine
from device.link.topics import encode_record, out_topic
from device.rand import Rand
from device.store import Store, open_store
from tools.bench.outbox import payloads

NAME = "drain"
SUMMARY = "drain a 50,400-record backlog to mosquitto (QoS 1, window 20, store acks) vs raw paho"
RECORDS = 50400
WINDOW = 20
BUDGET_BYTES = 1 << 30
DEVICE_ID = "bench-drain-0001"  # the same for every side: same topics, same envelope, same sizes


async def fill_store(path: Path, count: int) -> Store:
    store = open_store(
        {"backend": "sqlite", "path": str(path), "budget_bytes": BUDGET_BYTES, "fsync": True, "group_commit_ms": 2}
    )
    await store.open()
    records = payloads(count)

    async def produce(k: int) -> None:
        for i in range(k, count, 64):
            await store.append("telemetry", records[i], i * 1000)

    await asyncio.gather(*[produce(k) for k in range(64)])
    return store


async def engine_drain(port: int, root: Path, client_kind: str, count: int) -> float:
    """Messages per second for the engine emptying a backlog of ``count`` records."""
    store = await fill_store(root / f"{client_kind}.sqlite", count)
    try:
        env = Env(MonotonicClock(), store, None, Rand(1))
        engine = SyncEngine(env, DEVICE_ID, window=WINDOW, drain_per_s=0)
        client = make_client(client_kind, DEVICE_ID)
        await client.connect("127.0.0.1", port)
        started = time.perf_counter()
        serve = asyncio.create_task(engine.serve(client))
        while store.depth()[0] and not serve.done():  # noqa: ASYNC110 - the store has no change event
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await client.close()
        await serve
        if store.depth()[0]:
            raise RuntimeError(f"{client_kind}: the drain stopped with {store.depth()[0]} records left")
        return count / elapsed
    finally:
        await store.close()


def make_client(kind: str, device_id: str) -> ClientBase:
    if kind == "paho":
        from device.link.paho_client import PahoClient

        return PahoClient(device_id, window=WINDOW, clean_session=True)
    from device.link.mqtt import MqttClient

    return MqttClient(device_id, window=WINDOW, clean_session=True)  # type: ignore[no-untyped-call]


async def wire_messages(root: Path, count: int) -> list[tuple[str, bytes]]:
    """The exact messages the engine sends for the backlog (topic, envelope), as ``SyncEngine`` encodes them."""
    store = await fill_store(root / "wire.sqlite", count)
    clock = MonotonicClock()
    try:
        out = []
        after = 0
        while True:
            page = await store.read_outbox(1000, after)
            if not page:
                break
            wall_now, now = clock.wall_ms(), clock.now_ms()
            for record in page:
                wall = None if wall_now is None else wall_now - (now - record.created_ms)
                out.append((out_topic(DEVICE_ID, record.lane), encode_record(DEVICE_ID, record, wall)))
            after = page[-1].seq
        return out
    finally:
        await store.close()


def raw_paho(port: int, messages: list[tuple[str, bytes]]) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    acked = 0

    def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked == len(messages):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{time.monotonic_ns()}", clean_session=True)
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        started = time.perf_counter()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        if not done.wait(300):
            raise RuntimeError(f"raw paho: only {acked} of {len(messages)} PUBACKs in 300 s")
        return len(messages) / (time.perf_counter() - started)
    finally:
        client.disconnect()
        client.loop_stop()


def run(runs: int | None, progress: IO[str] | None = None, count: int = RECORDS) -> dict[str, Any]:
    runs = runs or 3
    rates: dict[str, list[float]] = {"raw_paho": [], "engine_paho": [], "engine_portable": []}
    with tempfile.TemporaryDirectory(prefix="bp-drain-") as tmp, Mosquitto() as broker:
        root = Path(tmp)
        messages = asyncio.run(wire_messages(root, count))
        for i in range(runs):
            if progress:
                progress.write(f"drain: run {i + 1}/{runs}: raw paho, engine+paho, engine+portable ({count} each)\n")
            rates["raw_paho"].append(raw_paho(broker.port, messages))
            for kind in ("paho", "portable"):
                rates["engine_" + kind].append(asyncio.run(engine_drain(broker.port, root, kind, count)))
                for f in root.glob(kind + ".sqlite*"):
                    f.unlink()
    figures: dict[str, Any] = {"records": count, "window": WINDOW, "runs": runs}
    for name, values in rates.items():
        figures[name + "_per_s"] = round(statistics.median(values))
    ratios = [e / r for e, r in zip(rates["engine_paho"], rates["raw_paho"], strict=True)]
    figures["ratios"] = [round(r, 3) for r in ratios]
    portable = [e / r for e, r in zip(rates["engine_portable"], rates["raw_paho"], strict=True)]
    figures["portable_vs_raw"] = round(statistics.median(portable), 3)
    figures["portable_ratios"] = [round(r, 3) for r in portable]
    figures["backlog_empty_s"] = round(count / figures["engine_paho_per_s"], 2)
    ratio = round(statistics.median(ratios), 3)
    if progress:
        progress.write(
            f"drain: raw paho {figures['raw_paho_per_s']}/s, engine+paho {figures['engine_paho_per_s']}/s "
            f"(ratio {ratio}, runs {figures['ratios']}), engine+portable {figures['engine_portable_per_s']}/s\n"
        )
    return {"name": NAME, "figures": figures, "ratio": ratio}
