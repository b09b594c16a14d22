"""WatchedSocket's buffering (the socket under PahoClient), over a real socket pair.

paho writes one packet per ``send`` and reads a packet in three ``recv``; the
socket gathers the sends until ``flush`` and serves the reads from one
``recv``, pushing back (EAGAIN) once 64 KiB wait unsent.
"""

from __future__ import annotations

import select
import socket
import struct
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


def _puback(packet_id: int) -> bytes:
    return bytes([0x40, 2, packet_id >> 8, packet_id & 0xFF])


def test_pubacks_in_front_are_taken_and_the_rest_is_left_for_paho_in_order(
    pair: tuple[WatchedSocket, socket.socket, dict[str, int]],
) -> None:
    sock, peer, counters = pair
    assert sock.fill() is False and sock.take_pubacks() == []  # nothing arrived yet
    publish = bytes([0x32, 9, 0, 3]) + b"a/b" + b"\x01\x02" + b"hi"  # QoS 1 PUBLISH, id 258
    ids = [1, 2, 300, 65535]
    wire = b"".join(_puback(i) for i in ids) + publish + _puback(7) + _puback(8)[:3]
    peer.sendall(wire)
    assert sock.fill() is True and counters["bytes_in"] == len(wire)
    assert sock.take_pubacks() == ids
    assert sock.take_pubacks() == []  # a PUBLISH is in front now: that one is paho's
    assert sock.pending() == len(wire) - 16
    assert sock.recv(1) == b"\x32" and sock.recv(1) == bytes([9]) and sock.recv(9) == publish[2:]
    assert sock.take_pubacks() == [7]  # whole PUBACKs only: the last 3 bytes wait for the 4th
    assert sock.pending() == 3
    peer.sendall(b"\x08")
    assert sock.fill() is True  # bytes still held: no read until paho has them
    assert sock.recv(3) == _puback(8)[:3] and sock.recv(1) == b"\x08"
    assert sock.pending() == 0


def test_eof_met_while_filling_reaches_paho_on_its_next_read(
    pair: tuple[WatchedSocket, socket.socket, dict[str, int]],
) -> None:
    sock, peer, _ = pair
    peer.sendall(_puback(5))
    peer.shutdown(socket.SHUT_WR)
    assert sock.fill() and sock.take_pubacks() == [5]
    assert sock.fill() is True and sock.eof  # the EOF is held for paho...
    assert sock.pending() == 1  # ...and counted, so the owner hands over to paho
    assert sock.recv(1) == b""  # paho's loss path sees it
    assert sock.pending() == 0


def test_a_reset_met_while_filling_is_raised_to_paho_on_its_next_read() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    try:
        ours.setblocking(False)
        sock = WatchedSocket(ours, {"bytes_in": 0, "bytes_out": 0, "pings": 0})
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # linger 0: an RST, not a FIN
        for _ in range(1000):  # bounded: the RST is on loopback, it is there at once or nearly
            if sock.fill():
                break
            select.select([ours], [], [], 0.01)
        assert sock.pending() == 1 and isinstance(sock.error, ConnectionResetError)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    finally:
        ours.close()
