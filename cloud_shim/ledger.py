"""The cloud side's record ledger: did every outbox record arrive exactly once, in order?

Fed ``(topic, payload)`` of the ``bp/{d}/out/{lane}`` messages (the record
envelope of ``device/link/topics.py``), it keeps, per device and lane, the
seqs delivered and classifies every message:

* **first delivery** of ``(device, seq)``; its seq should be larger than every
  seq delivered before in that lane, else it is an **order violation**;
* **duplicate**: the same seq again with the same content (``boot``,
  ``t_ms``, ``lane``, payload; ``wall_ms`` may differ, it is derived at
  publish time): a QoS 1 redelivery, absorbed -- this is the cloud's dedupe;
* **refold**: the same seq again as a telemetry aggregate (``{"agg": {"first":
  seq, "last": ...}}``) standing for more than what was delivered before: the
  device folded a record that was in flight and sent the aggregate again
  (``device/link/sync.py``), absorbed;
* **conflict**: the same seq with different content otherwise: a real bug.

Aggregates explain gaps: every seq in ``agg.first .. agg.last`` is
**folded** (its sample lives on in the aggregate) when it was not delivered
itself. ``report(device, expected)`` compares with what the device created
(a list of seqs or ``(boot, seq)`` pairs, or a range): **lost** = expected
but neither delivered nor folded. Without ``expected``, missing seqs between
the smallest and largest seen are reported as **gaps** (a seq may also be
missing because the store skipped it after a failed write; pass
``expected`` for the exact figure).

Latency: creation -> delivery when the record carries ``wall_ms`` (its
creation wall time), measured against the receiver's wall clock.

``LedgerSubscriber`` feeds a ledger from a broker with paho-mqtt in its own
thread (QoS 1), and also keeps each device's latest reported document and
status, for tests and the simulator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

PREFIX = "bp"
_CONTENT_FIELDS = ("boot", "t_ms", "lane", "p")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _agg(payload: Any) -> dict[str, Any] | None:
    agg = payload.get("agg") if isinstance(payload, dict) else None
    if isinstance(agg, dict) and isinstance(agg.get("first"), int) and isinstance(agg.get("last"), int):
        return agg
    return None


def _span(envelope: dict[str, Any]) -> int:
    """How many seqs a delivered record stands for (1, or an aggregate's range)."""
    agg = _agg(envelope.get("p"))
    return int(agg["last"]) - int(agg["first"]) + 1 if agg is not None else 1


@dataclass
class LaneBook:
    """One device's lane: what arrived, in arrival order."""

    delivered: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> content (first or refolded)
    arrivals: list[int] = field(default_factory=list)  # seqs of first deliveries, in arrival order
    highest: int = 0
    duplicates: int = 0
    refolds: int = 0
    order_violations: list[tuple[int, int]] = field(default_factory=list)  # (seq, the higher seq before it)
    conflicts: list[int] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceReport:
    device: str
    delivered: int  # distinct seqs delivered, all lanes
    per_lane: dict[str, int]
    duplicates: int
    refolds: int
    conflicts: list[tuple[str, int]]
    order_violations: list[tuple[str, int, int]]
    folded: int  # seqs not delivered themselves but inside a delivered aggregate
    gaps: list[tuple[int, int]]  # missing seq ranges between the smallest and largest seen
    lost: list[int] | None  # expected, neither delivered nor folded (None: no expectation given)
    unexpected: list[int] | None  # delivered but not expected
    latency_ms: dict[str, int] | None  # n, p50, p95, max

    @property
    def ok(self) -> bool:
        """Exactly once and in order: no conflict, no order violation, nothing lost (or no gap)."""
        missing = self.lost if self.lost is not None else self.gaps
        return not self.conflicts and not self.order_violations and not missing


class Ledger:
    """Thread-safe: ``feed`` may be called from a client's thread while a test reads reports."""

    def __init__(self, prefix: str = PREFIX, clock_ms: Callable[[], int] = _now_ms) -> None:
        self.prefix = prefix
        self.clock_ms = clock_ms
        self.books: dict[str, dict[str, LaneBook]] = {}
        self.messages = 0
        self.malformed = 0
        self.reported: dict[str, dict[str, Any]] = {}  # device -> latest reported document
        self.status: dict[str, str] = {}
        self.results: dict[str, dict[str, dict[str, Any]]] = {}  # device -> command id -> result payload
        self.changed = threading.Condition()

    # -- input -------------------------------------------------------------------------

    def feed(self, topic: str, payload: bytes, received_ms: int | None = None) -> None:
        with self.changed:
            self._feed(topic, payload, self.clock_ms() if received_ms is None else received_ms)
            self.changed.notify_all()

    def _feed(self, topic: str, payload: bytes, received_ms: int) -> None:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != self.prefix:
            return
        device = parts[1]
        rest = "/".join(parts[2:])
        if rest == "shadow/reported":
            doc = _json(payload)
            if isinstance(doc, dict):
                self.reported[device] = doc
            return
        if rest == "status":
            self.status[device] = payload.decode("utf-8", "replace")
            return
        if len(parts) != 4 or parts[2] != "out":
            return
        self.messages += 1
        envelope = _json(payload)
        lane = parts[3]
        if not _valid_envelope(envelope, device, lane):
            self.malformed += 1
            return
        assert isinstance(envelope, dict)
        self._record(device, lane, envelope, received_ms)

    def _record(self, device: str, lane: str, envelope: dict[str, Any], received_ms: int) -> None:
        book = self.books.setdefault(device, {}).setdefault(lane, LaneBook())
        seq = int(envelope["seq"])
        content = {name: envelope.get(name) for name in _CONTENT_FIELDS}
        before = book.delivered.get(seq)
        if before is None:
            book.delivered[seq] = content
            book.arrivals.append(seq)
            if seq < book.highest:
                book.order_violations.append((seq, book.highest))
            else:
                book.highest = seq
            wall = envelope.get("wall_ms")
            if isinstance(wall, int):
                book.latencies_ms.append(received_ms - wall)
            if lane == "result" and isinstance(envelope["p"].get("id"), str):
                self.results.setdefault(device, {})[envelope["p"]["id"]] = envelope["p"]
            return
        if before == content:
            book.duplicates += 1
        elif _refolds(before, content, seq):
            book.refolds += 1
            book.delivered[seq] = content
        else:
            book.conflicts.append(seq)

    # -- output ------------------------------------------------------------------------

    def devices(self) -> list[str]:
        with self.changed:
            return sorted(self.books)

    def delivered(self, device: str, lane: str | None = None) -> list[int]:
        """Seqs delivered (sorted), of one lane or all."""
        with self.changed:
            lanes = self.books.get(device, {})
            seqs: set[int] = set()
            for name, book in lanes.items():
                if lane is None or name == lane:
                    seqs.update(book.delivered)
            return sorted(seqs)

    def arrivals(self, device: str, lane: str) -> list[int]:
        """Seqs of one lane in the order they first arrived."""
        with self.changed:
            book = self.books.get(device, {}).get(lane)
            return list(book.arrivals) if book is not None else []

    def payloads(self, device: str, lane: str) -> dict[int, Any]:
        with self.changed:
            book = self.books.get(device, {}).get(lane)
            return {seq: c["p"] for seq, c in book.delivered.items()} if book is not None else {}

    def count(self, device: str) -> int:
        """Seqs accounted for (delivered, or folded into a delivered aggregate)."""
        with self.changed:
            return len(self._covered(device))

    def _covered(self, device: str) -> set[int]:
        covered: set[int] = set()
        for book in self.books.get(device, {}).values():
            for seq, content in book.delivered.items():
                covered.add(seq)
                agg = _agg(content.get("p"))
                if agg is not None:
                    covered.update(range(int(agg["first"]), int(agg["last"]) + 1))
        return covered

    def report(self, device: str, expected: Iterable[Any] | None = None) -> DeviceReport:
        """The verdict for one device; ``expected``: seqs (or ``(boot, seq)`` pairs, or a range) it created."""
        with self.changed:
            lanes = self.books.get(device, {})
            delivered: set[int] = set()
            per_lane = {}
            latencies: list[int] = []
            for name, book in lanes.items():
                delivered.update(book.delivered)
                per_lane[name] = len(book.delivered)
                latencies.extend(book.latencies_ms)
            covered = self._covered(device)
            lost: list[int] | None = None
            unexpected: list[int] | None = None
            if expected is not None:
                want = {item[1] if isinstance(item, tuple) else int(item) for item in expected}
                lost = sorted(want - covered)
                unexpected = sorted(delivered - want)
            return DeviceReport(
                device=device,
                delivered=len(delivered),
                per_lane=per_lane,
                duplicates=sum(b.duplicates for b in lanes.values()),
                refolds=sum(b.refolds for b in lanes.values()),
                conflicts=sorted((name, seq) for name, b in lanes.items() for seq in b.conflicts),
                order_violations=[(name, s, h) for name, b in lanes.items() for s, h in b.order_violations],
                folded=len(covered - delivered),
                gaps=_gaps(covered),
                lost=lost,
                unexpected=unexpected,
                latency_ms=_summary(latencies),
            )

    def wait_for(self, predicate: Callable[[Ledger], bool], timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (checked after every message) or the time is up."""
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
            return True


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _valid_envelope(envelope: Any, device: str, lane: str) -> bool:
    return (
        isinstance(envelope, dict)
        and envelope.get("dev") == device
        and envelope.get("lane") == lane
        and isinstance(envelope.get("seq"), int)
        and envelope["seq"] > 0
        and isinstance(envelope.get("p"), dict)
    )


def _refolds(before: dict[str, Any], now: dict[str, Any], seq: int) -> bool:
    """Whether ``now`` is an aggregate at ``seq`` that takes in what ``before`` stood for, and more."""
    agg = _agg(now.get("p"))
    if agg is None or agg["first"] != seq or now.get("lane") != "telemetry":
        return False
    return _span({"p": now.get("p")}) > _span({"p": before.get("p")})


def _gaps(seqs: set[int]) -> list[tuple[int, int]]:
    if not seqs:
        return []
    out = []
    ordered = sorted(seqs)
    for a, b in pairwise(ordered):
        if b > a + 1:
            out.append((a + 1, b - 1))
    return out


def _summary(values: list[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)
    return {"n": n, "p50": ordered[n // 2], "p95": ordered[min(n - 1, n * 95 // 100)], "max": ordered[-1]}


# -- a subscriber for tests and the simulator ---------------------------------------------


class LedgerSubscriber:
    """paho-mqtt in its own network thread, feeding a ``Ledger`` (QoS 1).

    ``devices``: ids to follow (None: every device under ``prefix``). Subscribes
    to their ``out/+``, ``shadow/reported`` and ``status``. ``start()`` returns
    once the subscription is granted. Also publishes, for tests playing the
    cloud: ``publish(topic, payload, qos, retain)`` waits for the PUBACK.
    It subscribes again after every reconnect; ``persistent`` (the simulator)
    keeps its session so nothing is missed while it reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        devices: Iterable[str] | None = None,
        prefix: str = PREFIX,
        client_id: str | None = None,
        ledger: Ledger | None = None,
        persistent: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host = host
        self.port = port
        self.prefix = prefix
        self.ledger = ledger if ledger is not None else Ledger(prefix)
        names = list(devices) if devices is not None else ["+"]
        self.filters = []
        for d in names:
            for tail in ("out/+", "shadow/reported", "status"):
                self.filters.append(("%s/%s/%s" % (prefix, d, tail), 1))
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or "ledger-%d" % id(self),
            clean_session=not persistent,  # persistent: the broker queues for us while we reconnect
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.ledger.feed(message.topic, bytes(message.payload))

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        # Every (re)connect: a broker that restarted without our session has forgotten the subscription.
        if not reason_code.is_failure:
            client.subscribe(self.filters)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        self._subscribed.set()

    def start(self, timeout_s: float = 10.0) -> LedgerSubscriber:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TimeoutError("the ledger's subscription was not granted in %.0f s" % timeout_s)
        return self

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout_s: float = 10.0) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> LedgerSubscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
