"""``fleet``: how many simulated devices one process carries, and what a reconnect storm looks like.

A short outage scenario (the region refuses for 30 simulated minutes, then
comes back; ``brickproof sim`` machinery: real devices, real mosquitto, one
process) run at a few fleet sizes, each with the per-device reconnect spread
(2 minutes) and without it (0). Figures per run: wall and CPU seconds, CPU
per device per simulated hour, peak RSS growth, the reconnect peak after the
outage (connects per simulated second, and per real second: what the broker
sees), the resync time (last fault -> the outage's backlog delivered,
simulated seconds) and the invariants that broke, if any.

Measured here (2 shared cores): 1,000 devices in one process hold every
invariant, ~100 ms CPU per device per simulated hour, ~200 MB RSS.

No raw-library ratio: nothing raw simulates a fleet. Sizes with
``BRICKPROOF_FLEET_SIZES`` (e.g. ``50,200,1000``); default ``50,200``.
"""

from __future__ import annotations

import os
import resource
import time
from typing import IO, Any

from cloud_shim.scenario import check_scenario
from cloud_shim.sim.runner import simulate
from tools.sim import raise_fd_limit

NAME = "fleet"
SUMMARY = "devices per process (CPU, memory), reconnect peak with and without the spread, resync time"
DEFAULT_SIZES = (50, 200)


def _scenario(spread: str) -> dict[str, Any]:
    return check_scenario(
        {
            "name": "fleet-bench",
            "description": "the region refuses for 30 minutes, then the fleet reconnects",
            "duration": "60m",
            "speed": 600,
            "link": {"endpoints": ["primary"], "long_outage": "10m", "spread": spread, "drain_per_s": 50},
            "bounds": {"shadow_converged": "20m", "resync": "20m"},
            "timeline": [
                {"at": "10m", "do": "proxy", "endpoint": "primary", "mode": "refuse"},
                {"at": "40m", "do": "proxy", "endpoint": "primary", "mode": "pass"},
            ],
        },
        "fleet-bench",
    )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _one(devices: int, spread: str) -> dict[str, Any]:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0, wall0 = _cpu_s(), time.monotonic()
    metrics, _ = simulate(_scenario(spread), devices=devices, seed=7, progress=None)
    cpu, wall = _cpu_s() - cpu0, time.monotonic() - wall0
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sim_h = metrics["sim_s"] / 3600
    return {
        "devices": devices,
        "spread": spread,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cpu_ms_per_device_sim_h": round(1000 * cpu / devices / sim_h, 1) if sim_h else None,
        "rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
        "peak_connects_after_outage_per_s": metrics["peak_connects_after_outage_per_s"],
        "peak_connects_after_outage_per_real_s": metrics["peak_connects_after_outage_per_real_s"],
        "resync_s": metrics["resync_s"],
        "shadow_converged_s": metrics["shadow_converged_s"],
        "ok": metrics["ok"],
        "broken": sorted(name for name, held in metrics["invariants"].items() if not held),
    }


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    raise_fd_limit()
    sizes_env = os.environ.get("BRICKPROOF_FLEET_SIZES")
    sizes = tuple(int(s) for s in sizes_env.split(",")) if sizes_env else DEFAULT_SIZES
    rows = []
    for devices in sizes:
        for spread in ("2m", "0s"):
            if progress:
                progress.write("fleet: %d devices, spread %s\n" % (devices, spread))
            rows.append(_one(devices, spread))
            if progress:
                progress.write("fleet: %s\n" % (rows[-1],))
    return {"name": NAME, "figures": {"runs": rows}, "ratio": None}
