"""``fault-tick``: control-tick latency while the cloud fails, beside the same fleet online.

The ``brickproof sim`` machinery (real devices, real mosquitto, one process
per case): the same small fleet for 40 simulated minutes, once with no fault
and once per fault held from minute 5 to minute 35: the endpoint black-holed,
half-open, refusing with DNS timing out, PUBACKs dropped, every home's wifi
down. The cases run side by side, one process each, so they share the
machine's noise of the moment (the online case included).

Pace: 30 simulated seconds per real second, so the fault lasts 60 real
seconds. The link's timeouts are real time (keepalive 30 s: a half-open link
is found dead after ~45 s; PUBACK timeout 30 s; connect timeout 5 s), and a
faster pace would end the fault before the device even noticed it.

Each run is cut into three windows of simulated time -- ``before`` (boot and
5 minutes online), ``fault`` (minutes 5-35: the fault, or the same minutes
online) and ``after`` (reconnect, drain, resync) -- by a task sleeping on the
run's own clock, which reads the apps' ``TickMeter``s at each cut. Per window:
ticks, mean and max latency (real ms from a tick being released to its end),
ticks later than 50 ms, control gaps, and how many devices were online at the
window's end (proof the fault bit: none, for a fault that cuts the link). The
rule is that the ``fault`` window of every fault looks like the ``fault``
window online. Printed, never asserted: these machines are noisy.

``ok``/``failed`` are the simulator's own invariants (no loss, no duplicate,
order, shadow converged and backlog drained within 5 simulated minutes after
the fault).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any

from cloud_shim.scenario import check_scenario
from cloud_shim.sim.runner import Run

NAME = "fault-tick"
SUMMARY = "control-tick latency (mean, max, slow ticks, gaps) during each cloud fault vs online, 20 devices"
DEVICES = 20
SEED = 11
SPEED = 30  # simulated seconds per real second, fault and recovery alike: the fault lasts 60 real s
ONLINE_STATES = ("online", "degraded")
MINUTE_MS = 60_000
FAULT_FROM_MS = 5 * MINUTE_MS
FAULT_TO_MS = 35 * MINUTE_MS
WINDOWS = (("before", FAULT_FROM_MS), ("fault", FAULT_TO_MS))  # each window ends where the next begins
FAULTS: dict[str, list[dict[str, Any]]] = {
    "online": [],
    "blackhole": [{"do": "proxy", "endpoint": "primary", "mode": "blackhole"}],
    "half_open": [{"do": "proxy", "endpoint": "primary", "mode": "half_open"}],
    "refuse+dns_timeout": [
        {"do": "proxy", "endpoint": "primary", "mode": "refuse"},
        {"do": "dns", "endpoint": "primary", "mode": "timeout"},
    ],
    "drop_pubacks": [{"do": "proxy", "endpoint": "primary", "mode": "drop_pubacks"}],
    "wifi_down": [{"do": "wifi", "mode": "down"}],
}
_UNDO = {"proxy": {"mode": "pass"}, "dns": {"mode": "ok"}, "wifi": {"mode": "up"}}


def scenario(faults: list[dict[str, Any]], speed: int = SPEED) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = []
    for fault in faults:
        timeline.append(dict(fault, at="%dm" % (FAULT_FROM_MS // MINUTE_MS)))
        timeline.append(dict(fault, at="%dm" % (FAULT_TO_MS // MINUTE_MS), **_UNDO[fault["do"]]))
    return check_scenario(
        {
            "name": "fault-tick",
            "description": "one fault held for 30 minutes",
            "duration": "40m",
            "speed": speed,
            "link": {"endpoints": ["primary"]},
            "bounds": {"shadow_converged": "5m", "resync": "5m"},
            "timeline": timeline,
        },
        "fault-tick",
    )


class TickWindows:
    """Tick figures per window, cut from the fleet's tick meters (the meters keep running totals)."""

    def __init__(self) -> None:
        self.windows: dict[str, dict[str, int]] = {}
        self._seen = {"ticks": 0, "late_ms_total": 0, "slow": 0, "gaps": 0}

    def cut(self, name: str, meters: list[Any], online: int) -> None:
        """Close window ``name``: what the meters counted since the last cut; ``online`` devices now."""
        now = {key: sum(getattr(m, key) for m in meters) for key in self._seen}
        ticks = now["ticks"] - self._seen["ticks"]
        late = now["late_ms_total"] - self._seen["late_ms_total"]
        self.windows[name] = {
            "ticks": ticks,
            "mean_ms": round(late / ticks, 1) if ticks else 0,
            "max_ms": max((m.late_ms_max for m in meters), default=0),
            "slow_ticks": now["slow"] - self._seen["slow"],
            "gaps": now["gaps"] - self._seen["gaps"],
            "online_at_end": online,
        }
        self._seen = now
        for meter in meters:
            meter.late_ms_max = 0  # the next window's max starts here


def fleet_online(run: Run) -> int:
    if run.fleet is None:
        return 0
    links = [member.device.link for member in run.fleet.members]
    return sum(1 for link in links if link is not None and link.state.state in ONLINE_STATES)


def fleet_meters(run: Run) -> list[Any]:
    if run.fleet is None:
        return []
    meters = []
    for member in run.fleet.members:
        for app in member.device.apps:
            meter = getattr(app, "meter", None)
            if meter is not None:
                meters.append(meter)
    return meters


async def _cut_windows(run: Run, windows: TickWindows) -> None:
    for name, end_ms in WINDOWS:
        await run.clock.sleep_ms(end_ms - run.clock.now_ms())
        windows.cut(name, fleet_meters(run), fleet_online(run))


async def _measured(run: Run, workdir: Path, windows: TickWindows) -> dict[str, Any]:
    cutter = asyncio.ensure_future(_cut_windows(run, windows))
    try:
        metrics = await run.run(workdir)
    finally:
        cutter.cancel()
    windows.cut("after", fleet_meters(run), fleet_online(run))
    return metrics


def measure(case: str, devices: int = DEVICES, seed: int = SEED, speed: int = SPEED) -> dict[str, Any]:
    """One 40-minute run of ``case`` (a FAULTS name): tick figures per window and the verdict."""
    run = Run(scenario(FAULTS[case], speed), devices, None, seed, speed, None)  # one pace for every case
    windows = TickWindows()
    with tempfile.TemporaryDirectory(prefix="bp-fault-tick-") as tmp, run.log:
        metrics = asyncio.run(_measured(run, Path(tmp), windows))
    out: dict[str, Any] = dict(windows.windows)
    out["ok"] = metrics["ok"]
    out["failed"] = sorted(name for name, good in metrics["invariants"].items() if not good)
    out["lost"] = metrics["lost"]
    out["duplicated"] = metrics["duplicated"]
    out["resync_s"] = metrics["resync_s"]  # simulated s after the fault to every device online, backlog gone
    return out


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one case: ticks, slow ticks and gaps added, the worst max, the mean over all ticks."""
    if len(results) == 1:
        return results[0]
    out: dict[str, Any] = {}
    for name in ("before", "fault", "after"):
        rows = [r[name] for r in results]
        ticks = sum(row["ticks"] for row in rows)
        out[name] = {
            "ticks": ticks,
            "mean_ms": round(sum(row["mean_ms"] * row["ticks"] for row in rows) / ticks, 1) if ticks else 0,
            "max_ms": max(row["max_ms"] for row in rows),
            "slow_ticks": sum(row["slow_ticks"] for row in rows),
            "gaps": sum(row["gaps"] for row in rows),
            "online_at_end": max(row["online_at_end"] for row in rows),
        }
    out["ok"] = all(r["ok"] for r in results)
    out["failed"] = sorted({name for r in results for name in r["failed"]})
    out["lost"] = sum(r["lost"] for r in results)
    out["duplicated"] = sum(r["duplicated"] for r in results)
    resyncs = [r["resync_s"] for r in results]
    out["resync_s"] = None if None in resyncs else max(resyncs)
    return out


def run(runs: int | None, progress: IO[str] | None = None, cases: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every case once per run, side by side (default 1 run: about 100 s of real time)."""
    runs = runs or 1
    names = cases or tuple(FAULTS)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per case: no loop or thread inherited
    for i in range(runs):
        with ProcessPoolExecutor(max_workers=len(names), mp_context=spawn) as pool:
            done = list(pool.map(measure, names))
        for name, result in zip(names, done, strict=True):
            results[name].append(result)
            if progress:
                progress.write("fault-tick: run %d/%d %-18s %s\n" % (i + 1, runs, name, result))
    figures: dict[str, Any] = {"devices": DEVICES, "runs": runs, "slow_ms": 50}
    for name in names:
        figures[name] = _merge(results[name])
    if progress:
        progress.write(
            "fault-tick: the fault window (minutes 5-35), per case: ticks, mean/max ms, slow, gaps, online at its end\n"
        )
        for name in names:
            w = figures[name]["fault"]
            progress.write(
                "  %-18s %5d ticks  mean %5.1f ms  max %4d ms  slow %3d  gaps %d  online %2d  %s\n"
                % (
                    name,
                    w["ticks"],
                    w["mean_ms"],
                    w["max_ms"],
                    w["slow_ticks"],
                    w["gaps"],
                    w["online_at_end"],
                    "ok" if figures[name]["ok"] else "FAILED " + ",".join(figures[name]["failed"]),
                )
            )
    return {"name": NAME, "figures": figures, "ratio": None}
