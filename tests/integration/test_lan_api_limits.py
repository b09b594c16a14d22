"""Hostile LAN clients stay bounded, and the thermostat's control loop never notices.

Slowloris (a byte at a time), silent sockets, a connection flood and a crash in
a handler, against a real device on loopback. Waits are bounded by generous
timeouts; what is asserted is behaviour (statuses, counters, no control gap),
never how long something took.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.lan_rig import LanDevice, Reply, exchange, lan_device, read_all, request, wait_until

READ_TIMEOUT_MS = 300
MAX_CONNS = 3
FLOOD = 40


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[LanDevice]:
    with lan_device(tmp_path, http={"read_timeout_ms": READ_TIMEOUT_MS, "max_conns": MAX_CONNS}) as d:
        yield d


def _control_ok(dev: LanDevice) -> dict:
    meter = dev.app("thermostat").meter
    stats: dict = dev.sync(meter.stats)
    assert stats["gaps"] == 0, stats  # never two tick periods without a control tick
    assert dev.device.supervisor.crash_total == 0
    return stats


def test_a_silent_client_gets_408(dev: LanDevice) -> None:
    with socket.create_connection(("127.0.0.1", dev.port), timeout=30) as sock:
        reply = Reply(read_all(sock))  # sends nothing: the server gives up first
    assert reply.status == 408 and reply.json()["error"] == "timeout"


def test_slowloris_is_cut_however_it_drips(dev: LanDevice) -> None:
    # One byte well inside each read timeout: only the whole-request deadline stops it.
    data = b"GET /v1/info HTTP/1.1\r\nHost: d\r\nX-Pad: " + b"a" * 1000
    got = b""
    with socket.create_connection(("127.0.0.1", dev.port), timeout=30) as sock:
        for i in range(len(data)):  # bounded: the server closes long before the end
            try:
                sock.sendall(data[i : i + 1])
            except OSError:
                break
            time.sleep(READ_TIMEOUT_MS / 3000)
            sock.setblocking(False)
            try:
                got = sock.recv(65536)
            except BlockingIOError:
                got = b""
            sock.setblocking(True)
            if got:
                break
        got += read_all(sock)
    assert Reply(got).status == 408
    stats = dev.sync(dev.server.stats)
    assert stats["timeouts"] >= 1 and stats["active"] == 0
    assert request(dev.port, "GET", "/v1/info").status == 200
    _control_ok(dev)


def test_a_connection_flood_is_answered_503_and_service_comes_back(dev: LanDevice) -> None:
    ticks_before = _control_ok(dev)["ticks"]
    socks = []
    try:
        for _ in range(FLOOD):
            socks.append(socket.create_connection(("127.0.0.1", dev.port), timeout=30))
        statuses = [Reply(read_all(s)).status for s in socks]  # each ends: 503 at once, or 408
    finally:
        for s in socks:
            s.close()
    assert statuses.count(408) <= MAX_CONNS
    assert statuses.count(503) >= FLOOD - MAX_CONNS
    assert set(statuses) <= {408, 503}
    stats = dev.sync(dev.server.stats)
    assert stats["rejected"] >= FLOOD - MAX_CONNS and stats["peak"] <= MAX_CONNS
    assert wait_until(lambda: dev.sync(dev.server.stats)["active"] == 0, timeout=10)
    assert request(dev.port, "GET", "/v1/info").status == 200
    assert wait_until(lambda: dev.sync(dev.app("thermostat").meter.stats)["ticks"] > ticks_before + 1, timeout=15)
    _control_ok(dev)


def test_oversized_bodies_and_early_hangups_cost_nothing(dev: LanDevice) -> None:
    for _ in range(20):
        reply = exchange(
            dev.port, b"POST /v1/thermostat HTTP/1.1\r\nHost: d\r\nContent-Length: 999999\r\n\r\n" + b"x" * 8000
        )
        assert reply.status in (0, 413)  # 0: the server closed while we still sent (reset)
    before = dev.sync(dev.server.stats)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", dev.port), timeout=30) as sock:
            sock.sendall(b"GET /v1/in")  # and leave
    # Each ends as a hang-up noticed, or as a 503 when it came while the cap was full.

    def ended() -> int:
        stats = dev.sync(dev.server.stats)
        return stats["closed_early"] + stats["rejected"] - before["closed_early"] - before["rejected"]

    assert wait_until(lambda: ended() >= 20, timeout=10), dev.sync(dev.server.stats)
    assert dev.sync(dev.server.stats)["closed_early"] > before["closed_early"]
    stats = dev.sync(dev.server.stats)
    assert stats["crashes"] == 0 and stats["by_status"]["413"] >= 1
    _control_ok(dev)


def test_a_crash_while_answering_is_caught_counted_and_answered_500(dev: LanDevice) -> None:
    api = dev.server.api

    async def broken(request: object) -> tuple:
        raise RuntimeError("a bug")

    healthy = api.handle
    api.handle = broken
    try:
        reply = request(dev.port, "GET", "/v1/info")
    finally:
        api.handle = healthy
    assert reply.status == 500 and reply.json()["error"] == "internal"
    assert dev.sync(dev.server.stats)["crashes"] == 1
    assert request(dev.port, "GET", "/v1/info").status == 200
    assert dev.device.supervisor.stats()["lan"]["crashes"] == 0  # the server task itself never fell
    _control_ok(dev)
