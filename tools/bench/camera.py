"""``camera-fps``: frames per second the motion detector sustains, and its recall on the built-in scenes.

* ``cpython_fps`` / ``micropython_fps``: ``device.core.motion`` over pre-rendered
  frames of the 'walk' scene (``tools/bench/camera_probe.py``, the same script
  under each interpreter) at the board's frame size (``hw.camera`` of
  ``boards/host_camera_sim.json``: 48x32), with every pixel compared
  (stride 1) and every second pixel (stride 2); plus CPython at 160x120, a
  host camera's size. Medians of ``--runs`` (default 3).
* recall / precision (per mille) of the board's default detector settings over
  every built-in scene (``hw.sim.scene``), seeds 1-5, two scene loops each, at
  the board's frame size and at 160x120, frames every 200 ms.

Ratio: micropython fps / cpython fps at the board size, stride 1.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import IO, Any

from device.core.motion import MotionDetector
from hw.sim.scene import Scene, scene_names
from hw.sim.scenescore import score
from tools.bench.boot import REPO, micropython_binary

NAME = "camera-fps"
SUMMARY = "motion detector frames/s at the board's frame size (CPython, MicroPython) and recall on built-in scenes"
BOARD_SIZE = (48, 32)
HOST_SIZE = (160, 120)
SCRIPT = "tools/bench/camera_probe.py"


def _probe(interpreter: str, width: int, height: int, stride: int, steps: int) -> int:
    cmd = [interpreter, SCRIPT, str(width), str(height), str(stride), str(steps)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    return int(json.loads(done.stdout.strip().splitlines()[-1])["fps"])


def _recall(width: int, height: int) -> dict[str, int]:
    totals = {"truth": 0, "found": 0, "events": 0, "false_alarms": 0}
    for name in scene_names():
        for seed in range(1, 6):
            result = score(MotionDetector(width, height, min_permille=15), Scene(name, width, height, seed), 200, 2)
            for key in totals:
                totals[key] += int(result[key])
    true_events = totals["events"] - totals["false_alarms"]
    return {
        "recall_permille": totals["found"] * 1000 // max(1, totals["truth"]),
        "precision_permille": true_events * 1000 // max(1, totals["events"]),
        "truth_events": totals["truth"],
        "false_alarms": totals["false_alarms"],
    }


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    runs = runs or 3
    mp = micropython_binary()
    figures: dict[str, Any] = {}
    w, h = BOARD_SIZE
    cases = [("cpython", sys.executable, w, h, 1, 3000), ("cpython", sys.executable, w, h, 2, 3000)]
    cases.append(("cpython", sys.executable, HOST_SIZE[0], HOST_SIZE[1], 1, 300))
    if mp is not None:
        cases += [("micropython", mp, w, h, 1, 3000), ("micropython", mp, w, h, 2, 3000)]
    elif progress:
        progress.write("camera-fps: no micropython binary: its figures are skipped\n")
    for label, interpreter, cw, ch, stride, steps in cases:
        if progress:
            progress.write(f"camera-fps: {label} {cw}x{ch} stride {stride}...\n")
        fps = [_probe(interpreter, cw, ch, stride, steps) for _ in range(runs)]
        figures[f"{label}_fps_{cw}x{ch}_stride{stride}"] = statistics.median(fps)
    for cw, ch in (BOARD_SIZE, HOST_SIZE):
        if progress:
            progress.write(f"camera-fps: recall on built-in scenes at {cw}x{ch}...\n")
        for key, value in _recall(cw, ch).items():
            figures[f"{key}_{cw}x{ch}"] = value
    base = figures.get(f"cpython_fps_{w}x{h}_stride1")
    top = figures.get(f"micropython_fps_{w}x{h}_stride1")
    ratio = round(top / base, 3) if base and top else None
    return {"name": NAME, "figures": figures, "ratio": ratio}
