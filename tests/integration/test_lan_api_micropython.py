"""The LAN API server on the ``micropython`` binary, asked by a CPython client over loopback.

The MicroPython VM boots a real device (host_sim board, LAN API on, real
monotonic clock) from source, serves requests, and prints its server counters
when the client is done. MicroPython's asyncio ``Server`` keeps its socket to
itself, so the test picks the port (a port-0 bind is not reported there).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud_shim.tokens import issue
from tests.integration.lan_rig import DEVICE_ID, exchange, provision, request, signed, wait_until
from tests.portable.test_micropython import REPO_ROOT, _binary

pytestmark = pytest.mark.micropython

SCRIPT = """
import sys
sys.path.insert(0, REPO)
import asyncio, json
from device.board import load_board
from device.config import configure_apps
from device.boot import Device, build_env
from device.clock import MonotonicClock
from device import compat

async def main():
    board = load_board(BOARD)
    settings = configure_apps(board, list(board["apps"]))
    env, world = build_env(board, clock=MonotonicClock())
    device = Device(env, settings, world)
    await device.start()
    server = device.lan_server
    await compat.wait_for_ms(server.ready.wait(), 20000)
    print("READY", server.port)
    for _ in range(450):  # at most 45 s (the test waits 60): WANT requests end it
        if server.counters["requests"] >= WANT:
            break
        await compat.sleep_ms(100)
    await compat.sleep_ms(200)
    out = server.stats()
    out["control"] = device.apps[0].meter.stats()
    out["crash_total"] = device.supervisor.crash_total
    await device.stop()
    print("STATS " + json.dumps(out))

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _board(tmp_path: Path, port: int, key_file: str | None) -> Path:
    board = tmp_path / "board.json"
    http = {"enabled": True, "port": port, "bind": "127.0.0.1", "read_timeout_ms": 2000}
    lan = {"http": http, "key_file": key_file}
    board.write_text(
        json.dumps({"extends": str(REPO_ROOT / "boards" / "host_sim.json"), "name": DEVICE_ID, "lan": lan})
    )
    return board


def _serve(tmp_path: Path, board: Path, want: int, client: Callable[[int], None]) -> dict:
    """Run the device on MicroPython, let ``client(port)`` talk to it, return its closing stats."""
    micropython = _binary("micropython")
    port = json.loads(board.read_text())["lan"]["http"]["port"]
    script = tmp_path / "serve.py"
    script.write_text(f"REPO = {str(REPO_ROOT)!r}\nBOARD = {str(board)!r}\nWANT = {want}\n" + SCRIPT)
    proc = subprocess.Popen(
        [micropython, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # READY comes once the server listens (or the VM died: "")
        assert line.startswith("READY"), line + (proc.stdout.read() if proc.poll() is not None else "")
        client(port)
        assert wait_until(lambda: proc.poll() is not None, timeout=60)
        out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, out
    stats: dict = json.loads(next(line for line in out.splitlines() if line.startswith("STATS "))[6:])
    assert stats["crashes"] == 0 and stats["crash_total"] == 0, stats
    assert stats["control"]["gaps"] == 0 and stats["control"]["ticks"] >= 1
    return stats


def test_the_server_runs_on_micropython(tmp_path: Path) -> None:
    def client(port: int) -> None:
        info = request(port, "GET", "/v1/info")
        assert info.status == 200, info
        assert info.json()["device"] == DEVICE_ID and info.json()["apps"] == ["thermostat"]
        assert info.json()["provisioned"] is False
        assert exchange(port, b"GET /v1/info HTTP/1.1\r\nHost: d\r\nX: " + b"v" * 4000 + b"\r\n\r\n").status == 431
        assert request(port, "GET", "/v1/nothing").status == 404
        reply = request(port, "POST", "/v1/thermostat", {"setpoint_c": 20})
        assert reply.status == 403 and reply.json()["error"] == "not_provisioned"
        assert request(port, "GET", "/v1/status").status == 403

    stats = _serve(tmp_path, _board(tmp_path, _free_port(), None), 4, client)
    assert stats["by_status"] == {"200": 1, "431": 1, "404": 1, "403": 2}


def test_signed_control_on_micropython(tmp_path: Path) -> None:
    key_file, key = provision(tmp_path)
    owner = issue(key, DEVICE_ID, ["read", "control", "admin"])
    reader = issue(key, DEVICE_ID, ["read"])

    def client(port: int) -> None:
        reply = signed(port, owner, "POST", "/v1/thermostat", {"mode": "cool", "setpoint_c": 19.5})
        assert reply.status == 200, reply
        assert reply.json()["applied"] == {"mode": "cool", "setpoint_c": 19.5}
        state = signed(port, reader, "GET", "/v1/state", sign=False).json()["state"]
        assert state["thermostat.setpoint_c"] == {
            "value": 19.5,
            "version": state["thermostat.setpoint_c"]["version"],
            "origin": "lan",
        }
        assert signed(port, reader, "POST", "/v1/thermostat", {"mode": "off"}).json()["error"] == "wrong_scope"
        diag = signed(port, owner, "GET", "/v1/diagnostics").json()
        assert diag["lan"]["crashes"] == 0 and diag["heap_used"] > 0

    stats = _serve(tmp_path, _board(tmp_path, _free_port(), key_file), 7, client)  # 3 signed: each asks /v1/info first
    assert stats["auth"]["allowed"] == 3 and stats["auth"]["refused"] == 1
