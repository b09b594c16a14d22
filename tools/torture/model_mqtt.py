"""Model-based MQTT session machine for the ``model-based`` harness: the portable client
(``device.link.mqtt.MqttClient``) against a scripted broker on loopback.

The broker is a plain asyncio server that answers CONNECT with the session-present flag the
machine chose, records every PUBLISH it receives (packet id, DUP, payload) and acknowledges
only when a rule says so. The model is what the client owes: every QoS 1 message it accepted
is, at any time, exactly one of in flight (unacknowledged), acknowledged (reported by
``take_acks`` once, never twice, and only after the broker's PUBACK) or dropped (reported by
``take_dropped`` after a reconnect whose broker kept no session). After a reconnect with the
session kept, the broker must receive every in-flight message again with DUP and the same
packet id, and nothing else.

Rules: connect (session kept or not), publish 1..n, publish on a full window (refused), broker
acks some, broker acks one twice (the second ignored), broker drops the connection (after
acking some, or not). Every wait is bounded (``WAIT_S``) and real time on loopback.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from device.link.mqtt import MqttClient
from device.linkerrors import LinkBusyError

WAIT_S = 3.0
TOPIC = "bp/model/evt"
SYNC_TOPIC = b"bp/model/sync"
WINDOW = 8


class ScriptedBroker:
    """One connection at a time; PUBLISHes recorded, acked on demand."""

    def __init__(self) -> None:
        self.server: Any = None
        self.port = 0
        self.session_present = False
        self.writer: Any = None
        self.received: list[tuple[int, bool, bytes]] = []  # this connection's PUBLISHes (pid, dup, payload)
        self.connects = 0
        self.arrived = asyncio.Event()
        self.client_acks: set[int] = set()  # PUBACKs from the client (for the barrier's PUBLISHes)
        self._marker = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.drop()
        self.server.close()
        await self.server.wait_closed()

    def drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    def puback(self, pid: int) -> None:
        self.send(bytes((0x40, 2, pid >> 8, pid & 0xFF)))

    async def barrier(self) -> None:
        """Send the client a QoS 1 PUBLISH and wait for its PUBACK (bounded). The client handles what
        the broker sent before it first, and queues the PUBACK behind what it was sending: after
        the barrier, both directions are settled (no waiting on a count that a bug never reaches)."""
        self._marker = self._marker % 65535 + 1
        pid = self._marker
        self.send(
            bytes((0x32, 2 + len(SYNC_TOPIC) + 2 + 1, 0, len(SYNC_TOPIC)))
            + SYNC_TOPIC
            + bytes((pid >> 8, pid & 0xFF))
            + b"s"
        )
        end = time.monotonic() + WAIT_S
        while pid not in self.client_acks:
            left = end - time.monotonic()
            if left <= 0 or self.writer is None:
                raise AssertionError("the client did not answer the broker's PUBLISH %d" % pid)
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass
        self.client_acks.discard(pid)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.drop()  # a new connection replaces the old one (as a broker takes over a client id)
        self.writer = writer
        self.received = []
        try:
            first, _body = await _read_packet(reader)
            if first >> 4 != 1:
                raise AssertionError("first packet type %d, not CONNECT" % (first >> 4))
            self.connects += 1
            writer.write(bytes((0x20, 2, 1 if self.session_present else 0, 0)))
            while True:
                first, body = await _read_packet(reader)
                kind = first >> 4
                if kind == 3:
                    self.received.append(_publish(first, body))
                elif kind == 4:
                    self.client_acks.add(body[0] << 8 | body[1])
                    self.arrived.set()
                elif kind == 12:
                    writer.write(b"\xd0\x00")
                elif kind == 14:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self.writer is writer:
                self.writer = None
            writer.close()
            self.arrived.set()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return first, await reader.readexactly(length)


def _publish(first: int, body: bytes) -> tuple[int, bool, bytes]:
    qos = (first >> 1) & 3
    at = 2 + (body[0] << 8 | body[1])
    pid = 0
    if qos:
        pid = body[at] << 8 | body[at + 1]
        at += 2
    return pid, bool(first & 8), bytes(body[at:])


class MqttSession(RuleBasedStateMachine):
    """The client's QoS 1 promises across connects, acks and drops (model in the module docstring)."""

    client_cls: Any = MqttClient
    resumed = 0  # reconnects that found a kept session with messages in flight (over all instances)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.broker = ScriptedBroker()
        self.run(self.broker.start())
        self.client = self.client_cls("model-session", keepalive_s=0, clean_session=False, window=WINDOW)
        self.connected = False
        self.counter = 0
        self.in_flight: dict[int, bytes] = {}  # pid -> payload, in publish order
        self.acked: set[bytes] = set()
        self.dropped: set[bytes] = set()
        self.published = 0
        self.broker_acked: set[int] = set()  # pids the broker acked on this connection

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, WAIT_S * 2))

    def teardown(self) -> None:
        try:
            self.run(self.client.close())
            self.run(self.broker.stop())
        finally:
            self.loop.close()

    # -- rules ---------------------------------------------------------------------

    @precondition(lambda self: not self.connected)
    @rule(session=st.booleans())
    def connect(self, session: bool) -> None:
        self.broker.session_present = session
        got = self.run(self.client.connect("127.0.0.1", self.broker.port))
        assert got is session, "session_present reported %r, broker said %r" % (got, session)
        self.connected = True
        self.broker_acked = set()
        pending = list(self.in_flight.items())
        self.run(self.broker.barrier())
        self.client.take_messages()  # the barrier's
        if session:  # everything unacknowledged comes again, DUP, same ids, nothing else
            if pending:
                type(self).resumed += 1
            again = sorted(self.broker.received)
            want = sorted((pid, True, payload) for pid, payload in pending)
            assert again == want, "re-sent after reconnect %r, expected %r" % (again, want)
        else:  # the session is gone: the client says which were lost
            dropped = self.client.take_dropped()
            assert dropped == [pid for pid, _ in pending], "dropped %r, expected %r" % (dropped, pending)
            for _, payload in pending:
                self.dropped.add(payload)
            self.in_flight = {}
        assert not self.client.take_acks(), "an ack reported without a PUBACK"

    @precondition(lambda self: self.connected and len(self.in_flight) < WINDOW)
    @rule(n=st.integers(1, WINDOW))
    def publish(self, n: int) -> None:
        n = min(n, WINDOW - len(self.in_flight))
        base = len(self.broker.received)
        for _ in range(n):
            self.counter += 1
            payload = b"m%d" % self.counter
            pid = self.client.publish(TOPIC, payload, 1)
            assert 0 < pid < 65536 and pid not in self.in_flight, "packet id %d reused while in flight" % pid
            self.in_flight[pid] = payload
            self.published += 1
        self.run(self.broker.barrier())
        fresh = self.broker.received[base:]
        want = [(pid, False, payload) for pid, payload in list(self.in_flight.items())[-n:]]
        assert fresh == want, "broker received %r, expected %r" % (fresh, want)

    @precondition(lambda self: self.connected and len(self.in_flight) >= WINDOW)
    @rule()
    def publish_on_a_full_window(self) -> None:
        try:
            self.client.publish(TOPIC, b"over", 1)
        except LinkBusyError:
            return
        raise AssertionError("publish beyond the window was accepted")

    def _ackable(self) -> list[int]:
        return [pid for pid in self.in_flight if pid not in self.broker_acked]

    @precondition(lambda self: self.connected and any(p not in self.broker_acked for p in self.in_flight))
    @rule(data=st.data(), twice=st.booleans())
    def broker_acks(self, data: st.DataObject, twice: bool) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self._ackable()), min_size=1, unique=True), label="acked")
        for pid in chosen:
            self.broker.puback(pid)
            if twice:  # a broker may acknowledge a DUP re-send again: the second must be ignored
                self.broker.puback(pid)
            self.broker_acked.add(pid)
        self._collect(chosen)

    @precondition(lambda self: self.connected and bool(self.acked))
    @rule(pid=st.integers(1, 70000))
    def broker_acks_an_unknown_id(self, pid: int) -> None:
        if pid > 65535 or pid in self.in_flight:
            return
        self.broker.puback(pid)  # nothing of ours has this id: ignored
        anchor = self._ackable()
        if anchor:  # a real ack behind it proves the client read past the stray one
            self.broker.puback(anchor[0])
            self.broker_acked.add(anchor[0])
            self._collect([anchor[0]])

    @precondition(lambda self: self.connected)
    @rule(ack_first=st.booleans())
    def broker_drops_the_connection(self, ack_first: bool) -> None:
        if ack_first and self._ackable():
            pid = self._ackable()[0]
            self.broker.puback(pid)  # sent before the FIN: the client must still count it
            self.broker_acked.add(pid)
            self._collect([pid])
        self.broker.drop()
        end = time.monotonic() + WAIT_S
        while self.client.closed is None:
            assert time.monotonic() < end, "client did not notice the dropped connection"
            self.run(self.client.wait(200))
        self.connected = False
        assert not self.client.take_acks(), "an ack reported after the connection dropped"

    def _collect(self, pids: list[int]) -> None:
        """After a barrier the client reported exactly these acks (each once)."""
        self.run(self.broker.barrier())
        self.client.take_messages()
        got = sorted(self.client.take_acks())
        assert got == sorted(pids), "acks reported %r, broker acked %r" % (got, sorted(pids))
        for pid in pids:
            self.acked.add(self.in_flight.pop(pid))

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def every_message_is_in_exactly_one_place(self) -> None:
        assert self.client.in_flight() == len(self.in_flight)
        live = set(self.in_flight.values())
        assert not (live & self.acked) and not (live & self.dropped) and not (self.acked & self.dropped)
        assert len(live) + len(self.acked) + len(self.dropped) == self.published


MACHINES = {"mqtt-session": MqttSession}
