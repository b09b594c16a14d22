"""The board entry point's OTA boot selection (boards/mp/main.py) on the real unix VM.

A directory laid out as a flashed board (``tools.flash.build_image``: main.py,
boot.py, board.json, the runtime as .mpy) gets an update slot ``ota/a`` holding
the runtime compiled from a patched copy of the tree (a line that says which
file it was loaded from; or a config module that raises on import), its
``bundle.json``, and a boot record putting it on trial. The stand-in
``machine`` (tests/data/fake_board) gives the drivers their pins; the tests set
its reset cause and catch its ``reset()``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from device.ota import record
from tests.portable.test_micropython import REPO_ROOT, _binary
from tools import flash
from tools.bundle import mpy_files

pytestmark = pytest.mark.micropython

HEAP = "256k"  # the 64-bit unix port's objects are about twice an ESP32's
BOARD = REPO_ROOT / "boards" / "esp32_generic.json"
MARKER = '\nprint("ota-test code from " + __file__)\n'
CRASH = '\nraise RuntimeError("ota-test crash on boot")\n'


def patched_tree(dest: Path, compat_tail: str = MARKER, config_tail: str = "", **tails: str) -> Path:
    """A copy of device/ and hw/ with lines appended to device/compat.py, device/config.py and
    any other ``device/<name>.py`` named in ``tails``."""
    for package in ("device", "hw"):
        shutil.copytree(REPO_ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    tails = dict(tails, compat=compat_tail, config=config_tail)
    for name, tail in tails.items():
        path = dest / "device" / (name + ".py")
        path.write_text(path.read_text() + tail)
    return dest


def write_factory(fs: Path) -> None:
    """What ``brickproof flash`` puts on the board, plus the stand-in machine."""
    cache = REPO_ROOT / ".brickproof" / "flash" / "mpy"
    for rel, data in flash.build_image(str(BOARD), REPO_ROOT / "boards" / "mp", cache).items():
        (fs / rel).parent.mkdir(parents=True, exist_ok=True)
        (fs / rel).write_bytes(data)
    for fake in (REPO_ROOT / "tests" / "data" / "fake_board").glob("*.py"):
        shutil.copy(fake, fs / fake.name)


def write_slot(fs: Path, slot: str, src: Path, version: str = "0.2.0") -> None:
    """A complete slot by hand (its files, then bundle.json), and a record with it on trial."""
    files = mpy_files(src)
    for rel, data in files:
        (fs / "ota" / slot / rel).parent.mkdir(parents=True, exist_ok=True)
        (fs / "ota" / slot / rel).write_bytes(data)
    (fs / "ota" / slot / "bundle.json").write_text(json.dumps({"version": version, "files": len(files)}))
    rec = record.start_trial(record.fresh("0.1.0"), slot, version, "ab" * 32)
    (fs / "ota" / "boot.json").write_text(json.dumps(rec))


def boot_record(fs: Path) -> dict[str, Any]:
    rec: dict[str, Any] = json.loads((fs / "ota" / "boot.json").read_text())
    return rec


def mp(fs: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_binary("micropython"), "-X", "heapsize=" + HEAP, "-c", code],
        cwd=fs,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def slot_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ota_src")
    return {
        "marked": patched_tree(base / "marked"),
        "crashing": patched_tree(base / "crashing", config_tail=CRASH),
    }


@pytest.fixture
def board_fs(tmp_path: Path) -> Path:
    fs = tmp_path / "fs"
    fs.mkdir()
    write_factory(fs)
    return fs


def test_a_trial_slot_is_booted_with_its_own_code(board_fs: Path, slot_files: dict[str, Path]) -> None:
    write_slot(board_fs, "a", slot_files["marked"])
    done = mp(
        board_fs,
        "import main\nmain.select_slot('power')\ns = main.run(for_s=2)\nprint('ticks', s['thermostat']['ticks'])\n",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ota slot=a note=trial boot 1 of 3" in done.stdout
    # Every device module came from the slot: the factory's selector modules were dropped first.
    assert "ota-test code from ota/a/device/compat.mpy" in done.stdout
    assert "ticks" in done.stdout and "summary " in done.stdout
    rec = boot_record(board_fs)
    assert rec["booted"] == "a" and rec["trial"]["boots"] == 1 and rec["good"] == "factory"


def test_a_trial_that_raises_is_rolled_back_and_the_board_reset(board_fs: Path, slot_files: dict[str, Path]) -> None:
    write_slot(board_fs, "a", slot_files["crashing"])
    code = "import machine\nmachine.reset = lambda: print('RESET called')\nimport main\nmain._main()\n"
    done = mp(board_fs, code)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ota slot=a note=trial boot 1 of 3" in done.stdout
    assert "ota-test crash on boot" in done.stdout
    assert "ota slot=a rolled back; resetting" in done.stdout and "RESET called" in done.stdout
    rec = boot_record(board_fs)
    assert rec["trial"] is None and rec["good"] == "factory"
    assert rec["last"]["event"] == "rolled_back" and rec["last"]["slot"] == "a"
    assert rec["last"]["reason"].startswith("crashed on trial boot: RuntimeError: ota-test crash on boot")

    again = mp(
        board_fs, "import main\nmain.select_slot('reset')\nimport device.compat\nprint(device.compat.__file__)\n"
    )
    assert again.returncode == 0, again.stderr
    assert "ota slot=factory" in again.stdout and "device/compat.mpy" in again.stdout
    assert "ota/a" not in again.stdout.split("ota slot=factory", 1)[1]


def test_a_watchdog_reset_after_a_trial_boot_rolls_back(board_fs: Path, slot_files: dict[str, Path]) -> None:
    write_slot(board_fs, "a", slot_files["marked"])
    first = mp(board_fs, "import main\nmain.select_slot(main.reset_cause(__import__('machine')))\n")
    assert "ota slot=a note=trial boot 1 of 3" in first.stdout, first.stdout + first.stderr
    code = (
        "import machine\n"
        "machine.WDT_RESET = 3\n"
        "machine.reset_cause = lambda: 3\n"
        "import main\n"
        "main.select_slot(main.reset_cause(machine))\n"
        "import device.compat\n"
    )
    done = mp(board_fs, code)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ota slot=factory note=rolled back: watchdog reset on trial boot" in done.stdout
    assert "ota-test code from" not in done.stdout  # the factory's compat, not the slot's
    rec = boot_record(board_fs)
    assert rec["trial"] is None and rec["booted"] == "factory"
    assert rec["last"]["reason"] == "watchdog reset on trial boot"


def test_reset_causes_and_a_broken_selection_boot_the_factory(board_fs: Path) -> None:
    code = (
        "import main\n"
        "class M:\n"
        "    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5\n"
        "    code = 1\n"
        "    def reset_cause():\n"
        "        return M.code\n"
        "for c in (1, 2, 3, 4, 5, 9):\n"
        "    M.code = c\n"
        "    print('cause', c, main.reset_cause(M))\n"
        "print('cause none', main.reset_cause(None))\n"
    )
    done = mp(board_fs, code)
    assert done.returncode == 0, done.stderr
    causes = [line.split()[1:] for line in done.stdout.splitlines() if line.startswith("cause ")]
    assert causes == [
        ["1", "power"], ["2", "reset"], ["3", "wdt"], ["4", "reset"], ["5", "soft"], ["9", "power"], ["none", "power"]
    ]  # fmt: skip

    (board_fs / "ota").mkdir()
    (board_fs / "ota" / "boot.json").write_text("{not json")
    garbled = mp(board_fs, "import main\nmain.select_slot('power')\n")
    assert "ota slot=factory note=boot record unreadable" in garbled.stdout, garbled.stdout + garbled.stderr

    shutil.rmtree(board_fs / "device" / "ota")  # a factory image from before OTA: no selector at all
    old = mp(board_fs, "import main\nmain.select_slot('power')\nimport sys\nprint('path', sys.path[0])\n")
    assert "ota slot=factory note=boot selection failed: ImportError" in old.stdout, old.stdout + old.stderr
    assert "path ota/" not in old.stdout
