"""A real device serving the LAN API on loopback, in a thread of its own, and a raw HTTP client.

The device runs a simulated board (sim parts) on the real monotonic clock, so its
control ticks happen in real time next to the server, and the client is plain
blocking sockets in the test's thread, like a phone on the LAN.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cloud_shim.tokens import lankey_path, new_key, sign_headers
from device.board import load_board
from device.boot import Device, build_env
from device.clock import MonotonicClock
from device.config import configure_apps

REPO = Path(__file__).resolve().parents[2]


class LanDevice:
    def __init__(self, device: Device, loop: asyncio.AbstractEventLoop) -> None:
        self.device = device
        self.loop = loop
        server = device.lan_server
        assert server is not None
        self.server: Any = server
        self.port: int = server.port

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the device's loop (the store is not thread-safe)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def sync(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()

        return self.call(run())

    def app(self, name: str) -> Any:
        return next(app for app in self.device.apps if app.name == name)


DEVICE_ID = "lan-dev"


def provision(tmp_path: Path) -> tuple[str, bytes]:
    """A token key for ``DEVICE_ID`` as ``brickproof provision`` writes it: ``(key file, key)``."""
    key = new_key()
    path = lankey_path(tmp_path, DEVICE_ID)
    path.write_text(key.hex() + "\n")
    return str(path), key


@contextmanager
def lan_device(
    tmp_path: Path, base: str = "host_sim.json", http: dict | None = None, lan: dict | None = None
) -> Iterator[LanDevice]:
    """Boot ``boards/<base>`` with the LAN API on a free loopback port; stop it afterwards."""
    cfg: dict = {"enabled": True, "port": 0, "bind": "127.0.0.1"}
    cfg.update(http or {})
    lan_section: dict = {"http": cfg}
    lan_section.update(lan or {})
    path = tmp_path / "lan_board.json"
    path.write_text(json.dumps({"extends": str(REPO / "boards" / base), "name": DEVICE_ID, "lan": lan_section}))
    board = load_board(str(path))
    settings = configure_apps(board, list(board["apps"]))
    if "bed" in settings:
        # The board's night schedule runs on the real time of day here (a monotonic clock): from
        # 22:00 it would set the left side to 30 C itself, and a test could not tell its own write.
        settings["bed"]["left_schedule"] = []
        settings["bed"]["right_schedule"] = []
    started = threading.Event()
    holder: dict = {}

    async def main() -> None:
        env, world = build_env(board, clock=MonotonicClock())
        device = Device(env, settings, world)
        stop = asyncio.Event()
        holder["stop"] = stop
        holder["loop"] = asyncio.get_running_loop()
        await device.start()
        try:
            await asyncio.wait_for(device.lan_server.ready.wait(), 10)  # type: ignore[attr-defined]
            holder["device"] = device
        finally:
            started.set()
        try:
            await stop.wait()
        finally:
            await device.stop()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # seen by the test through holder
            holder["error"] = exc
            started.set()

    thread = threading.Thread(target=thread_main, name="lan-device", daemon=True)
    thread.start()
    assert started.wait(20), "the device did not start"
    if "device" not in holder:
        raise AssertionError(f"device failed: {holder.get('error')!r}")
    try:
        yield LanDevice(holder["device"], holder["loop"])
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(20)
        assert not thread.is_alive(), "the device did not stop"
        assert "error" not in holder, holder.get("error")


class Reply:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/1.1 ") else 0
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.raw = raw

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.raw[:300]!r})"


def exchange(port: int, data: bytes, timeout: float = 10.0) -> Reply:
    """Send ``data``, read until the server closes; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return Reply(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def request(port: int, method: str, target: str, body: Any = None, headers: dict | None = None) -> Reply:
    payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    lines = [f"{method} {target} HTTP/1.1", "Host: device.lan"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if payload or method == "POST":
        lines.append(f"Content-Length: {len(payload)}")
    return exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + payload)


def wait_until(done: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``done()`` until true or a generous time is up (bounded in count too); the last answer."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 1):
        if done():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(step)
    return bool(done())


def signed(port: int, issued: dict, method: str, target: str, body: Any = None, sign: bool = True) -> Reply:
    """A request with ``issued``'s bearer token, signed against the device's clock (``GET /v1/info``)."""
    payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    boot = ts = None
    if sign:
        info = request(port, "GET", "/v1/info").json()
        boot, ts = info["boot"], info["now_ms"]
    headers = sign_headers(issued, method, target, payload, boot=boot, ts_ms=ts)
    return request(port, method, target, payload if (payload or method == "POST") else None, headers)
