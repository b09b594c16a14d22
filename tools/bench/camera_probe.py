"""Frames per second of the motion detector; runs under ``micropython`` and CPython alike.

    micropython tools/bench/camera_probe.py WIDTH HEIGHT STRIDE STEPS

Renders 60 frames of the 'walk' scene around its first walker (render time is
not measured), then feeds them to ``device.core.motion.MotionDetector`` in a
loop for STEPS frames and prints one JSON line: ``{"fps": ..., "us_per_frame":
..., "events": ...}``. Used by ``tools/bench/camera.py``.
"""

import json
import sys

sys.path.insert(0, ".")

from device.compat import perf_diff_us, perf_us
from device.core.motion import MotionDetector
from hw.sim.scene import Scene


def main(argv: list[str]) -> None:
    width, height, stride, steps = int(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    scene = Scene("walk", width, height, 1)
    frames = []
    for i in range(60):
        buf = bytearray(width * height)
        scene.render_into(buf, 6000 + i * 200)
        frames.append(buf)
    detector = MotionDetector(width, height, stride=stride)
    started = perf_us()
    for i in range(steps):
        detector.step(frames[i % 60], i * 200)
    spent = perf_diff_us(perf_us(), started)
    print(
        json.dumps({"fps": steps * 1000000 // max(1, spent), "us_per_frame": spent // steps, "events": detector.events})
    )


main(sys.argv[1:])
