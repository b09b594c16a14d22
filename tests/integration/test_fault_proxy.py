"""The TCP fault proxy, mode by mode, between plain MQTT clients and a real mosquitto.

paho-mqtt (in its own thread) is the test client where MQTT behaviour is the
point; a raw socket speaking a hand-made CONNECT where the exact bytes are.
Negative checks ("no CONNACK", "no data") wait a bounded ``QUIET_S``; positive
ones wait up to ``WAIT_S``: neither is a latency assertion.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest

from cloud_shim.broker import Mosquitto, free_port
from cloud_shim.faults.mqttframe import MqttFramer, connect_client_id
from cloud_shim.faults.proxy import FaultProxy

WAIT_S = 10.0
QUIET_S = 1.0


# ---------------------------------------------------------------- helpers


class Probe:
    """A paho client that records what happens to it."""

    def __init__(self, client_id: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.cond = threading.Condition()
        self.connacks = 0
        self.disconnects = 0
        self.acked: set[int] = set()
        self.subacks = 0
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.started = False

    def _note(self, fn: Callable[[], None]) -> None:
        with self.cond:
            fn()
            self.cond.notify_all()

    def _on_connect(self, *args: object) -> None:
        self._note(lambda: setattr(self, "connacks", self.connacks + 1))

    def _on_disconnect(self, *args: object) -> None:
        self._note(lambda: setattr(self, "disconnects", self.disconnects + 1))

    def _on_publish(self, client: object, userdata: object, mid: int, *rest: object) -> None:
        self._note(lambda: self.acked.add(mid))

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._note(lambda: self.messages.append((msg.topic, bytes(msg.payload))))

    def _on_subscribe(self, *args: object) -> None:
        self._note(lambda: setattr(self, "subacks", self.subacks + 1))

    def connect(self, port: int, keepalive: int = 60) -> None:
        self.client.connect("127.0.0.1", port, keepalive)
        self.client.loop_start()
        self.started = True

    def wait(self, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout_s)

    def subscribe(self, topic: str) -> None:
        before = self.subacks
        self.client.subscribe(topic, qos=1)
        assert self.wait(lambda: self.subacks > before), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        return self.client.publish(topic, payload, qos=qos).mid

    def close(self) -> None:
        if self.started:
            self.client.disconnect()
            self.client.loop_stop()


@pytest.fixture
def probes() -> Iterator[Callable[[str], Probe]]:
    made: list[Probe] = []

    def make(client_id: str) -> Probe:
        probe = Probe(client_id)
        made.append(probe)
        return probe

    yield make
    for probe in made:
        probe.close()


@pytest.fixture
def proxy(broker: Mosquitto) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", broker.port) as p:
        yield p


def _connect_packet(client_id: str) -> bytes:
    ident = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(ident).to_bytes(2, "big") + ident
    return bytes([0x10, len(body)]) + body


def _raw_session(port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.sendall(_connect_packet(client_id))
    return sock


def _exchange(port: int, client_id: str) -> tuple[bytes, str]:
    """CONNECT on a fresh socket and read until closed. A reset may already hit the connect or the send."""
    try:
        with _raw_session(port, client_id) as sock:
            return _read_until_closed(sock)
    except (ConnectionResetError, BrokenPipeError):
        return b"", "reset"


def _read_until_closed(sock: socket.socket, timeout_s: float = WAIT_S) -> tuple[bytes, str]:
    """Everything the peer sends until it closes: ``(bytes, "eof" | "reset" | "quiet")``."""
    got = b""
    sock.settimeout(timeout_s)
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return got, "reset"
        except TimeoutError:
            return got, "quiet"
        if not chunk:
            return got, "eof"
        got += chunk


def _eventually(predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ---------------------------------------------------------------- the framer (no sockets)


def test_framer_finds_packets_in_any_chunking() -> None:
    puback = b"\x40\x02\x00\x07"
    publish = b"\x32" + bytes([200, 1]) + b"p" * 200  # remaining length 200: two length bytes
    pingresp = b"\xd0\x00"
    stream = publish + puback + pingresp + puback
    expected = [3] * len(publish) + [4] * 4 + [13] * 2 + [4] * 4
    for size in (1, 2, 3, 5, 7, 64, len(stream)):
        framer = MqttFramer()
        kinds: list[int] = []
        starts = 0
        for i in range(0, len(stream), size):
            chunk = stream[i : i + size]
            for start, end, kind, first in framer.runs(chunk):
                kinds += [kind] * (end - start)
                starts += first
        assert kinds == expected, size
        assert starts == 4


def test_framer_gives_up_on_a_bad_length() -> None:
    framer = MqttFramer()
    assert framer.runs(b"\x30\xff\xff\xff\xff\x01abc")[-1][2] == -1
    assert framer.broken and framer.runs(b"\x40\x02\x00\x01") == [(0, 4, -1, False)]


# ---------------------------------------------------------------- modes


def test_pass_forwards_both_ways(proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str) -> None:
    probe = probes(unique_id)
    probe.connect(proxy.port)
    assert probe.wait(lambda: probe.connacks == 1)
    topic = unique_id + "/t"
    probe.subscribe(topic)
    mid = probe.publish(topic, b"hello")
    assert probe.wait(lambda: mid in probe.acked and len(probe.messages) == 1)
    assert probe.messages == [(topic, b"hello")]
    stats = proxy.stats()
    assert stats["connections"] == 1 and stats["upstream_connects"] == 1
    assert stats["bytes_up"] > 0 and stats["bytes_down"] > 0 and stats["open"] == 1


def test_refuse_closes_the_listener_and_pass_reopens_it(
    proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str
) -> None:
    proxy.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=WAIT_S)
    with pytest.raises(ConnectionRefusedError):
        probes(unique_id).connect(proxy.port)
    proxy.set_mode("pass")
    probe = probes(unique_id + "b")
    probe.connect(proxy.port)
    assert probe.wait(lambda: probe.connacks == 1)


def test_reject_resets_at_once(proxy: FaultProxy, unique_id: str) -> None:
    proxy.set_mode("reject")
    assert _exchange(proxy.port, unique_id) == (b"", "reset")
    assert proxy.stats()["rejected"] == 1 and proxy.stats()["upstream_connects"] == 0


def test_blackhole_accepts_but_never_connacks(
    proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str
) -> None:
    proxy.set_mode("blackhole")
    probe = probes(unique_id)
    probe.connect(proxy.port)  # TCP connects
    assert _eventually(lambda: proxy.stats()["discarded_up"] > 0)  # CONNECT arrived, was swallowed
    assert not probe.wait(lambda: probe.connacks > 0, QUIET_S)
    stats = proxy.stats()
    assert stats["blackholed"] == 1 and stats["upstream_connects"] == 0 and stats["bytes_down"] == 0


def test_reset_mid_packet(proxy: FaultProxy, unique_id: str) -> None:
    # CONNACK is 4 bytes; the device gets 2 of them, then a reset.
    proxy.set_mode("reset_after", "down", n=2)
    assert _exchange(proxy.port, unique_id) == (b"\x20\x02", "reset")
    assert proxy.stats()["resets"] == 1


def test_reset_in_the_middle_of_a_publish(
    proxy: FaultProxy, broker: Mosquitto, probes: Callable[[str], Probe], unique_id: str
) -> None:
    device = probes(unique_id)
    device.connect(proxy.port)
    assert device.wait(lambda: device.connacks == 1)
    topic = unique_id + "/t"
    device.subscribe(topic)
    proxy.set_mode("reset_after", "down", n=5)  # counted from now: 5 bytes into the next PUBLISH
    cloud = probes(unique_id + "-cloud")
    cloud.connect(broker.port)
    cloud.publish(topic, b"x" * 100)
    assert device.wait(lambda: device.disconnects >= 1)
    assert device.messages == []
    assert proxy.stats()["resets"] == 1


def test_data_limit_cuts_the_stream(proxy: FaultProxy, unique_id: str) -> None:
    proxy.set_mode("limit", "down", n=3)
    assert _exchange(proxy.port, unique_id) == (b"\x20\x02\x00", "eof")
    assert proxy.stats()["cuts"] == 1


def test_drop_pubacks_only(
    proxy: FaultProxy, broker: Mosquitto, probes: Callable[[str], Probe], unique_id: str
) -> None:
    device = probes(unique_id)
    device.connect(proxy.port)
    assert device.wait(lambda: device.connacks == 1)
    topic = unique_id + "/t"
    device.subscribe(topic)
    proxy.set_mode("drop_pubacks")
    mid = device.publish(topic, b"own")  # its own message comes back; its PUBACK does not
    cloud = probes(unique_id + "-cloud")
    cloud.connect(broker.port)
    cloud.publish(topic, b"from-cloud")
    assert device.wait(lambda: len(device.messages) == 2)
    assert sorted(device.messages) == [(topic, b"from-cloud"), (topic, b"own")]
    assert not device.wait(lambda: mid in device.acked, QUIET_S)
    assert proxy.stats()["pubacks_dropped"] >= 1
    # The stream stayed intact: back in pass mode the next publish is acked.
    proxy.set_mode("pass")
    mid2 = device.publish(topic, b"again")
    assert device.wait(lambda: mid2 in device.acked)
    assert device.disconnects == 0


def test_half_open_stops_everything_and_never_closes(
    private_broker: Mosquitto, probes: Callable[[str], Probe], unique_id: str
) -> None:
    with FaultProxy("127.0.0.1", private_broker.port) as proxy:
        device = probes(unique_id)
        device.connect(proxy.port)
        assert device.wait(lambda: device.connacks == 1)
        topic = unique_id + "/t"
        device.subscribe(topic)
        with _raw_session(proxy.port, unique_id + "-raw") as raw:
            assert raw.recv(4) == b"\x20\x02\x00\x00"
            proxy.set_mode("half_open")
            mid = device.publish(topic, b"lost")
            cloud = probes(unique_id + "-cloud")
            cloud.connect(private_broker.port)
            cloud.publish(topic, b"lost too")
            assert not device.wait(lambda: bool(device.messages) or mid in device.acked, QUIET_S)
            # The broker goes away; the device's side stays open and silent.
            cloud.close()
            private_broker.kill()
            assert _read_until_closed(raw, QUIET_S) == (b"", "quiet")
            assert device.disconnects == 0
            assert proxy.kill_all() == 2
            assert _read_until_closed(raw) == (b"", "reset")


def test_slicer_delivers_intact_in_one_byte_writes(
    proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str
) -> None:
    proxy.set_mode("slicer")
    device = probes(unique_id)
    device.connect(proxy.port)
    assert device.wait(lambda: device.connacks == 1)
    topic = unique_id + "/t"
    device.subscribe(topic)
    payload = bytes(range(256)) * 2
    mid = device.publish(topic, payload)
    assert device.wait(lambda: mid in device.acked and len(device.messages) == 1)
    assert device.messages == [(topic, payload)]
    stats = proxy.stats()
    assert stats["writes_up"] == stats["bytes_up"] > len(payload)
    assert stats["writes_down"] == stats["bytes_down"] > len(payload)


def test_delay_and_throttle_still_deliver_intact(
    proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str
) -> None:
    proxy.set_mode("delay", "up", ms=50)
    proxy.set_mode("throttle", "down", rate=200_000)
    assert proxy.modes() == {"listen": "accept", "up": "delay", "down": "throttle"}
    device = probes(unique_id)
    device.connect(proxy.port)
    assert device.wait(lambda: device.connacks == 1)
    topic = unique_id + "/t"
    device.subscribe(topic)
    payload = bytes(range(256)) * 100  # 25.6 KB: ~0.13 s at 200 KB/s, in 10 KB slices
    mid = device.publish(topic, payload)
    assert device.wait(lambda: mid in device.acked and len(device.messages) == 1)
    assert device.messages == [(topic, payload)]
    assert proxy.stats()["writes_down"] >= 4


def test_slow_close_still_closes(private_broker: Mosquitto, unique_id: str) -> None:
    with FaultProxy("127.0.0.1", private_broker.port) as proxy:
        proxy.set_mode("slow_close", "down", ms=200)
        with _raw_session(proxy.port, unique_id) as raw:
            assert raw.recv(4) == b"\x20\x02\x00\x00"
            private_broker.kill()
            data, how = _read_until_closed(raw)
            assert data == b"" and how in ("eof", "reset")


def test_kill_all_drops_open_connections(proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str) -> None:
    device = probes(unique_id)
    device.connect(proxy.port)
    assert device.wait(lambda: device.connacks == 1)
    assert proxy.kill_all() == 1
    assert device.wait(lambda: device.disconnects >= 1)
    assert _eventually(lambda: proxy.stats()["open"] == 0)
    assert proxy.stats()["killed"] == 1


def test_connect_client_id_reads_the_id_and_nothing_else() -> None:
    packet = _connect_packet("thermostat-0007")
    assert connect_client_id(packet) == "thermostat-0007"
    assert connect_client_id(packet + b"\xc0\x00") == "thermostat-0007"  # more bytes after it
    for cut in range(len(packet)):
        assert connect_client_id(packet[:cut]) is None  # incomplete
    assert connect_client_id(b"\x20\x02\x00\x00") is None  # a CONNACK, not a CONNECT
    assert connect_client_id(b"\x10\xff\xff\xff\xff\x01") is None  # a length past four bytes


def test_set_offline_cuts_one_client_and_lets_it_back(
    proxy: FaultProxy, probes: Callable[[str], Probe], unique_id: str
) -> None:
    cut, other = probes(unique_id + "-cut"), probes(unique_id + "-other")
    for probe in (cut, other):
        probe.connect(proxy.port)
        assert probe.wait(lambda p=probe: p.connacks == 1)  # type: ignore[misc]
    assert proxy.set_offline([unique_id + "-cut"], True) == 1  # its open connection is reset
    assert cut.wait(lambda: cut.disconnects >= 1)
    assert _exchange(proxy.port, unique_id + "-cut") == (b"", "reset")  # and a new one, once it names itself
    topic = unique_id + "/t"
    other.subscribe(topic)
    mid = other.publish(topic, b"still here")
    assert other.wait(lambda: mid in other.acked and len(other.messages) == 1)
    assert other.disconnects == 0
    assert proxy.stats()["offline_resets"] >= 2
    proxy.set_offline([unique_id + "-cut"], False)
    with _raw_session(proxy.port, unique_id + "-cut") as sock:
        sock.settimeout(WAIT_S)
        assert sock.recv(4)[:2] == b"\x20\x02"  # a CONNACK again


def test_upstream_down_resets_the_device(unique_id: str) -> None:
    with FaultProxy("127.0.0.1", free_port()) as proxy:
        assert _exchange(proxy.port, unique_id) == (b"", "reset")
        assert _eventually(lambda: proxy.stats()["upstream_failures"] == 1)


async def test_runs_in_the_callers_loop_too(broker: Mosquitto, unique_id: str) -> None:
    import asyncio

    async with FaultProxy("127.0.0.1", broker.port) as proxy:
        await proxy.aset_mode("limit", "down", n=1)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(_connect_packet(unique_id))
        assert await asyncio.wait_for(reader.read(100), WAIT_S) == b"\x20"
        assert await asyncio.wait_for(reader.read(100), WAIT_S) == b""
        writer.close()
        with pytest.raises(RuntimeError):
            proxy.set_mode("pass")  # the sync API needs the thread
