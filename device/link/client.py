"""The interface both MQTT clients implement, and the book-keeping they share.

A client is one MQTT session towards one broker address. The sync engine and
the link use only what is listed here, so ``device.link.mqtt.MqttClient``
(portable) and ``device.link.paho_client.PahoClient`` (CPython) are
interchangeable.

Construction (keyword arguments after ``client_id``)::

    Client(client_id, keepalive_s=60, clean_session=False, window=16, queue_len=32,
           tls=None, username=None, password=None, connect_timeout_ms=10000, will=None)

* ``tls``  -- ``None`` for plain TCP, or ``{"ca": path, "cert": path|None, "key": path|None}``
  (PEM files; the portable client may need DER on MicroPython: ``provision`` writes both,
  ``name.pem`` and ``name.der``). With ``tls`` the certificate is verified against ``ca`` for
  ``server_hostname`` given to ``connect``: dialling a last-known-good IP keeps the hostname.
* ``will`` -- ``(topic, payload bytes, qos, retain)`` or None.
* ``window`` -- the most QoS 1 PUBLISHes in flight (unacknowledged).
* ``queue_len`` -- incoming messages held until ``take_messages``; beyond it the newest
  are dropped and counted (``counters["messages_dropped"]``).

Methods::

    await connect(ip, port, server_hostname=None) -> session_present (bool)
        Time-bounded by connect_timeout_ms (TCP + TLS + CONNACK). Raises ConnectError,
        TlsError, NotOurBrokerError (no valid CONNACK), BrokerRefusedError, LinkClosedError.
        May be called again on the same object after a loss: with clean_session=False and the
        broker reporting session_present, unacknowledged QoS 1 PUBLISHes are re-sent with
        DUP and the same packet id; without a session they are reported by take_dropped().
    publish(topic, payload, qos=1, retain=False) -> packet id (0 for QoS 0)
        Never awaits. Raises LinkBusyError when ``in_flight() >= window`` (QoS 1) or the
        send buffer is full, LinkClosedError when not connected.
    in_flight() -> int
    await subscribe(filters) -> granted QoS list       filters: [(topic filter, qos), ...]
    take_acks() -> [packet id, ...]       PUBACKs since the last call
    take_messages() -> [(topic, payload bytes), ...]   incoming PUBLISHes since the last call
    take_dropped() -> [packet id, ...]    QoS 1 publishes lost with a session that did not persist
    await wait(timeout_ms)                until there is something to take, the connection
                                          closed, or the time is up (real time)
    closed -> None while connected, else a short reason ("keepalive", "reset", "eof", ...)
    await close()                         DISCONNECT if possible; idempotent
    stats() -> dict of counters

Keepalive and all socket timeouts are real time, whatever clock the device
simulates: the broker enforces them in real time.
"""

import asyncio

from device.compat import wait_for_ms
from device.linkerrors import LinkClosedError

COUNTER_NAMES = (
    "connects",
    "connect_failures",
    "published",
    "acked",
    "resent",
    "dropped_unacked",
    "messages",
    "messages_dropped",
    "pings",
    "ping_timeouts",
    "bytes_out",
    "bytes_in",
    "protocol_errors",
)


class ClientBase:
    """Shared state for MQTT clients: counters, acks, the bounded message queue and ``wait``."""

    def __init__(
        self,
        client_id: str,
        keepalive_s: int = 60,
        clean_session: bool = False,
        window: int = 16,
        queue_len: int = 32,
        tls=None,  # type: ignore[no-untyped-def]
        username=None,
        password=None,
        connect_timeout_ms: int = 10000,
        will=None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if queue_len < 1:
            raise ValueError("queue_len must be >= 1")
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.clean_session = clean_session
        self.window = window
        self.queue_len = queue_len
        self.tls = tls
        self.username = username
        self.password = password
        self.connect_timeout_ms = connect_timeout_ms
        self.will = will
        self.session_present = False
        self.closed: str | None = "not connected"
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0
        self._acks: list = []
        self._messages: list = []
        self._dropped: list = []
        self._activity = asyncio.Event()

    # -- for subclasses ---------------------------------------------------

    def _note_ack(self, packet_id: int) -> None:
        self._acks.append(packet_id)
        self.counters["acked"] += 1
        self._activity.set()

    def _note_message(self, topic: str, payload: bytes) -> None:
        self.counters["messages"] += 1
        if len(self._messages) >= self.queue_len:
            self.counters["messages_dropped"] += 1
            return
        self._messages.append((topic, payload))
        self._activity.set()

    def _note_dropped(self, packet_ids: list) -> None:
        for pid in packet_ids:
            self._dropped.append(pid)
        self.counters["dropped_unacked"] += len(packet_ids)
        if packet_ids:
            self._activity.set()

    def _note_open(self, session_present: bool) -> None:
        self.session_present = session_present
        self.closed = None
        self.counters["connects"] += 1

    def _note_closed(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
        self._activity.set()

    def _check_open(self) -> None:
        if self.closed is not None:
            raise LinkClosedError("not connected: " + self.closed, "closed")

    # -- the shared interface ---------------------------------------------

    def take_acks(self) -> list:
        acks = self._acks
        self._acks = []
        return acks

    def take_messages(self) -> list:
        messages = self._messages
        self._messages = []
        return messages

    def take_dropped(self) -> list:
        dropped = self._dropped
        self._dropped = []
        return dropped

    async def wait(self, timeout_ms: int) -> None:
        if self._acks or self._messages or self._dropped or self.closed is not None:
            return
        self._activity.clear()
        try:
            await wait_for_ms(self._activity.wait(), timeout_ms)
        except asyncio.TimeoutError:
            pass

    def stats(self) -> dict:
        out: dict = dict(self.counters)
        out["closed"] = self.closed
        out["in_flight"] = self.in_flight()
        return out

    # -- what each client implements (see the module docstring) ---------------

    async def connect(self, ip: str, port: int, server_hostname=None) -> bool:  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        raise NotImplementedError

    async def subscribe(self, filters: list) -> list:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def in_flight(self) -> int:
        raise NotImplementedError
