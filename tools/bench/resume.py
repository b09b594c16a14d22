"""``resume``: the broker comes back after a 14-hour outage; how soon does the backlog start and end?

A device holding 50,400 unsent records (sqlite store, fsync on) runs its real
``Link`` against a broker that is down (connections refused), backing off
with the board defaults' shape but a 1 s cap (the default cap is 5 minutes:
a fleet's devices would come back spread over it). Then the broker starts.
Figures, from the moment it accepts connections:

* ``first_record_ms`` -- until the first record is acknowledged (PUBACK, store ack);
* ``backlog_empty_s`` -- until the outbox is empty;

once with the post-outage drain limit (``drain_per_s``, default 5,000/s) and
once unlimited. No raw-library ratio: nothing raw does this; ``drain`` has it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from cloud_shim.broker import Mosquitto
from device.board import LINK_SPEC
from device.clock import MonotonicClock
from device.env import Env
from device.link.build import build_link
from device.rand import Rand
from device.schema import validate
from tools.bench.drain import fill_store

NAME = "resume"
SUMMARY = "broker back after an outage: time to the first record and to an empty 50,400-record backlog"
RECORDS = 50400


async def _resume(port: int, root: Path, drain_per_s: int, count: int, start_broker: Any) -> dict[str, Any]:
    store = await fill_store(root / f"resume-{drain_per_s}.sqlite", count)
    env = Env(MonotonicClock(), store, None, Rand(3))
    cfg = validate(
        LINK_SPEC,
        {
            "endpoints": [{"name": "primary", "host": "127.0.0.1", "port": port, "tls": False}],
            "backoff_base_ms": 100,
            "backoff_cap_ms": 1000,
            "long_outage_ms": 0,
            "spread_ms": 0,
            "drain_per_s": drain_per_s,
        },
        "link",
    )
    link, _engine = build_link(env, cfg, f"resume-{drain_per_s}-{time.monotonic_ns()}", {})
    task = asyncio.create_task(link.run())
    try:
        await asyncio.sleep(2.0)  # the outage, as the link sees it: refused, backing off
        if link.state.connected():
            raise RuntimeError("the link connected while the broker was down")
        await asyncio.get_running_loop().run_in_executor(None, start_broker)
        back = time.perf_counter()
        first = None
        deadline = back + 300
        while store.depth()[0] and time.perf_counter() < deadline:
            if first is None and store.counters.get("acked", 0):
                first = time.perf_counter()
            await asyncio.sleep(0.002)
        if store.depth()[0]:
            raise RuntimeError(f"backlog not empty after 300 s: {store.depth()[0]} left")
        end = time.perf_counter()
        return {
            "first_record_ms": round(((first or end) - back) * 1000, 1),
            "backlog_empty_s": round(end - back, 2),
            "per_s": round(count / (end - back)),
        }
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


def run(runs: int | None, progress: IO[str] | None = None, count: int = RECORDS) -> dict[str, Any]:
    figures: dict[str, Any] = {"records": count, "backoff_cap_ms": 1000}
    with tempfile.TemporaryDirectory(prefix="bp-resume-") as tmp:
        for label, rate in (("limited", 5000), ("unlimited", 0)):
            broker = Mosquitto()  # not started: the outage
            try:
                if progress:
                    progress.write(f"resume: {count} records, drain {'%d/s' % rate if rate else 'unlimited'}...\n")
                got = asyncio.run(_resume(broker.port, Path(tmp), rate, count, broker.start))
            finally:
                broker.close()
            for key, value in got.items():
                figures[f"{label}_{key}"] = value
    if progress:
        progress.write(
            f"resume: first record {figures['limited_first_record_ms']} ms after the broker is back; backlog "
            f"empty in {figures['limited_backlog_empty_s']} s at <= 5,000/s, "
            f"{figures['unlimited_backlog_empty_s']} s unlimited\n"
        )
    return {"name": NAME, "figures": figures, "ratio": None}
