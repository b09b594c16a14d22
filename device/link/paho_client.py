"""CPython only: paho-mqtt (>= 2, MQTT 3.1.1) driven from asyncio socket readiness.

No paho thread (no ``loop_start``): the event loop calls ``loop_read`` when the
socket is readable, ``loop_write`` when paho has bytes queued and the socket is
writable, and a timer task calls ``loop_misc`` (keepalive, PINGREQ timeout).

Connecting never blocks the event loop: ``device.link.paho_socket`` dials TCP
and TLS on the loop (``server_hostname`` = the broker's name for SNI and
verification, whatever IP we dialled), then the ready socket is handed to paho:
``_Session._create_socket`` overrides the method paho calls from ``reconnect()``
(private in paho 2.x; checked at import). paho only sends CONNECT and parses.

PUBACKs that arrive between packets are taken by us (``WatchedSocket.take_pubacks``)
and settled in paho's books as its own PUBACK handler would (the message out of
``_out_messages``, one fewer in flight, the read counted for keepalive), without
its per-packet reads and reason-code objects: a drain reads one per record. Only
while the socket is open after CONNACK, and only when paho has these attributes
(checked when the client is made; otherwise paho reads every packet).

paho's queued QoS 1 messages: on every reconnect paho re-sends all
unacknowledged QoS 1 PUBLISHes (DUP set, same packet id), session or not. The
contract wants that only when the broker kept the session, so ``on_connect``
with ``session_present`` false takes them out of paho (``drop_out_messages``)
before it re-sends and reports their packet ids through ``take_dropped()``.

Connect failures (all within ``connect_timeout_ms`` for TCP + TLS + CONNACK):
refused/unreachable/TCP timeout -> ConnectError(errno, 0 for the timeout);
handshake or verification failure -> TlsError; silence, garbage or EOF before
CONNACK on plain TCP -> NotOurBrokerError; CONNACK code != 0 ->
BrokerRefusedError(code); the broker ending a verified TLS session before CONNACK
(mTLS rejection: with TLS 1.3 it arrives after our handshake, as an alert on the
first read) -> TlsError naming the alert.
"""

import asyncio
import socket
import time

from device.compat import IS_MICROPYTHON, monotonic_ms, wait_for_ms
from device.link.client import ClientBase
from device.linkerrors import BrokerRefusedError, LinkBusyError, LinkClosedError, NotOurBrokerError, TlsError

# CPython only (device.link.build imports this module only there). The assert also tells mypy's
# MicroPython pass (always_true = IS_MICROPYTHON) to skip the rest of this file.
assert not IS_MICROPYTHON, "device.link.paho_client needs CPython; on MicroPython use device.link.mqtt"
try:
    import ssl

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
except ImportError:
    raise ImportError("device.link.paho_client needs paho-mqtt >= 2 (pip install paho-mqtt)") from None
from device.link.paho_socket import WatchedSocket, left_ms, open_tcp, open_tls, tls_context  # noqa: E402

if not hasattr(mqtt.Client, "_create_socket"):
    raise ImportError("paho-mqtt without Client._create_socket: this adapter needs paho-mqtt 2.x")

_CONNACK = 0x20
_RC_PROTOCOL_ERROR = 0x82
_RC_KEEPALIVE_TIMEOUT = 0x8D
_RECENT_IN = 32  # incoming QoS 1 ids remembered to deliver a DUP re-send once (as device.link.mqtt)
_READS_PER_WAKE = 64  # loop_read rounds per wake while bytes already read wait (then the next loop turn)
# paho's state a PUBACK changes, settled by _take_pubacks; without them paho reads every PUBACK itself.
_PAHO_ACK_STATE = ("_in_packet", "_out_messages", "_out_message_mutex", "_inflight_messages", "_last_bytes_received")
_paho_time = getattr(mqtt, "time_func", None) or time.monotonic  # the clock paho's keepalive reads


def _socket_failure(exc: OSError) -> str:
    """The loss reason a socket error gives (reads and writes alike)."""
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    return "socket_error"


class _Session(mqtt.Client):
    """paho's client, given the socket we connected instead of opening (and blocking on) its own."""

    prepared: WatchedSocket | None = None

    def _create_socket(self) -> WatchedSocket:  # type: ignore[override]
        sock = self.prepared
        self.prepared = None
        if sock is None:  # paho reconnecting on its own: we never let it (reconnect_on_failure=False)
            raise ConnectionError("paho asked for a socket outside PahoClient.connect")
        return sock


class PahoClient(ClientBase):
    """``ClientBase`` over paho-mqtt on the running asyncio loop. See ``device/link/client.py``."""

    def __init__(self, client_id: str, **options) -> None:  # type: ignore[no-untyped-def]
        super().__init__(client_id, **options)
        self.counters["duplicates_in"] = 0
        session = _Session(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=self.clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        session.max_inflight_messages_set(0)  # our window limits QoS 1; paho must never hold one back
        session.max_queued_messages_set(0)
        if self.username is not None:
            session.username_pw_set(self.username, self.password)
        if self.will is not None:
            topic, payload, qos, retain = self.will
            session.will_set(topic, payload, qos, retain)
        session.on_connect = self._on_connect
        session.on_disconnect = self._on_disconnect
        session.on_publish = self._on_publish
        session.on_message = self._on_message
        session.on_subscribe = self._on_subscribe
        session.on_socket_close = self._on_socket_close
        self._paho = session
        self._fast_acks = all(hasattr(session, name) for name in _PAHO_ACK_STATE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: WatchedSocket | None = None
        self._fd = -1
        self._writing = False
        self._flush_soon = False  # a flush is scheduled for the end of this burst of publishes
        self._tls_verified = False  # the current connection is TLS with a verified broker certificate
        self._ticker: asyncio.Task | None = None
        self._connack: asyncio.Future | None = None
        self._reported_down = True  # on_disconnect already ran for the current connection (or there is none)
        self._unacked: dict = {}  # packet id -> True, QoS 1 publishes awaiting PUBACK, oldest first
        self._subacks: dict = {}  # packet id -> future of the granted QoS list
        # Ids of the last QoS 1 messages delivered in this session: a broker re-sending one with
        # DUP (its PUBACK was lost with the connection) is acked by paho but not delivered twice.
        self._recent_in: list = []
        self._ssl_context: ssl.SSLContext | None = None

    # -- the interface ----------------------------------------------------------

    async def connect(self, ip: str, port: int, server_hostname: str | None = None) -> bool:
        self._drop("reconnect")
        self._sock = None
        self._tls_verified = False
        self._loop = asyncio.get_running_loop()
        deadline = monotonic_ms() + self.connect_timeout_ms
        hostname = server_hostname or ip
        done = False
        try:
            if self.tls is not None and self._ssl_context is None:
                self._ssl_context = tls_context(self.tls)
            sock = await open_tcp(ip, port, deadline, self.connect_timeout_ms)
            if self._ssl_context is not None:
                sock = await open_tls(sock, self._ssl_context, hostname, deadline, self.connect_timeout_ms)
                self._tls_verified = True
            present = await self._mqtt_connect(sock, hostname, port, deadline)
            done = True
        finally:
            if not done:
                self.counters["connect_failures"] += 1
                self._drop("connect failed")
        return present

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        self._check_open()
        if qos == 1:
            if len(self._unacked) >= self.window:
                raise LinkBusyError("%d QoS 1 publishes in flight (window %d)" % (len(self._unacked), self.window))
        elif qos == 0:
            if self._paho.want_write():  # the socket is backed up: a QoS 0 message is not worth queueing
                raise LinkBusyError("send buffer full")
        else:
            raise ValueError("qos must be 0 or 1, got %r" % (qos,))
        info = self._paho.publish(topic, payload, qos, retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:  # packet id wrapped onto one still in flight
            raise LinkBusyError("packet id %d is still in flight" % info.mid)
        self.counters["published"] += 1
        if qos == 1:
            # Tracked even if the send just failed: paho keeps the message, so it is resent or dropped later.
            self._unacked[info.mid] = True
        if not self._flush_soon and self._loop is not None:
            self._flush_soon = True  # once the caller's burst is over (it does not await between publishes)
            self._loop.call_soon(self._on_writable)
        return info.mid if qos == 1 else 0

    def in_flight(self) -> int:
        return len(self._unacked)

    async def subscribe(self, filters: list) -> list:
        self._check_open()
        loop = self._running_loop()
        result, mid = self._paho.subscribe([(topic, qos) for topic, qos in filters])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkClosedError("SUBSCRIBE not sent: " + mqtt.error_string(result))
        waiter = loop.create_future()
        self._subacks[mid] = waiter  # the SUBACK is read by the reader callback, after this returns
        self._sync_writer()
        try:
            return await wait_for_ms(waiter, self.connect_timeout_ms)
        except asyncio.TimeoutError:
            raise LinkClosedError("no SUBACK within %d ms" % self.connect_timeout_ms, "timeout") from None
        finally:
            self._subacks.pop(mid, None)

    async def close(self) -> None:
        if self.closed is None and self._paho.socket() is not None:
            self._paho.disconnect()  # written at once when the socket takes it; paho closes after
        self._drop("closed")
        self._note_closed("closed")

    # -- connecting ---------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def _mqtt_connect(self, sock: socket.socket, hostname: str, port: int, deadline: int) -> bool:
        loop = self._running_loop()
        watched = WatchedSocket(sock, self.counters)
        self._sock = watched
        self._fd = sock.fileno()
        self._connack = loop.create_future()
        self._reported_down = False
        self._paho.prepared = watched
        self._paho.connect(hostname, port, self.keepalive_s)  # sends CONNECT through ``watched``
        if self._paho.socket() is not None:
            loop.add_reader(self._fd, self._on_readable)
            self._sync_writer()
        try:
            return await wait_for_ms(self._connack, left_ms(deadline))
        except asyncio.TimeoutError:
            raise NotOurBrokerError(
                "no CONNACK from %s:%d within %d ms" % (hostname, port, self.connect_timeout_ms)
            ) from None

    def _connect_failure(self, reason: str) -> Exception:
        """What a connection lost before CONNACK means."""
        sock = self._sock
        head = sock.head if sock is not None else b""
        if head and head[0] != _CONNACK:
            return NotOurBrokerError("the peer answered %s..., not a CONNACK" % head.hex())
        if len(head) == 4 and head[3] != 0:  # (paho skips on_connect for code 1: read the bytes)
            return BrokerRefusedError("CONNACK return code %d" % head[3], head[3])
        if self._tls_verified:
            # The broker proved who it is; ending the session now means it refused us (mTLS). With
            # TLS 1.3 that comes after our handshake: an alert, or a bare EOF, on the first read.
            error = sock.error if sock is not None else None
            alert = getattr(error, "reason", None) or ""
            if "ALERT" in alert:
                return TlsError("the broker rejected our client certificate (%s)" % alert)
            return TlsError(
                "the broker closed the TLS session before CONNACK (%s): client certificate refused?" % (error or reason)
            )
        if reason in ("eof", "protocol"):
            return NotOurBrokerError("the peer closed the connection without a CONNACK (%s)" % reason)
        return LinkClosedError("connection lost before CONNACK: " + reason, reason)

    # -- paho callbacks (all run inside loop_read/loop_write/loop_misc on the event loop) ---

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        waiter = self._connack
        if waiter is None or waiter.done():
            return
        if reason_code.is_failure:  # paho closes next; on_disconnect reports the code from the CONNACK bytes
            return
        present = bool(flags.session_present)
        if not present:
            self._recent_in = []  # a new session: ids seen in the old one mean nothing
        if present:
            self.counters["resent"] += len(self._unacked)  # paho re-sends them right after this callback
        elif self._unacked:
            client.drop_out_messages()  # before paho re-sends them into a session that no longer has them
            lost = list(self._unacked)
            self._unacked = {}
            self._note_dropped(lost)
        self._note_open(present)  # now, not when connect() resumes: a loss in between must stick
        self._ticker = asyncio.ensure_future(self._tick())
        waiter.set_result(present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        if self._reported_down:  # paho's loop_misc reports a keepalive timeout twice
            return
        self._reported_down = True
        reason = self._loss_reason(reason_code)
        waiter = self._connack
        if waiter is not None and not waiter.done():
            waiter.set_exception(self._connect_failure(reason))
        for mid in list(self._subacks):
            pending = self._subacks.pop(mid)
            if not pending.done():
                pending.set_exception(LinkClosedError("connection lost: " + reason, reason))
        self._stop_ticker()
        self._note_closed(reason)

    def _loss_reason(self, reason_code) -> str:  # type: ignore[no-untyped-def]
        sock = self._sock
        code = reason_code.value  # DISCONNECT reason codes, as paho converts its own error codes
        if sock is not None and sock.killed:
            return sock.killed
        if code == _RC_KEEPALIVE_TIMEOUT:
            self.counters["ping_timeouts"] += 1
            return "keepalive"
        if sock is not None and sock.error is not None:
            return _socket_failure(sock.error)
        if sock is not None and sock.eof:
            return "eof"
        if code == _RC_PROTOCOL_ERROR:
            self.counters["protocol_errors"] += 1
            return "protocol"
        if code == 0:  # our DISCONNECT went out
            return "closed"
        return "lost"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # type: ignore[no-untyped-def]
        # QoS 0 publishes report here too, once written; their ids are not in _unacked.
        if self._unacked.pop(mid, None) is not None:
            self._note_ack(mid)

    def _on_message(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        if self.closed is not None:  # a PUBLISH before CONNACK: not from a broker we talk to
            self.counters["protocol_errors"] += 1
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.counters["protocol_errors"] += 1
            return
        if message.qos and self._seen_before(message.mid, message.dup):
            return
        self._note_message(topic, bytes(message.payload))

    def _seen_before(self, packet_id: int, dup: bool) -> bool:
        recent = self._recent_in
        if dup and packet_id in recent:
            self.counters["duplicates_in"] += 1
            return True
        if packet_id in recent:
            recent.remove(packet_id)  # the id was reused for a new message: keep it, as the newest
        elif len(recent) >= _RECENT_IN:
            recent.pop(0)
        recent.append(packet_id)
        return False

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:  # type: ignore[no-untyped-def]
        waiter = self._subacks.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result([code.value for code in reason_code_list])

    def _on_socket_close(self, client, userdata, sock) -> None:  # type: ignore[no-untyped-def]
        # Called by paho before it closes the fd: unregister while the number is still ours.
        fd = self._fd
        self._fd = -1
        loop = self._loop
        if fd < 0 or loop is None or loop.is_closed():
            return
        loop.remove_reader(fd)
        if self._writing:
            loop.remove_writer(fd)
        self._writing = False

    # -- readiness --------------------------------------------------------------------

    def _on_readable(self) -> None:
        session = self._paho
        for _ in range(_READS_PER_WAKE):
            sock = self._sock
            if sock is None or session.socket() is None:
                break
            if self._fast_acks and self.closed is None and session._in_packet["command"] == 0:
                # Between two packets: the PUBACKs in front are ours; paho reads from the first other one.
                if not sock.fill():
                    break  # nothing to read yet
                ids = sock.take_pubacks()
                if ids:
                    self._take_pubacks(ids)
                    if sock.pending() == 0:
                        break  # all PUBACKs: the fd wakes us again for more
            session.loop_read()
            if session.socket() is None or sock.pending() == 0:
                break
        waiter = self._connack
        sock = self._sock
        if waiter is not None and not waiter.done() and sock is not None and sock.head and sock.head[0] != _CONNACK:
            self._drop("not_our_broker")  # something other than a CONNACK came first: stop reading it
        elif sock is not None and session.socket() is not None and sock.pending() and self._loop is not None:
            self._loop.call_soon(self._on_readable)  # bytes already read: the fd will not wake us for them
        self._sync_writer()

    def _take_pubacks(self, ids: list) -> None:
        """Settle PUBACKs as paho's handler does (``_handle_pubackcomp`` + ``_do_on_publish``), in one go."""
        session = self._paho
        session._last_bytes_received = _paho_time()  # as paho's read of a packet does: it is traffic
        out = session._out_messages
        unacked = self._unacked
        with session._out_message_mutex:
            for mid in ids:
                message = out.pop(mid, None)
                if message is None:
                    continue  # paho ignores a PUBACK for an id it does not hold; so do we
                message.info._set_as_published()
                if message.qos > 0:
                    session._inflight_messages -= 1
                if unacked.pop(mid, None) is not None:
                    self._note_ack(mid)

    def _on_writable(self) -> None:
        self._flush_soon = False
        sock = self._sock
        if sock is None:
            return
        try:
            if sock.flush() == 0 and self._paho.want_write():
                self._paho.loop_write()  # packets it held back while our buffer was full
                sock.flush()
        except OSError as exc:
            self._drop(_socket_failure(exc))
            return
        self._sync_writer()

    def _sync_writer(self) -> None:
        """Watch for writability exactly while bytes wait: in our socket's buffer, or queued in paho.

        Publishing only buffers; the write happens when the loop next says writable, so a
        burst of publishes from one engine turn leaves the host in one ``send``.
        """
        fd = self._fd
        loop = self._loop
        sock = self._sock
        if fd < 0 or loop is None:
            return
        want = self._paho.want_write() or (sock is not None and sock.buffered() > 0)
        if want and not self._writing:
            loop.add_writer(fd, self._on_writable)
            self._writing = True
        elif not want and self._writing:
            loop.remove_writer(fd)
            self._writing = False

    async def _tick(self) -> None:
        """Keepalive: paho's loop_misc sends PINGREQ and drops a connection whose PINGRESP is late."""
        interval_s = min(1.0, max(0.05, self.keepalive_s / 4))
        session = self._paho
        while session.socket() is not None:
            await asyncio.sleep(interval_s)
            if session.socket() is None:
                break
            session.loop_misc()
            self._sync_writer()

    def _stop_ticker(self) -> None:
        ticker = self._ticker
        self._ticker = None
        if ticker is not None and ticker is not asyncio.current_task() and not ticker.done():
            ticker.cancel()

    def _drop(self, reason: str) -> None:
        """End the current connection without DISCONNECT; paho's own loss path runs the callbacks."""
        sock = self._sock
        if sock is not None and self._paho.socket() is not None:
            sock.kill(reason)
            self._paho.loop_read()  # the killed socket fails the read: paho closes it, on_disconnect runs
        self._stop_ticker()
