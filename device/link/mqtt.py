"""The portable asyncio MQTT 3.1.1 client (MicroPython and CPython); interface in ``client.py``.

One object is one session towards one broker. Three tasks run while it is
connected: the reader (packets in), the flusher (the preallocated send buffer
out) and the keepalive (PINGREQ after ``keepalive_s`` of silence either way;
no answer within half of that, at least 1 s, closes with reason
``"keepalive"``: a half-open TCP connection looks exactly like that).

``publish`` never awaits: it encodes into the send buffer and wakes the
flusher, so a burst of publishes leaves in one write. QoS 1 publishes stay in
``_inflight`` (packet id -> order, topic, payload, retain) until their PUBACK;
after a reconnect they are re-sent with DUP when the broker kept the session,
otherwise reported through ``take_dropped``.

Whatever the peer sends, the client never raises out of its tasks: a
malformed or unexpected packet closes the connection with reason
``"protocol"`` and counts it.
"""

import asyncio

from device.compat import IS_MICROPYTHON, monotonic_ms, sleep_ms, wait_for_ms
from device.core import mqtt_codec as codec
from device.link.client import ClientBase
from device.link.stream import handshake_error, open_stream, ssl_context
from device.linkerrors import (
    BrokerRefusedError,
    ConnectError,
    LinkBusyError,
    LinkClosedError,
    LinkError,
    NotOurBrokerError,
    ProtocolError,
    TlsError,
)

_RECENT_IN = 32  # incoming QoS 1 ids remembered to deliver a DUP re-send once
_TOPIC_CACHE = 8  # encoded topic names kept (the sync engine uses a handful)


class MqttClient(ClientBase):
    """Options as ``ClientBase``, plus ``buffer_size`` (the preallocated send buffer) and
    ``max_packet`` (the longest packet accepted; longer ones close the connection)."""

    def __init__(self, client_id, *, buffer_size=2048, max_packet=8192, **options):
        super().__init__(client_id, **options)
        self.counters["duplicates_in"] = 0
        self._tx = bytearray(buffer_size)
        self._tx_mv = memoryview(self._tx)
        self._tx_len = 0
        self._tx_ready = asyncio.Event()
        self._decoder = codec.Decoder(max_packet)
        self._inflight = {}
        self._order = 0
        self._next_id = 0
        self._requests = {}  # SUBSCRIBE/UNSUBSCRIBE packet id -> [Event, answer]
        self._recent_in = []
        self._topics = {}
        # None between connections; typed as streams so the checks read the use sites.
        self._reader: asyncio.StreamReader = None  # type: ignore[assignment]
        self._writer: asyncio.StreamWriter = None  # type: ignore[assignment]
        self._tasks: list = []
        self._ssl = None
        self._last_tx_ms = 0
        self._last_rx_ms = 0
        self._ping_sent_ms = -1

    # ------------------------------------------------------------ connect

    async def connect(self, ip, port, server_hostname=None):
        if self.closed is None:
            self._lost("reconnect")
        await self._reap()
        self._decoder.reset()
        self._tx_len = 0
        self._ping_sent_ms = -1
        stage = ["tcp"]
        try:
            session_present = await wait_for_ms(self._open(ip, port, server_hostname, stage), self.connect_timeout_ms)
        except asyncio.TimeoutError:
            self._abort()
            if stage[0] == "tcp":
                raise ConnectError("connect to %s:%d timed out" % (ip, port), 0, "connect_timeout") from None
            if stage[0] == "tls":
                raise TlsError("TLS handshake with %s:%d timed out" % (ip, port)) from None
            raise NotOurBrokerError("no CONNACK from %s:%d in %d ms" % (ip, port, self.connect_timeout_ms)) from None
        except (LinkError, ValueError, asyncio.CancelledError):
            self._abort()
            raise
        self._note_open(session_present)
        now = monotonic_ms()
        self._last_tx_ms = now
        self._last_rx_ms = now
        self._resume(session_present)
        self._tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._flush_loop())]
        if self.keepalive_s:
            self._tasks.append(asyncio.create_task(self._keepalive_loop()))
        return session_present

    async def _open(self, ip, port, server_hostname, stage):
        if self.tls and self._ssl is None:
            self._ssl = ssl_context(self.tls)
        ctx = self._ssl if self.tls else None
        self._reader, self._writer = await open_stream(ip, port, ctx, server_hostname or ip, stage)
        try:
            return await self._handshake_mqtt()
        except (OSError, ValueError) as exc:
            error = handshake_error(exc, ip, port, self.tls)
            if error is None:
                raise
            raise error from None

    async def _handshake_mqtt(self):
        packet = codec.encode_connect(
            self.client_id, self.keepalive_s, self.clean_session, self.will, self.username, self.password
        )
        self._writer.write(packet)
        self.counters["bytes_out"] += len(packet)
        await self._writer.drain()
        while True:
            try:
                answer = self._decoder.next()
            except ProtocolError as exc:
                raise NotOurBrokerError("not an MQTT broker: %s" % exc) from None
            if answer is not None:
                break
            if await self._read_some() == 0:
                if self.tls:
                    raise TlsError("connection closed before CONNACK (client certificate refused?)")
                raise NotOurBrokerError("connection closed before CONNACK")
        if answer[0] != codec.CONNACK:
            raise NotOurBrokerError("first packet was type %d, not CONNACK" % answer[0])
        if answer[2]:
            raise BrokerRefusedError("broker refused the connection: return code %d" % answer[2], answer[2])
        return answer[1]

    def _resume(self, session_present):
        """Re-send unacknowledged QoS 1 with DUP (session kept) or report them dropped."""
        if not session_present:
            self._recent_in = []  # a new session: ids seen in the old one mean nothing
        if not self._inflight:
            return
        pending = sorted(self._inflight.items(), key=lambda item: item[1][0])
        if not session_present:
            self._inflight = {}
            self._note_dropped([pid for pid, _ in pending])
            return
        for pid, (_, topic, payload, retain) in pending:
            self._queue_publish(topic, payload, 1, retain, True, pid)
            self.counters["resent"] += 1

    # ------------------------------------------------------------ the interface

    def publish(self, topic, payload, qos=1, retain=False):
        self._check_open()
        if qos == 1:
            if len(self._inflight) >= self.window:
                raise LinkBusyError("in-flight window full (%d)" % self.window, "window")
        elif qos != 0:
            raise ValueError("qos must be 0 or 1")
        if self._unsent() > len(self._tx):
            raise LinkBusyError("send buffer full", "send_buffer")
        name = self._topics.get(topic)
        if name is None:
            name = topic.encode() if isinstance(topic, str) else bytes(topic)
            codec.check_topic_name(name)
            if len(self._topics) >= _TOPIC_CACHE:
                self._topics = {}
            self._topics[topic] = name
        if isinstance(payload, str):
            payload = payload.encode()
        packet_id = self._new_id() if qos else 0
        self._queue_publish(name, payload, qos, retain, False, packet_id)
        if qos:
            self._order += 1
            self._inflight[packet_id] = (self._order, name, payload, retain)
        self.counters["published"] += 1
        return packet_id

    def in_flight(self):
        return len(self._inflight)

    async def subscribe(self, filters):
        """Subscribe and wait for the SUBACK; returns the granted QoS list (0x80: refused)."""
        return await self._request(codec.encode_subscribe, filters)

    async def unsubscribe(self, topic_filters):
        await self._request(codec.encode_unsubscribe, topic_filters)

    async def close(self):
        if self.closed is None and self._writer is not None:
            self._note_closed("closed")  # before the broker's EOF can name another reason
            try:
                self._flush_now()
                self._write(codec.DISCONNECT_PACKET)
                await wait_for_ms(self._writer.drain(), 1000)
            except (OSError, LinkError, asyncio.TimeoutError):
                pass  # going away anyway
        self._lost("closed")
        await self._reap()

    # ------------------------------------------------------------ sending

    def _new_id(self):
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            pid = self._next_id
            if pid not in self._inflight and pid not in self._requests:
                return pid
        raise LinkBusyError("no free packet id", "window")

    def _unsent(self):
        """Bytes accepted but not yet handed to the kernel."""
        writer = self._writer
        if IS_MICROPYTHON:
            held = len(writer.out_buf)  # type: ignore[attr-defined]
        else:
            held = writer.transport.get_write_buffer_size()
        return held + self._tx_len

    def _queue_publish(self, topic, payload, qos, retain, dup, packet_id):
        size = codec.publish_size(len(topic), len(payload), qos)
        if size > len(self._tx) - self._tx_len:
            self._flush_now()
            if size > len(self._tx):
                packet = bytearray(size)  # bigger than the whole buffer: the one allocating path
                codec.encode_publish(packet, 0, topic, payload, qos, retain, dup, packet_id)
                self._write(packet)
                return
        self._tx_len += codec.encode_publish(self._tx, self._tx_len, topic, payload, qos, retain, dup, packet_id)
        self._kick()

    def _queue_bytes(self, packet):
        n = len(packet)
        if n > len(self._tx) - self._tx_len:
            self._flush_now()
            if n > len(self._tx):
                self._write(packet)
                return
        self._tx[self._tx_len : self._tx_len + n] = packet
        self._tx_len += n
        self._kick()

    def _kick(self):
        self._last_tx_ms = monotonic_ms()
        self._tx_ready.set()

    def _flush_now(self):
        """Hand the send buffer to the stream (which sends or copies it at once): the buffer is free again."""
        n = self._tx_len
        if not n:
            return
        self._tx_len = 0
        # CPython transports may keep a reference to what they are given: give them a copy.
        self._write(self._tx_mv[:n] if IS_MICROPYTHON else bytes(self._tx_mv[:n]))

    def _write(self, data):
        try:
            self._writer.write(data)
        except OSError:
            self._lost("reset")
            raise LinkClosedError("connection lost while sending", "reset") from None
        self.counters["bytes_out"] += len(data)

    async def _flush_loop(self):
        try:
            while self.closed is None:
                await self._tx_ready.wait()
                self._tx_ready.clear()
                self._flush_now()
                await self._writer.drain()
        except OSError:
            self._lost("reset")
        except LinkClosedError:
            pass

    async def _request(self, encode, argument):
        self._check_open()
        packet_id = self._new_id()
        packet = encode(packet_id, argument)
        waiter: list = [asyncio.Event(), None]
        self._requests[packet_id] = waiter
        self._queue_bytes(packet)
        try:
            await wait_for_ms(waiter[0].wait(), self.connect_timeout_ms)
        except asyncio.TimeoutError:
            self._lost("timeout")
            raise LinkClosedError("no answer to packet %d in %d ms" % (packet_id, self.connect_timeout_ms)) from None
        finally:
            self._requests.pop(packet_id, None)
        if waiter[1] is None:
            raise LinkClosedError("connection closed: %s" % self.closed, "closed")
        return waiter[1]

    # ------------------------------------------------------------ receiving

    async def _read_some(self):
        """Read into the decoder; the byte count, 0 at EOF, -1 when TLS had no data for us yet."""
        room = self._decoder.room()
        if IS_MICROPYTHON:
            n = await self._reader.readinto(room)
            if n is None:
                return -1
        else:
            data = await self._reader.read(len(room))
            n = len(data)
            room[0:n] = data
        if n:
            self._decoder.commit(n)
            self.counters["bytes_in"] += n
            self._last_rx_ms = monotonic_ms()
        return n

    async def _read_loop(self):
        reason = "eof"
        try:
            while True:
                packet = self._decoder.next()
                while packet is not None:
                    self._handle(packet)
                    packet = self._decoder.next()
                if await self._read_some() == 0:
                    break
        except ProtocolError:
            self.counters["protocol_errors"] += 1
            reason = "protocol"
        except OSError:
            reason = "reset"
        except LinkClosedError:
            reason = "reset"
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug of ours must not kill the device: close and count it
            self.counters["protocol_errors"] += 1
            reason = "internal"
        self._lost(reason)

    def _handle(self, packet):
        kind = packet[0]
        if kind == codec.PUBACK:
            # An unknown id is ignored: a DUP re-send may be acknowledged twice.
            if self._inflight.pop(packet[1], None) is not None:
                self._note_ack(packet[1])
        elif kind == codec.PUBLISH:
            self._received(packet)
        elif kind == codec.PINGRESP:
            self._ping_sent_ms = -1
        elif kind in (codec.SUBACK, codec.UNSUBACK):
            waiter = self._requests.get(packet[1])
            if waiter is not None:
                waiter[1] = packet[2] if kind == codec.SUBACK else []
                waiter[0].set()
        else:
            raise ProtocolError("CONNACK on an open connection")

    def _received(self, packet):
        _, topic, payload, qos, packet_id, dup, _ = packet
        if qos:
            self._queue_puback(packet_id)
            recent = self._recent_in
            if dup and packet_id in recent:
                self.counters["duplicates_in"] += 1
                return
            if packet_id in recent:
                recent.remove(packet_id)
            elif len(recent) >= _RECENT_IN:
                recent.pop(0)
            recent.append(packet_id)
        self._note_message(topic, payload)

    def _queue_puback(self, packet_id):
        if len(self._tx) - self._tx_len < 4:
            self._flush_now()
        self._tx_len += codec.encode_puback(self._tx, self._tx_len, packet_id)
        self._kick()

    async def _keepalive_loop(self):
        keepalive_ms = self.keepalive_s * 1000
        answer_ms = max(keepalive_ms // 2, 1000)
        tick_ms = max(50, min(keepalive_ms // 4, 1000))
        try:
            while self.closed is None:
                await sleep_ms(tick_ms)
                now = monotonic_ms()
                if self._ping_sent_ms >= 0:
                    if now - self._ping_sent_ms < answer_ms:
                        continue
                    if self._last_rx_ms > self._ping_sent_ms:
                        self._ping_sent_ms = -1  # no PINGRESP yet, but the broker is talking
                        continue
                    self.counters["ping_timeouts"] += 1
                    self._lost("keepalive")
                    return
                if now - self._last_tx_ms >= keepalive_ms or now - self._last_rx_ms >= keepalive_ms:
                    self._queue_bytes(codec.PINGREQ_PACKET)
                    self._ping_sent_ms = now
                    self.counters["pings"] += 1
        except LinkClosedError:
            pass

    # ------------------------------------------------------------ closing

    def _lost(self, reason):
        """The connection is over: note why, stop the other tasks, close the socket. Idempotent."""
        self._note_closed(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
        requests = self._requests
        self._requests = {}
        for waiter in requests.values():
            waiter[0].set()

    def _abort(self):
        """A connect attempt failed: close whatever it opened."""
        self.counters["connect_failures"] += 1
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                pass
        self._writer = None  # type: ignore[assignment]
        self._reader = None  # type: ignore[assignment]

    async def _reap(self):
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        self._tasks = []
        if tasks:
            # return_exceptions: their cancellation is collected, ours would still propagate.
            await asyncio.gather(*tasks, return_exceptions=True)
        writer = self._writer
        self._writer = None  # type: ignore[assignment]
        self._reader = None  # type: ignore[assignment]
        if writer is not None:
            try:
                await wait_for_ms(writer.wait_closed(), 1000)
            except (OSError, asyncio.TimeoutError):
                pass
