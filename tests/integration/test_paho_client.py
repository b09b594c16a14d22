"""PahoClient against a real mosquitto (plain and mutual TLS) and against peers that are not our broker.

Every wait is bounded by a generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

import asyncio
import errno
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from cloud_shim.broker import Mosquitto, free_port
from device.link.client import ClientBase
from device.link.paho_client import PahoClient
from device.linkerrors import (
    BrokerRefusedError,
    ConnectError,
    LinkBusyError,
    LinkClosedError,
    NotOurBrokerError,
    TlsError,
)
from tests.integration.tls import BROKER_HOST, DEVICE_A, DEVICE_B, Pki
from tests.integration.waiting import until as wait_until

LOCAL = "127.0.0.1"
PATIENCE_MS = 10_000


async def until(client: ClientBase, done: Callable[[], bool], timeout_ms: int = PATIENCE_MS) -> None:
    await wait_until(client, done, timeout_ms)


@asynccontextmanager
async def connected(port: int, client_id: str, **options: object) -> AsyncIterator[PahoClient]:
    client = PahoClient(client_id, **options)
    await client.connect(LOCAL, port)
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def fake_peer(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server on a free loopback port that runs ``on_connect`` per client; yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await on_connect(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    server = await asyncio.start_server(handle, LOCAL, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def read_connect(reader: asyncio.StreamReader) -> bytes:
    """Read one MQTT CONNECT (small: one-byte remaining length) and return it."""
    head = await reader.readexactly(2)
    return head + await reader.readexactly(head[1])


async def hold(reader: asyncio.StreamReader) -> None:
    """Keep the connection open, reading and ignoring everything, until the client goes."""
    for _ in range(100_000):
        if not await reader.read(4096):
            return


# -- plain TCP ------------------------------------------------------------------


async def test_qos0_and_qos1_reach_a_subscriber_and_qos1_is_acked(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/out/event"
    async with connected(broker.port, unique_id + "-sub") as sub, connected(broker.port, unique_id) as pub:
        assert await sub.subscribe([(topic, 1)]) == [1]
        qos1 = [pub.publish(topic, b"one-%d" % i, qos=1) for i in range(10)]
        qos0 = [pub.publish(topic, b"zero-%d" % i, qos=0) for i in range(5)]
        assert all(mid > 0 for mid in qos1) and len(set(qos1)) == 10
        assert qos0 == [0] * 5
        acked: list[int] = []
        await until(pub, lambda: bool(acked.extend(pub.take_acks())) or len(acked) == 10)
        assert sorted(acked) == sorted(qos1)
        assert pub.in_flight() == 0
        got: list[tuple[str, bytes]] = []
        await until(sub, lambda: bool(got.extend(sub.take_messages())) or len(got) == 15)
        sent = [b"one-%d" % i for i in range(10)] + [b"zero-%d" % i for i in range(5)]
        assert sorted(p for _, p in got) == sorted(sent)
        assert {t for t, _ in got} == {topic}
        stats = pub.stats()
        assert stats["published"] == 15 and stats["acked"] == 10 and stats["closed"] is None
        assert stats["bytes_out"] > 0 and stats["bytes_in"] > 0


async def test_window_full_raises_busy_until_pubacks_arrive(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/out/telemetry"
    async with connected(broker.port, unique_id, window=3) as client:
        mids = [client.publish(topic, b"x") for _ in range(3)]
        # PUBACKs are only read when the event loop runs: the window is full right now.
        assert client.in_flight() == 3
        with pytest.raises(LinkBusyError):
            client.publish(topic, b"one too many")
        assert client.publish(topic, b"qos0 is not windowed", qos=0) == 0
        acked: list[int] = []
        await until(client, lambda: bool(acked.extend(client.take_acks())) or len(acked) == 3)
        assert sorted(acked) == sorted(mids)
        assert client.publish(topic, b"room again") > 0


async def test_pubacks_among_incoming_publishes_are_each_settled_once(broker: Mosquitto, unique_id: str) -> None:
    # Subscribed to its own topic: PUBACKs and QoS 1 PUBLISHes interleave on one socket. PUBACKs in
    # front of the read bytes are settled by PahoClient, the rest by paho; each exactly once.
    topic = f"bp/{unique_id}/cmd"
    n = 500
    async with connected(broker.port, unique_id, window=20, queue_len=n) as client:
        session = client._paho
        by_paho = 0
        paho_handler = session._handle_pubackcomp

        def counted(cmd: str) -> object:
            nonlocal by_paho
            by_paho += 1
            return paho_handler(cmd)

        session._handle_pubackcomp = counted  # type: ignore[method-assign]
        assert await client.subscribe([(topic, 1)]) == [1]
        mids: list[int] = []
        acked: list[int] = []
        got: list[bytes] = []
        for _ in range(100_000):  # bounded; ends when everything is sent, acked and back
            acked.extend(client.take_acks())
            got.extend(p for _, p in client.take_messages())
            while len(mids) < n and client.in_flight() < client.window:
                mids.append(client.publish(topic, b"m%d" % len(mids)))
            if len(acked) == n and len(got) == n:
                break
            await client.wait(1000)
        assert sorted(acked) == sorted(mids) and len(set(acked)) == n  # (ids wrap only past 65535)
        assert got == [b"m%d" % i for i in range(n)]
        assert client.in_flight() == 0 and client.counters["acked"] == n
        assert session._out_messages == {} and session._inflight_messages == 0  # paho's books agree
        assert by_paho < n  # most were taken in front of the bytes read


async def test_messages_beyond_queue_len_are_dropped_and_counted(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/cmd"
    async with connected(broker.port, unique_id + "-sub", queue_len=4) as sub, connected(broker.port, unique_id) as pub:
        assert await sub.subscribe([(topic, 1), (topic + "/other", 0)]) == [1, 0]
        for i in range(10):
            pub.publish(topic, b"%d" % i)
        await until(sub, lambda: sub.counters["messages"] == 10)
        assert [p for _, p in sub.take_messages()] == [b"0", b"1", b"2", b"3"]
        assert sub.counters["messages_dropped"] == 6


async def test_session_kept_by_the_broker_resends_unacked_publishes(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/out/event"
    async with connected(broker.port, unique_id + "-sub") as sub:
        await sub.subscribe([(topic, 1)])
        client = PahoClient(unique_id, clean_session=False)
        assert await client.connect(LOCAL, broker.port) is False  # a fresh session
        mids = [client.publish(topic, b"r%d" % i) for i in range(5)]
        await client.close()  # PUBACKs never read: all five are still in flight
        assert client.closed == "closed" and client.in_flight() == 5
        with pytest.raises(LinkClosedError):
            client.publish(topic, b"while closed")

        assert await client.connect(LOCAL, broker.port) is True
        acked: list[int] = []
        await until(client, lambda: bool(acked.extend(client.take_acks())) or len(acked) == 5)
        assert sorted(acked) == sorted(mids)
        assert client.take_dropped() == []
        assert client.counters["resent"] == 5 and client.counters["connects"] == 2
        got: set[bytes] = set()
        await until(sub, lambda: bool(got.update(p for _, p in sub.take_messages())) or len(got) == 5)
        assert got == {b"r%d" % i for i in range(5)}  # at least once (a resend may deliver twice)
        await client.close()


async def test_subscriptions_and_queued_messages_survive_a_reconnect(broker: Mosquitto, unique_id: str) -> None:
    topic = f"bp/{unique_id}/shadow/desired"
    device = PahoClient(unique_id, clean_session=False)
    await device.connect(LOCAL, broker.port)
    await device.subscribe([(topic, 1)])
    await device.close()
    async with connected(broker.port, unique_id + "-cloud") as cloud:
        cloud.publish(topic, b"while you were away")
        await until(cloud, lambda: cloud.counters["acked"] == 1)
    assert await device.connect(LOCAL, broker.port) is True  # no subscribe: the broker kept it
    got: list[tuple[str, bytes]] = []
    await until(device, lambda: bool(got.extend(device.take_messages())) or bool(got))
    assert got == [(topic, b"while you were away")]
    # connect() on a live client replaces the connection; the session carries on
    assert await device.connect(LOCAL, broker.port) is True
    assert device.closed is None and device.counters["connects"] == 3
    await device.close()


async def test_session_lost_with_the_broker_reports_unacked_as_dropped(
    private_broker: Mosquitto, unique_id: str
) -> None:
    client = PahoClient(unique_id, clean_session=False)
    await client.connect(LOCAL, private_broker.port)
    mids = [client.publish(f"bp/{unique_id}/out/event", b"d%d" % i) for i in range(4)]
    await client.close()
    private_broker.kill()  # persistence is off: the session dies with the process
    private_broker.start()
    assert await client.connect(LOCAL, private_broker.port) is False
    assert client.take_dropped() == mids  # oldest first
    assert client.take_acks() == [] and client.in_flight() == 0
    assert client.counters["dropped_unacked"] == 4
    await client.close()


async def test_broker_death_closes_the_client_with_a_reason(private_broker: Mosquitto, unique_id: str) -> None:
    client = PahoClient(unique_id)
    await client.connect(LOCAL, private_broker.port)
    private_broker.kill()
    await until(client, lambda: client.closed is not None)
    assert client.closed in ("eof", "reset")
    with pytest.raises(LinkClosedError):
        client.publish("bp/x/out/event", b"gone")
    await client.close()
    await client.close()  # idempotent
    assert client.closed in ("eof", "reset")


async def test_refused_port_raises_connect_error(unique_id: str) -> None:
    client = PahoClient(unique_id)
    with pytest.raises(ConnectError) as caught:
        await client.connect(LOCAL, free_port())
    assert caught.value.errno == errno.ECONNREFUSED
    assert client.counters["connect_failures"] == 1 and client.closed is not None
    with pytest.raises(ConnectError):
        await client.connect("broker.example.test", 1883)  # a name, not an address


async def test_silent_tcp_server_is_not_our_broker(unique_id: str) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await hold(reader)

    async with fake_peer(silent) as port:
        client = PahoClient(unique_id, connect_timeout_ms=300)
        with pytest.raises(NotOurBrokerError, match="no CONNACK"):
            await asyncio.wait_for(client.connect(LOCAL, port), 10)
        await client.close()


async def test_garbage_answer_is_not_our_broker_without_waiting_for_the_timeout(unique_id: str) -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        await hold(reader)

    async with fake_peer(http) as port:
        client = PahoClient(unique_id, connect_timeout_ms=60_000)
        with pytest.raises(NotOurBrokerError, match="not a CONNACK"):
            await asyncio.wait_for(client.connect(LOCAL, port), 30)
        await client.close()


@pytest.mark.parametrize("code", [1, 2, 5])
async def test_connack_refusal_raises_broker_refused_with_its_code(unique_id: str, code: int) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_connect(reader)
        writer.write(bytes([0x20, 2, 0, code]))
        await writer.drain()
        await hold(reader)

    async with fake_peer(refuse) as port:
        client = PahoClient(unique_id)
        with pytest.raises(BrokerRefusedError) as caught:
            await asyncio.wait_for(client.connect(LOCAL, port), 30)
        assert caught.value.code == code
        await client.close()


async def test_keepalive_detects_a_broker_that_stops_answering(unique_id: str) -> None:
    async def half_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_connect(reader)
        writer.write(bytes([0x20, 2, 0, 0]))
        await writer.drain()
        await hold(reader)  # PINGREQs go unanswered

    async with fake_peer(half_open) as port:
        client = PahoClient(unique_id, keepalive_s=1)
        await client.connect(LOCAL, port)
        await until(client, lambda: client.closed is not None, timeout_ms=30_000)
        assert client.closed == "keepalive"
        assert client.counters["pings"] >= 1 and client.counters["ping_timeouts"] == 1
        await client.close()


async def test_no_thread_is_started(broker: Mosquitto, unique_id: str) -> None:
    before = threading.active_count()
    async with connected(broker.port, unique_id, keepalive_s=1) as client:
        await client.subscribe([(f"bp/{unique_id}/cmd", 1)])
        client.publish(f"bp/{unique_id}/out/event", b"x")
        await until(client, lambda: client.counters["acked"] == 1)
        await asyncio.sleep(1.5)  # long enough for the keepalive timer to run
        assert threading.active_count() == before
    assert threading.active_count() == before


# -- mutual TLS -------------------------------------------------------------------


@pytest.mark.parametrize("hostname", [BROKER_HOST, "localhost"])
async def test_mtls_dialling_an_ip_verifies_the_broker_name(
    pki: Pki, tls_broker: Mosquitto, unique_id: str, hostname: str
) -> None:
    assert tls_broker.tls_port is not None
    before = threading.active_count()
    client = PahoClient(unique_id, tls=pki.client_tls(DEVICE_A))
    assert await client.connect(LOCAL, tls_broker.tls_port, hostname) is False
    mid = client.publish(f"bp/{DEVICE_A}/out/event", b"over tls")
    await until(client, lambda: client.take_acks() == [mid])
    await client.close()
    assert threading.active_count() == before


async def test_mtls_second_device_connects_too(pki: Pki, tls_broker: Mosquitto, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = PahoClient(unique_id, tls=pki.client_tls(DEVICE_B))
    await client.connect(LOCAL, tls_broker.tls_port, BROKER_HOST)
    assert client.closed is None
    await client.close()


async def test_broker_certificate_from_another_ca_fails_tls(
    pki: Pki, rogue_tls_broker: Mosquitto, unique_id: str
) -> None:
    assert rogue_tls_broker.tls_port is not None
    client = PahoClient(unique_id, tls=pki.client_tls(DEVICE_A))
    with pytest.raises(TlsError, match="did not verify"):
        await client.connect(LOCAL, rogue_tls_broker.tls_port, BROKER_HOST)


async def test_wrong_broker_name_fails_tls(pki: Pki, tls_broker: Mosquitto, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = PahoClient(unique_id, tls=pki.client_tls(DEVICE_A))
    with pytest.raises(TlsError, match=r"other\.example\.test"):
        await client.connect(LOCAL, tls_broker.tls_port, "other.example.test")


async def test_broker_rejects_a_device_without_a_certificate(pki: Pki, tls_broker: Mosquitto, unique_id: str) -> None:
    assert tls_broker.tls_port is not None
    client = PahoClient(unique_id, tls={"ca": str(pki.ours.ca), "cert": None, "key": None})
    with pytest.raises(TlsError, match="client certificate"):
        await asyncio.wait_for(client.connect(LOCAL, tls_broker.tls_port, BROKER_HOST), 30)
    assert client.closed is not None and client.counters["connect_failures"] == 1
    await client.close()


async def test_broker_rejects_a_device_certificate_from_another_ca(
    pki: Pki, tls_broker: Mosquitto, unique_id: str
) -> None:
    assert tls_broker.tls_port is not None
    client = PahoClient(unique_id, tls=pki.rogue_client_tls(DEVICE_A))
    with pytest.raises(TlsError, match="client certificate"):  # an alert, or EOF when a RST overtook it
        await asyncio.wait_for(client.connect(LOCAL, tls_broker.tls_port, BROKER_HOST), 30)
    await client.close()


async def test_tls_to_a_plain_listener_fails_tls(pki: Pki, tls_broker: Mosquitto, unique_id: str) -> None:
    client = PahoClient(unique_id, tls=pki.client_tls(DEVICE_A), connect_timeout_ms=5000)
    with pytest.raises((TlsError, NotOurBrokerError)):
        await client.connect(LOCAL, tls_broker.port, BROKER_HOST)


async def test_missing_tls_files_raise_tls_error(tmp_path: object, unique_id: str, broker: Mosquitto) -> None:
    client = PahoClient(unique_id, tls={"ca": "/nonexistent/ca.pem", "cert": None, "key": None})
    with pytest.raises(TlsError, match="cannot load"):
        await client.connect(LOCAL, broker.port, BROKER_HOST)
