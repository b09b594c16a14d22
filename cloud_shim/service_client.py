"""The MQTT side every cloud_shim service shares: paho-mqtt in its own network thread.

``ServiceClient`` connects to the broker, subscribes to its filters again on
every (re)connect, then runs ``on_connected`` in a short-lived thread of its
own (the shadow service re-publishes its retained documents there, since a
restarted broker without persistence has forgotten them; thousands of
publishes from inside paho's callback would stall paho's loop), hands each
message to ``on_message`` (paho's thread), and reconnects by itself while the
broker is away. ``start()`` returns once subscribed and ``on_connected`` ran.

Publishes are QoS 1 by default and do not block; ``flush(timeout_s)`` waits
for the PUBACKs of everything published so far. paho's ``publish`` is safe
to call from any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 4
MAX_INFLIGHT = 200  # paho queues the rest and sends them as PUBACKs come back


class ServiceClient:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        filters: list[tuple[str, int]],
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None] | None = None,
        clean_session: bool = True,
        keepalive_s: int = 30,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host = host
        self.port = port
        self.client_id = client_id
        self.filters = list(filters)
        self.keepalive_s = keepalive_s
        self._handle = on_message
        self._on_connected = on_connected
        self.connects = 0
        self.disconnects = 0
        self.callback_errors = 0
        self._subscribed = threading.Event()
        self._connected_done = threading.Event()  # ``on_connected`` ran once
        if on_connected is None:
            self._connected_done.set()
        self._unacked: list[Any] = []  # MQTTMessageInfo of QoS 1 publishes not known to be acked
        self._unacked_lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._granted
        self._client.on_message = self._message

    # -- paho's thread -------------------------------------------------------------

    def _connected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            return
        self.connects += 1
        if self.filters:
            client.subscribe(self.filters)
        else:
            self._subscribed.set()
        if self._on_connected is not None:
            # Not in paho's thread: publishing thousands of messages from inside a callback
            # stalls paho's loop for seconds (measured: 3 s for 2,000), from another thread not.
            threading.Thread(target=self._run_on_connected, name=self.client_id + "-connected", daemon=True).start()

    def _run_on_connected(self) -> None:
        assert self._on_connected is not None
        try:
            self._on_connected()
        except Exception:  # a bug in a service must not go unnoticed silently; counted
            self.callback_errors += 1
        self._connected_done.set()

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self.disconnects += 1

    def _granted(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        self._subscribed.set()

    def _message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._handle(message.topic, bytes(message.payload))
        except Exception:  # as above: counted, the thread goes on
            self.callback_errors += 1

    # -- any thread ------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect; return once the subscriptions are granted and ``on_connected`` ran (``TimeoutError`` if not)."""
        deadline = time.monotonic() + timeout_s
        self._client.connect(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        ready = self._subscribed.wait(timeout_s)
        if ready:
            ready = self._connected_done.wait(max(0.0, deadline - time.monotonic()))
        if not ready:
            self.stop()
            raise TimeoutError("%s: not subscribed and ready within %.0f s" % (self.client_id, timeout_s))

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> Any:
        """Queue a publish (paho sends it now, or after the reconnect); returns paho's ``MQTTMessageInfo``."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            with self._unacked_lock:
                self._unacked.append(info)
                if len(self._unacked) > 4 * MAX_INFLIGHT:
                    self._unacked = [i for i in self._unacked if not _acked(i)]
        return info

    def unacked(self) -> int:
        with self._unacked_lock:
            self._unacked = [i for i in self._unacked if not _acked(i)]
            return len(self._unacked)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) until every QoS 1 publish made so far is acked; False if time ran out."""
        deadline = time.monotonic() + timeout_s
        for _ in range(int(timeout_s * 100) + 1):
            if self.unacked() == 0:
                return True
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        return self.unacked() == 0


def _acked(info: Any) -> bool:
    try:
        return bool(info.is_published())
    except (RuntimeError, ValueError):
        # Published while disconnected: paho keeps the NO_CONN code even after it sent the
        # message on the reconnect and got its PUBACK; the flag itself is still right.
        return bool(getattr(info, "_published", False))
