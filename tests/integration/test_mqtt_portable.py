"""The portable MqttClient (device/link/mqtt.py) on CPython against a real mosquitto.

The other side of each exchange is paho-mqtt (its own thread) or a second
MqttClient. Faults come from ``Relay``, a small TCP relay written here that can
pass, drop (read and discard) or stall (stop reading) each direction, record
what the client sent, and cut every connection. Every wait is bounded by a
generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_shim.broker import Mosquitto, free_port
from device.core import mqtt_codec
from device.link.client import ClientBase
from device.link.mqtt import MqttClient
from device.linkerrors import (
    BrokerRefusedError,
    ConnectError,
    LinkBusyError,
    LinkClosedError,
    NotOurBrokerError,
    TlsError,
)
from tests.integration.tls import BROKER_HOST, DEVICE_A, Pki
from tests.integration.waiting import until as wait_until

LOCAL = "127.0.0.1"
PATIENCE_MS = 15_000


async def until(client: ClientBase, done: Callable[[], bool], timeout_ms: int = PATIENCE_MS) -> None:
    await wait_until(client, done, timeout_ms)


@asynccontextmanager
async def connected(port: int, client_id: str, **options: Any) -> AsyncIterator[MqttClient]:
    client = MqttClient(client_id, **options)
    await client.connect(LOCAL, port)
    try:
        yield client
    finally:
        await client.close()


class PahoSide:
    """paho-mqtt in its own network thread: the independent other end."""

    def __init__(self, port: int, client_id: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []  # topic, payload, retain
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_connect = lambda *args: self._connected.set()
        self.client.connect(LOCAL, port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, message.retain))

    async def ready(self) -> None:
        await asyncio.to_thread(self._connected.wait, PATIENCE_MS / 1000)
        assert self._connected.is_set(), "paho did not connect"

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        await self.ready()
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        await asyncio.to_thread(self._subscribed.wait, PATIENCE_MS / 1000)
        assert self._subscribed.is_set(), "paho got no SUBACK"

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, p, _ in self.messages]

    async def wait_for(self, done: Callable[[list[bytes]], bool]) -> list[bytes]:
        for _ in range(PATIENCE_MS // 20):
            got = self.payloads()
            if done(got):
                return got
            await asyncio.sleep(0.02)
        raise AssertionError(f"paho side: condition not met; has {len(self.payloads())} messages")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
async def paho_side(broker: Mosquitto, unique_id: str) -> AsyncIterator[PahoSide]:
    side = PahoSide(broker.port, unique_id + "-paho")
    await side.ready()
    yield side
    side.close()


class Relay:
    """A TCP relay on a free loopback port towards ``upstream_port``.

    Each direction (``up``: client to broker, ``down``: broker to client) is
    ``"pass"``, ``"drop"`` (read and discard, and never pass the close on) or
    ``"stall"`` (stop reading: the sender's buffers fill). ``cut()`` closes
    every connection.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.up = "pass"
        self.down = "pass"
        self.sent_up = bytearray()  # what clients sent while this is recording
        self.recording = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOCAL, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        broker_r, broker_w = await asyncio.open_connection(LOCAL, self.upstream_port)
        self._writers += [client_w, broker_w]
        self._tasks.append(asyncio.create_task(self._pump(client_r, broker_w, "up")))
        self._tasks.append(asyncio.create_task(self._pump(broker_r, client_w, "down")))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        try:
            for _ in range(1_000_000):
                while getattr(self, direction) == "stall":  # noqa: ASYNC110  (tests flip a plain attribute)
                    await asyncio.sleep(0.01)
                data = await reader.read(65536)
                if not data:
                    break
                if direction == "up" and self.recording:
                    self.sent_up += data
                if getattr(self, direction) == "pass":
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        # A dropping direction passes nothing on, not even the close: the broker giving up on a
        # silent client must not tell the client (half-open TCP is the point of "drop").
        if getattr(self, direction) != "drop":
            writer.close()

    async def cut(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def relay(broker: Mosquitto) -> AsyncIterator[Relay]:
    r = Relay(broker.port)
    await r.start()
    yield r
    await r.close()


def publishes_in(data: bytes) -> list[tuple[int, int]]:
    """``(packet id, dup)`` of every QoS 1 PUBLISH in a client's byte stream."""
    out = []
    pos = 0
    while pos < len(data):
        first = data[pos]
        length, used = mqtt_codec.decode_length(data, pos + 1, len(data))
        if not used:
            break
        body = pos + 1 + used
        if first >> 4 == 3 and first & 0x06 == 0x02:
            tlen = int.from_bytes(data[body : body + 2], "big")
            out.append((int.from_bytes(data[body + 2 + tlen : body + 4 + tlen], "big"), first & 0x08 != 0))
        pos = body + length
    return out


# -- plain TCP ----------------------------------------------------------------------


async def test_qos0_and_qos1_reach_a_paho_subscriber(broker: Mosquitto, unique_id: str, paho_side: PahoSide) -> None:
    topic = f"bp/{unique_id}/out/event"
    await paho_side.subscribe(topic)
    async with connected(broker.port, unique_id, window=20) as client:
        assert client.closed is None and client.session_present is False
        qos1 = [client.publish(topic, b"one-%d" % i, qos=1) for i in range(15)]
        qos0 = [client.publish(topic, b"zero-%d" % i, qos=0) for i in range(5)]
        assert len(set(qos1)) == 15 and all(0 < pid <= 65535 for pid in qos1)
        assert qos0 == [0] * 5
        acked: list[int] = []
        await until(client, lambda: bool(acked.extend(client.take_acks())) or len(acked) == 15)
        assert sorted(acked) == sorted(qos1)
        assert client.in_flight() == 0
        got = await paho_side.wait_for(lambda got: len(got) >= 20)
        expected = [b"one-%d" % i for i in range(15)] + [b"zero-%d" % i for i in range(5)]
        assert sorted(got) == sorted(expected)
        stats = client.stats()
        assert stats["published"] == 20 and stats["acked"] == 15 and stats["closed"] is None
        assert stats["bytes_out"] > 0 and stats["bytes_in"] > 0 and stats["protocol_errors"] == 0


async def test_receives_what_paho_publishes_and_acks_qos1(
    broker: Mosquitto, unique_id: str, paho_side: PahoSide
) -> None:
    topic = f"bp/{unique_id}/cmd"
    async with connected(broker.port, unique_id, queue_len=100) as client:
        assert await client.subscribe([(topic, 1), (topic + "/+", 0)]) == [1, 0]
        # 50 QoS 1 messages: mosquitto keeps at most 20 unacknowledged per client, so
        # all 50 arriving means the client acknowledged them.
        for i in range(50):
            paho_side.client.publish(topic, b"c%d" % i, qos=1)
        paho_side.client.publish(topic + "/x", b"zero", qos=0)
        got: list[tuple[str, bytes]] = []
        await until(client, lambda: bool(got.extend(client.take_messages())) or len(got) == 51)
        assert [p for t, p in got if t == topic] == [b"c%d" % i for i in range(50)]
        assert (topic + "/x", b"zero") in got
        await client.unsubscribe([topic + "/+"])


async def test_window_full_raises_busy_until_pubacks_arrive(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/out/telemetry"
    async with connected(broker.port, unique_id, window=4) as client:
        pids = [client.publish(topic, b"x") for _ in range(4)]
        # PUBACKs are read only when the event loop runs: the window is full right now.
        assert client.in_flight() == 4
        with pytest.raises(LinkBusyError) as caught:
            client.publish(topic, b"one too many")
        assert caught.value.cause == "window"
        assert client.publish(topic, b"QoS 0 is not windowed", qos=0) == 0
        acked: list[int] = []
        await until(client, lambda: bool(acked.extend(client.take_acks())) or len(acked) == 4)
        assert sorted(acked) == sorted(pids)
        assert client.publish(topic, b"room again") > 0


async def test_messages_beyond_queue_len_are_dropped_and_counted(
    broker: Mosquitto, unique_id: str, paho_side: PahoSide
) -> None:
    topic = f"bp/{unique_id}/cmd"
    async with connected(broker.port, unique_id, queue_len=4) as client:
        await client.subscribe([(topic, 1)])
        for i in range(10):
            paho_side.client.publish(topic, b"%d" % i, qos=1)
        await until(client, lambda: client.counters["messages"] == 10)
        assert [p for _, p in client.take_messages()] == [b"0", b"1", b"2", b"3"]
        assert client.counters["messages_dropped"] == 6


async def test_retained_and_will(broker: Mosquitto, unique_id: str, paho_side: PahoSide, relay: Relay) -> None:
    status = f"bp/{unique_id}/status"
    await paho_side.subscribe(status)
    will = (status, b"offline", 1, True)
    client = MqttClient(unique_id, will=will)
    await client.connect(LOCAL, relay.port)
    client.publish(status, b"online", qos=1, retain=True)
    await paho_side.wait_for(lambda got: got == [b"online"])
    await relay.cut()  # the device vanishes without DISCONNECT: the broker publishes the will
    await paho_side.wait_for(lambda got: got == [b"online", b"offline"])
    await until(client, lambda: client.closed is not None)
    assert client.closed in ("eof", "reset")
    await client.close()
    late = PahoSide(broker.port, unique_id + "-late")
    try:
        await late.subscribe(status)
        got = await late.wait_for(lambda got: len(got) >= 1)
        assert got == [b"offline"] and late.messages[0][2] is True  # retained
    finally:
        late.close()


async def test_session_kept_resends_unacked_with_dup_and_same_ids(
    broker: Mosquitto, unique_id: str, relay: Relay, paho_side: PahoSide
) -> None:
    topic = f"bp/{unique_id}/out/event"
    await paho_side.subscribe(topic)
    client = MqttClient(unique_id, clean_session=False, keepalive_s=30)
    assert await client.connect(LOCAL, relay.port) is False
    relay.down = "drop"  # the broker's PUBACKs are swallowed
    pids = [client.publish(topic, b"r%d" % i) for i in range(5)]
    # The broker has them all (the subscriber sees them), the client has no PUBACK.
    await paho_side.wait_for(lambda got: len(got) >= 5)
    assert client.in_flight() == 5 and client.take_acks() == []
    await relay.cut()  # the connection dies on the broker's side of the relay
    await until(client, lambda: client.closed is not None)
    with pytest.raises(LinkClosedError):
        client.publish(topic, b"while closed")

    relay.down = "pass"
    relay.recording = True
    assert await client.connect(LOCAL, relay.port) is True  # the broker kept the session
    acked: list[int] = []
    await until(client, lambda: bool(acked.extend(client.take_acks())) or len(acked) == 5)
    assert sorted(acked) == sorted(pids)
    assert client.take_dropped() == [] and client.in_flight() == 0
    assert client.counters["resent"] == 5 and client.counters["connects"] == 2
    assert publishes_in(bytes(relay.sent_up)) == [(pid, True) for pid in pids]  # DUP, same ids, in order
    got = await paho_side.wait_for(lambda got: len(got) >= 10)
    assert sorted(set(got)) == [b"r%d" % i for i in range(5)]  # at least once
    await client.close()


async def test_session_not_kept_reports_unacked_as_dropped(private_broker: Mosquitto, unique_id: str) -> None:
    relay = Relay(private_broker.port)
    await relay.start()
    try:
        client = MqttClient(unique_id, clean_session=False)
        await client.connect(LOCAL, relay.port)
        relay.down = "drop"
        pids = [client.publish(f"bp/{unique_id}/out/event", b"d%d" % i) for i in range(4)]
        await relay.cut()
        private_broker.kill()  # persistence is off: the session dies with the process
        private_broker.start()
        relay.down = "pass"
        assert await client.connect(LOCAL, relay.port) is False
        assert client.take_dropped() == pids  # oldest first
        assert client.take_acks() == [] and client.in_flight() == 0
        assert client.counters["dropped_unacked"] == 4
        await client.close()
    finally:
        await relay.close()


async def test_half_open_connection_is_caught_by_keepalive(relay: Relay, unique_id: str) -> None:
    client = MqttClient(unique_id, keepalive_s=1)
    await client.connect(LOCAL, relay.port)
    relay.up = "drop"
    relay.down = "drop"  # TCP stays up both ways; nothing gets through any more
    await until(client, lambda: client.closed is not None, timeout_ms=30_000)
    assert client.closed == "keepalive"
    assert client.counters["ping_timeouts"] == 1 and client.counters["pings"] >= 1
    await client.close()
    assert client.closed == "keepalive"


async def test_idle_connection_stays_up_with_pings(broker: Mosquitto, unique_id: str) -> None:
    async with connected(broker.port, unique_id, keepalive_s=1) as client:
        await until(client, lambda: client.counters["pings"] >= 3, timeout_ms=30_000)
        assert client.closed is None and client.counters["ping_timeouts"] == 0


async def test_send_buffer_full_raises_busy(relay: Relay, unique_id: str) -> None:
    client = MqttClient(unique_id, keepalive_s=0)
    await client.connect(LOCAL, relay.port)
    relay.up = "stall"  # nobody reads what the client sends: kernel buffers fill, then ours
    payload = b"p" * 1024
    busy = None
    for i in range(100_000):  # at most 100 MB
        try:
            client.publish("bp/x/out/telemetry", payload, qos=0)
        except LinkBusyError as exc:
            busy = exc
            break
        if i % 16 == 0:
            await asyncio.sleep(0)  # let the flusher hand bytes to the socket
    assert busy is not None and busy.cause == "send_buffer"
    assert client.closed is None
    relay.up = "pass"
    await client.close()


async def test_close_is_idempotent_and_reconnect_works(broker: Mosquitto, unique_id: str) -> None:
    client = MqttClient(unique_id)
    await client.close()  # never connected: nothing to do
    await client.connect(LOCAL, broker.port)
    await client.close()
    await client.close()
    assert client.closed == "closed"
    with pytest.raises(LinkClosedError):
        client.publish("bp/x/out/event", b"late")
    with pytest.raises(LinkClosedError):
        await client.subscribe([("bp/x/cmd", 1)])
    await client.connect(LOCAL, broker.port)
    assert client.closed is None and client.counters["connects"] == 2
    await client.connect(LOCAL, broker.port)  # connect while connected replaces the connection
    assert client.closed is None and client.counters["connects"] == 3
    await client.close()


async def test_broker_death_closes_the_client(private_broker: Mosquitto, unique_id: str) -> None:
    client = MqttClient(unique_id)
    await client.connect(LOCAL, private_broker.port)
    private_broker.kill()
    await until(client, lambda: client.closed is not None)
    assert client.closed in ("eof", "reset")
    await client.close()


# -- connect failures ------------------------------------------------------------


async def test_refused_port_raises_connect_error(unique_id: str) -> None:
    client = MqttClient(unique_id)
    with pytest.raises(ConnectError) as caught:
        await client.connect(LOCAL, free_port())
    assert caught.value.errno == errno.ECONNREFUSED
    assert client.counters["connect_failures"] == 1 and client.closed is not None


async def test_broker_refusal_raises_with_the_code(broker: Mosquitto) -> None:
    # An empty client id with a persistent session: MQTT 3.1.1 says return code 2.
    client = MqttClient("", clean_session=False)
    with pytest.raises(BrokerRefusedError) as caught:
        await client.connect(LOCAL, broker.port)
    assert caught.value.code == 2


@asynccontextmanager
async def fake_server(answer: bytes | None, close: bool = False) -> AsyncIterator[int]:
    """A TCP server that reads what comes, answers ``answer`` (None: nothing), and maybe hangs up."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        if close:
            writer.close()
            return
        try:
            await reader.read(1)
            if answer is not None:
                writer.write(answer)
            for _ in range(1000):
                if not await reader.read(4096):
                    break
        except ConnectionError:
            pass

    server = await asyncio.start_server(serve, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("answer", "close"),
    [
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", False),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False),
        (b"\x20\x02\x00", False),  # a CONNACK that never completes
        (None, False),  # accepts and says nothing
        (None, True),  # accepts and hangs up
    ],
    ids=["http", "ssh", "short-connack", "silent", "hangup"],
)
async def test_a_server_that_is_not_mqtt_is_not_our_broker(answer: bytes | None, close: bool, unique_id: str) -> None:
    async with fake_server(answer, close) as port:
        client = MqttClient(unique_id, connect_timeout_ms=1500)
        with pytest.raises(NotOurBrokerError):
            await client.connect(LOCAL, port)
        assert client.closed is not None and client.counters["connect_failures"] == 1


async def test_duplicate_incoming_qos1_is_delivered_once(unique_id: str) -> None:
    """A DUP re-send of a QoS 1 PUBLISH still remembered is acknowledged again, delivered once."""
    heard = bytearray()
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)  # CONNECT
        first = b"\x32\x0a\x00\x03a/b\x00\x05one"
        writer.write(b"\x20\x02\x00\x00" + first + bytes([first[0] | 0x08]) + first[1:])
        writer.write(b"\x32\x0a\x00\x03a/b\x00\x06two")
        for _ in range(1000):
            data = await reader.read(4096)
            if not data:
                break
            heard.extend(data)
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, LOCAL, 0)
    try:
        client = MqttClient(unique_id, queue_len=10)
        await client.connect(LOCAL, server.sockets[0].getsockname()[1])
        got: list[tuple[str, bytes]] = []
        await until(client, lambda: bool(got.extend(client.take_messages())) or len(got) >= 2)
        assert got == [("a/b", b"one"), ("a/b", b"two")]
        assert client.counters["duplicates_in"] == 1
        await client.close()
        await asyncio.wait_for(done.wait(), PATIENCE_MS / 1000)
        assert bytes(heard).count(b"\x40\x02\x00\x05") == 2 and b"\x40\x02\x00\x06" in heard
    finally:
        server.close()
        await server.wait_closed()


# -- TLS and mutual TLS (fixtures from tests/integration/tls.py) --------------------


async def test_mutual_tls_publish_and_receive(tls_broker: Mosquitto, pki: Pki, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    topic = f"bp/{DEVICE_A}/out/event"
    client = MqttClient(DEVICE_A + "-" + unique_id[:20], tls=pki.client_tls(DEVICE_A), queue_len=20)
    assert await client.connect(LOCAL, tls_broker.tls_port, server_hostname=BROKER_HOST) is False
    try:
        assert await client.subscribe([(topic, 1)]) == [1]
        pids = [client.publish(topic, b"tls-%d" % i) for i in range(10)]
        acked: list[int] = []
        got: list[tuple[str, bytes]] = []

        def done() -> bool:
            acked.extend(client.take_acks())
            got.extend(client.take_messages())
            return len(acked) == 10 and len(got) == 10

        await until(client, done)
        assert sorted(acked) == sorted(pids)
        assert [p for _, p in got] == [b"tls-%d" % i for i in range(10)]
    finally:
        await client.close()


async def test_tls_hostname_mismatch_is_a_tls_error(tls_broker: Mosquitto, pki: Pki, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = MqttClient(unique_id, tls=pki.client_tls(DEVICE_A))
    with pytest.raises(TlsError):
        await client.connect(LOCAL, tls_broker.tls_port, server_hostname="wrong.example")


async def test_rogue_broker_certificate_is_a_tls_error(rogue_tls_broker: Mosquitto, pki: Pki, unique_id: str) -> None:
    assert rogue_tls_broker.tls_port is not None
    client = MqttClient(unique_id, tls=pki.client_tls(DEVICE_A))
    with pytest.raises(TlsError):
        await client.connect(LOCAL, rogue_tls_broker.tls_port, server_hostname=BROKER_HOST)


async def test_rogue_device_certificate_is_refused(tls_broker: Mosquitto, pki: Pki, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = MqttClient(unique_id, tls=pki.rogue_client_tls(DEVICE_A), connect_timeout_ms=5000)
    with pytest.raises(TlsError):
        await client.connect(LOCAL, tls_broker.tls_port, server_hostname=BROKER_HOST)


async def test_silent_peer_during_the_tls_handshake_is_a_tls_error(pki: Pki, unique_id: str) -> None:
    async with fake_server(None) as port:
        client = MqttClient(unique_id, tls=pki.client_tls(DEVICE_A), connect_timeout_ms=1500)
        with pytest.raises(TlsError):
            await client.connect(LOCAL, port, server_hostname=BROKER_HOST)


async def test_plain_mqtt_to_a_tls_port_is_not_our_broker(tls_broker: Mosquitto, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = MqttClient(unique_id, connect_timeout_ms=3000)
    with pytest.raises(NotOurBrokerError):
        await client.connect(LOCAL, tls_broker.tls_port)


async def test_missing_tls_files_are_a_tls_error(broker: Mosquitto, unique_id: str, tmp_path: Any) -> None:
    client = MqttClient(unique_id, tls={"ca": str(tmp_path / "nope.pem"), "cert": None, "key": None})
    with pytest.raises(TlsError):
        await client.connect(LOCAL, broker.port)
