"""WatchedSocket's buffering (the socket under PahoClient), over a real socket pair.

paho writes one packet per ``send`` and reads a packet in three ``recv``; the
socket gathers the sends until ``flush`` and serves the reads from one
``recv``, pushing back (EAGAIN) once 64 KiB wait unsent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from device.link.paho_socket import WatchedSocket


@pytest.fixture
def pair() -> Iterator[tuple[WatchedSocket, socket.socket, dict[str, int]]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    counters = {"bytes_in": 0, "bytes_out": 0, "pings": 0}
    yield WatchedSocket(ours, counters), peer, counters
    ours.close()
    peer.close()


def _drain(peer: socket.socket) -> bytes:
    peer.setblocking(False)
    got = b""
    while True:
        try:
            chunk = peer.recv(1 << 16)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got += chunk


def test_sends_wait_for_flush_then_leave_in_order(pair: tuple[WatchedSocket, socket.socket, dict[str, int]]) -> None:
    sock, peer, counters = pair
    packets = [bytes([0x30, 3]) + b"%03d" % i for i in range(50)] + [b"\xc0\x00"]
    for packet in packets:
        assert sock.send(packet) == len(packet)
    assert sock.buffered() == sum(map(len, packets)) and _drain(peer) == b""
    assert sock.flush() == 0
    assert _drain(peer) == b"".join(packets)
    assert counters["bytes_out"] == sum(map(len, packets)) and counters["pings"] == 1


def test_a_full_buffer_pushes_back_and_loses_nothing(
    pair: tuple[WatchedSocket, socket.socket, dict[str, int]],
) -> None:
    sock, peer, _ = pair
    chunk = b"x" * 1000
    sent = b""
    for i in range(100_000):  # bounded: the kernel's buffer plus 64 KiB fill long before
        data = chunk[:-6] + b"%06d" % i
        try:
            sock.send(data)
        except BlockingIOError:
            break
        sent += data
    else:
        pytest.fail("send never pushed back")
    got = b""
    for _ in range(10_000):
        got += _drain(peer)
        if sock.flush() == 0 and len(got) + sock.buffered() >= len(sent):
            break
    got += _drain(peer)
    assert got == sent


def test_reads_come_from_one_recv_and_pending_counts_them(
    pair: tuple[WatchedSocket, socket.socket, dict[str, int]],
) -> None:
    sock, peer, counters = pair
    pubacks = b"".join(bytes([0x40, 2, 0, i]) for i in range(1, 6))
    peer.sendall(pubacks)
    first = sock.recv(1)
    assert first == b"\x40" and counters["bytes_in"] == len(pubacks)  # one recv took all of it
    assert sock.pending() == len(pubacks) - 1
    rest = b""
    while sock.pending():
        rest += sock.recv(3)
    assert first + rest == pubacks
    assert sock.head == pubacks[:4]
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing held, nothing in the kernel


def test_a_killed_socket_neither_sends_nor_flushes(
    pair: tuple[WatchedSocket, socket.socket, dict[str, int]],
) -> None:
    sock, peer, _ = pair
    sock.send(b"\x30\x00")
    sock.kill("reconnect")
    with pytest.raises(ConnectionAbortedError):
        sock.send(b"\x30\x00")
    sock.close()  # a killed socket closes without writing what it held
    assert _drain(peer) == b""
