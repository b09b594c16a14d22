"""The store interface: a state cache (key -> latest value) and an outbox (records to send).

Backends: ``device.store.memory.MemoryStore`` (RAM; tests and host simulation);
durable ones come later and are chosen by the board's ``storage`` section
through ``device.store.open_store``.

Contract every backend keeps:

* **State.** ``put_state`` bumps the key's ``version`` by one per put (the first
  put gives version 1) and records ``origin`` and ``stamp_ms``.
* **Outbox.** ``append`` gives each record a per-device sequence number that is
  strictly increasing and never reused, even after every record was acked.
  ``read_outbox`` returns the oldest records first; ``ack(upto_seq)`` deletes
  every record with ``seq <= upto_seq``.
* **Budget.** Outbox payload bytes stay within the backend's budget. Telemetry
  may be dropped (oldest first) or compacted to make room; events and results
  never are: when they alone fill the budget, ``append`` raises
  ``StoreFullError``.
* **Counters.** ``counters`` holds ``appended``, ``acked``, ``compacted``,
  ``dropped``, ``corrupt_skipped`` and ``full_rejections``.

A record's ``size`` is the byte length of its payload's compact JSON
(UTF-8, no spaces), the same figure on MicroPython and CPython.
"""

import json

from device.compat import IS_MICROPYTHON
from device.errors import StoreError

ORIGINS = ("local", "cloud", "lan", "schedule")
LANES = ("telemetry", "event", "result")

COUNTER_NAMES = ("appended", "acked", "compacted", "dropped", "corrupt_skipped", "full_rejections")


def new_counters() -> dict:
    counters = {}
    for name in COUNTER_NAMES:
        counters[name] = 0
    return counters


def check_lane(lane: str) -> int:
    """Return the lane's index in ``LANES``; raise ``StoreError`` for an unknown lane."""
    for i in range(len(LANES)):
        if LANES[i] == lane:
            return i
    raise StoreError("unknown outbox lane %r: use one of %s" % (lane, ", ".join(LANES)))


def check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise StoreError("unknown state origin %r: use one of %s" % (origin, ", ".join(ORIGINS)))


def encode_json(value, what: str = "value") -> bytes:  # type: ignore[no-untyped-def]
    """Compact UTF-8 JSON bytes of ``value``; ``StoreError`` if it is not plain JSON."""
    try:
        if IS_MICROPYTHON:
            text = json.dumps(value, separators=(",", ":"))
            # MicroPython's dumps writes nan, inf and object reprs without complaint:
            # parse it back so a bad record is refused now, not unreadable later.
            json.loads(text)
        else:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError("%s is not storable as JSON (%s): %r" % (what, exc, value)) from None
    return text.encode()


def encode_payload(payload) -> bytes:  # type: ignore[no-untyped-def]
    if not isinstance(payload, dict):
        raise StoreError("an outbox payload must be a dict, got %s" % type(payload).__name__)
    return encode_json(payload, "payload")


class StateEntry:
    """The latest value of one state key."""

    __hash__ = None  # type: ignore[assignment]  # mutable value holder: compared by content, never hashed

    def __init__(self, key: str, value, version: int, origin: str, stamp_ms: int) -> None:  # type: ignore[no-untyped-def]
        self.key = key
        self.value = value
        self.version = version
        self.origin = origin
        self.stamp_ms = stamp_ms

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "value": self.value,
            "version": self.version,
            "origin": self.origin,
            "stamp_ms": self.stamp_ms,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateEntry):
            return False
        return (
            self.key == other.key
            and self.value == other.value
            and self.version == other.version
            and self.origin == other.origin
            and self.stamp_ms == other.stamp_ms
        )

    def __repr__(self) -> str:
        return "StateEntry(%r, %r, version=%d, origin=%r, stamp_ms=%d)" % (
            self.key,
            self.value,
            self.version,
            self.origin,
            self.stamp_ms,
        )


class Record:
    """One outbox record. ``size`` is the byte length of the payload's compact JSON."""

    __hash__ = None  # type: ignore[assignment]  # the payload is a dict: compared by content, never hashed

    def __init__(self, seq: int, lane: str, created_ms: int, payload: dict, size: int) -> None:
        self.seq = seq
        self.lane = lane
        self.created_ms = created_ms
        self.payload = payload
        self.size = size

    def to_dict(self) -> dict:
        return {
            "seq": self.seq,
            "lane": self.lane,
            "created_ms": self.created_ms,
            "payload": self.payload,
            "size": self.size,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return False
        return (
            self.seq == other.seq
            and self.lane == other.lane
            and self.created_ms == other.created_ms
            and self.payload == other.payload
            and self.size == other.size
        )

    def __repr__(self) -> str:
        return "Record(seq=%d, lane=%r, created_ms=%d, size=%d)" % (self.seq, self.lane, self.created_ms, self.size)


class Store:
    """Base class of every backend. Subclasses override all methods below.

    ``counters`` is a dict with the keys in ``COUNTER_NAMES``.
    """

    def __init__(self) -> None:
        self.counters = new_counters()

    async def open(self) -> None:
        """Open or create the storage; call once before use."""
        raise NotImplementedError

    async def close(self) -> None:
        """Flush and release the storage. Safe to call twice."""
        raise NotImplementedError

    async def get_state(self, key: str) -> StateEntry | None:
        raise NotImplementedError

    async def load_state(self) -> dict:
        """Every key: ``{key: StateEntry}``."""
        raise NotImplementedError

    async def put_state(self, key: str, value, origin: str = "local", now_ms: int = 0) -> StateEntry:  # type: ignore[no-untyped-def]
        """Store ``value`` (plain JSON) under ``key`` with the next version; return the new entry."""
        raise NotImplementedError

    async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
        """Add a record to the outbox; return its sequence number. May raise ``StoreFullError``."""
        raise NotImplementedError

    async def read_outbox(self, limit: int) -> list:
        """Up to ``limit`` records, oldest (lowest seq) first, left in place until acked."""
        raise NotImplementedError

    async def ack(self, upto_seq: int) -> int:
        """Delete every record with ``seq <= upto_seq``; return how many went."""
        raise NotImplementedError

    def depth(self) -> tuple:
        """``(records, payload_bytes)`` currently in the outbox."""
        raise NotImplementedError
