"""The store contract: state cache, outbox, inbox and counters, one for every backend.

Backends (chosen by the board's ``storage.backend`` through ``device.store.open_store``):
``sqlite`` (CPython: aiosqlite, WAL, group commit), ``log`` (flash: segment files,
CRC32 records, portable) and ``memory`` (RAM, for unit tests and throwaway runs).

What every backend keeps (``tests/pure/store_conformance.py`` checks it on each):

* **State.** ``put_state`` bumps the key's ``version`` by one per put (first put:
  version 1) and records ``origin`` and a hybrid-logical-clock ``stamp``
  (``device.hlc``): stamped by the store's clock from ``wall_ms`` unless the
  caller passes the stamp it got from elsewhere. State is served from RAM; a
  put returns once it is durable. The clock is restored from the largest
  stored stamp at ``open``, so stamps keep increasing across reboots.
* **Outbox.** ``append`` gives each record a per-device sequence number that
  strictly increases and is never reused, across reboots and even after every
  record was acked; it returns once the record is durable (``fsync`` boards).
  ``read_outbox`` gives the oldest records first (optionally only those after
  a seq, and only those of some lanes); ``ack(upto)`` removes every record with ``seq <= upto``;
  ``ack_seqs`` removes the listed ones. Each record carries the ``boot`` id it
  was written in and its monotonic ``created_ms`` (wall time may be unknown).
* **Budget and retention** (``device.store.retention``). Outbox payload bytes
  stay within ``budget_bytes``. Past the high-water mark the oldest runs of
  telemetry are folded into aggregate records (count/min/max/mean per field,
  the seq range they cover); the aggregate keeps the first seq of its run.
  Events and results are never folded or dropped. A record that does not fit
  even then is refused with ``StoreFullError`` and counted
  (``full_rejections``); the caller keeps running.
* **Inbox.** Command ids already handled, each with an expiry, for dedupe;
  at most ``INBOX_MAX`` held (the soonest to expire goes first, counted).
* **Counters** (``COUNTER_NAMES``): appended, acked, compacted (telemetry
  samples folded away), corrupt_skipped (bad records skipped at open),
  full_rejections, write_errors (the medium refused a write: ENOSPC, EIO),
  inbox_evicted. ``stats()`` gives them with depth, seq range and boot id.

A record's ``size`` is the byte length of its payload's compact JSON (UTF-8,
no spaces), the figure budgets count.

Heap: this module is loaded on every board, so it holds only what a running
device calls. The backend methods are declared for type checkers alone (see
``Store``); the inbox and ``stats()`` code lives in ``device.store.inbox`` and
``device.store.stats``, imported on first use (an offline device never calls them).
"""

import json

from device.compat import IS_MICROPYTHON, const
from device.errors import StoreError
from device.hlc import HLC

# Type checkers take any name TYPE_CHECKING as true; as a const(0) MicroPython's
# compiler drops the blocks it guards, so declarations there cost no heap.
TYPE_CHECKING = const(0)

ORIGINS = ("local", "cloud", "lan", "schedule")
LANES = ("telemetry", "event", "result")

COUNTER_NAMES = (
    "appended",
    "acked",
    "compacted",
    "corrupt_skipped",
    "full_rejections",
    "write_errors",
    "inbox_evicted",
)
INBOX_MAX = 256

# The outbox's water marks (see device.store.retention): every append checks
# them, so they live here; the folding code is imported only when they are passed.
HIGH_WATER_PCT = const(80)  # fold once an append would take the outbox past this share of the budget
LOW_WATER_PCT = const(60)  # ... and fold down to this share


def high_water(budget_bytes: int) -> int:
    return budget_bytes * HIGH_WATER_PCT // 100


def low_water(budget_bytes: int) -> int:
    return budget_bytes * LOW_WATER_PCT // 100


def over_high_water(held_bytes: int, incoming_bytes: int, budget_bytes: int) -> bool:
    return held_bytes + incoming_bytes > high_water(budget_bytes)


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


def lane_mask(lanes) -> int:  # type: ignore[no-untyped-def]
    """``read_outbox``'s ``lanes`` as a bit mask over ``LANES`` (bit i: ``LANES[i]``); None: every lane."""
    if lanes is None:
        return (1 << len(LANES)) - 1
    if isinstance(lanes, str):
        lanes = (lanes,)  # one name given bare: read it as the one lane it names
    mask = 0
    for lane in lanes:
        mask |= 1 << check_lane(lane)
    return mask


def check_origin(origin: str) -> None:
    if origin not in ORIGINS:
        raise StoreError("unknown state origin %r: use one of %s" % (origin, ", ".join(ORIGINS)))


def encode_json(value, what: str = "value") -> bytes:  # type: ignore[no-untyped-def]
    """Compact UTF-8 JSON bytes of ``value``; ``StoreError`` if it is not plain JSON."""
    try:
        if IS_MICROPYTHON:
            data = json.dumps(value, separators=(",", ":")).encode()
            # MicroPython's dumps writes nan, inf and object reprs without complaint:
            # parse it back so a bad record is refused now, not unreadable later.
            json.loads(data)
            if _has_surrogate(data):
                raise ValueError("a lone surrogate is not valid UTF-8")
        else:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            data = text.encode()  # UnicodeEncodeError (a ValueError) for a lone surrogate
    except (TypeError, ValueError) as exc:
        raise StoreError("%s is not storable as JSON (%s): %r" % (what, exc, value)) from None
    return data


def _has_surrogate(data: bytes) -> bool:
    """Whether UTF-8 ``data`` encodes a code point in U+D800..U+DFFF (MicroPython lets them through).

    Those are the sequences ED A0..BF xx; in valid UTF-8 an ED lead byte is followed by 80..9F.
    """
    i = data.find(b"\xed")
    while 0 <= i < len(data) - 1:
        if data[i + 1] >= 0xA0:
            return True
        i = data.find(b"\xed", i + 1)
    return False


def encode_payload(payload) -> bytes:  # type: ignore[no-untyped-def]
    if not isinstance(payload, dict):
        raise StoreError("an outbox payload must be a dict, got %s" % type(payload).__name__)
    return encode_json(payload, "payload")


class StateEntry:
    """The latest value of one state key."""

    __hash__ = None  # type: ignore[assignment]  # mutable value holder: compared by content, never hashed

    def __init__(self, key: str, value, version: int, origin: str, stamp: int) -> None:  # type: ignore[no-untyped-def]
        self.key = key
        self.value = value
        self.version = version
        self.origin = origin
        self.stamp = stamp

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "value": self.value,
            "version": self.version,
            "origin": self.origin,
            "stamp": self.stamp,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateEntry) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "StateEntry(%r)" % (self.to_dict(),)


class Record:
    """One outbox record. ``size`` is the byte length of the payload's compact JSON.

    ``boot`` is the boot id the record was written in and ``created_ms`` the
    monotonic time then: wall time is fixed later, once the device knows it.
    """

    __hash__ = None  # type: ignore[assignment]  # the payload is a dict: compared by content, never hashed

    def __init__(self, seq: int, lane: str, boot: int, created_ms: int, payload: dict, size: int) -> None:
        self.seq = seq
        self.lane = lane
        self.boot = boot
        self.created_ms = created_ms
        self.payload = payload
        self.size = size

    def to_dict(self) -> dict:
        return {
            "seq": self.seq,
            "lane": self.lane,
            "boot": self.boot,
            "created_ms": self.created_ms,
            "payload": self.payload,
            "size": self.size,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "Record(%r)" % (self.to_dict(),)


def _not_implemented(self, *args) -> None:  # type: ignore[no-untyped-def]
    raise NotImplementedError("a Store backend must implement this")


async def _not_implemented_async(self, *args) -> None:  # type: ignore[no-untyped-def]
    raise NotImplementedError("a Store backend must implement this")


class Store:
    """Base class of every backend.

    The state cache and the inbox live here, in RAM, for every backend; a
    backend persists them through the ``_save_*`` hooks, which must be durable
    when they return. The outbox is the backend's own.

    Subclasses set ``backend`` (its name) and implement the methods declared
    under ``if TYPE_CHECKING`` below: ``open`` (which loads state with
    ``_restore_state``, the inbox with ``_restore_inbox`` and sets ``boot_id``
    to one more than the previous boot's), ``close``, the outbox methods,
    ``depth``, ``seq_range``, ``next_seq`` and the ``_save_*`` hooks. On the
    base class itself they raise ``NotImplementedError``.
    """

    backend = "base"

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.counters = new_counters()
        self.hlc = HLC()
        self.boot_id = 0
        self._state: dict = {}
        self._inbox: dict = {}  # command id -> expires_ms

    if TYPE_CHECKING:
        # -- the backend API (declarations: MicroPython compiles none of this) --

        async def open(self, readonly: bool = False) -> None:
            """Open or create the storage and recover it; call once before use.

            ``readonly`` (inspection, ``brickproof store``): read what is there and
            write nothing: no boot is counted, damage is reported, not repaired,
            and writes raise ``StoreError``.
            """

        async def close(self) -> None:
            """Flush and release the storage. Safe to call twice."""

        async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
            """Add a record; return its seq once durable. May raise ``StoreFullError``/``StoreWriteError``."""
            return 0

        async def read_outbox(self, limit: int, after_seq: int = 0, lanes=None) -> list:  # type: ignore[no-untyped-def]
            """Up to ``limit`` records with ``seq > after_seq``, oldest first, left in place until acked.

            ``lanes``: a tuple or list of lane names to read (others are skipped,
            not counted in ``limit``); None reads every lane. An unknown lane name
            raises ``StoreError``. Backends find the first record after
            ``after_seq`` without walking acked ones.
            """
            return []

        async def ack(self, upto_seq: int) -> int:
            """Remove every record with ``seq <= upto_seq``; return how many went."""
            return 0

        async def ack_seqs(self, seqs: list) -> int:
            """Remove the records with these seqs (absent ones are ignored); return how many went."""
            return 0

        async def compact(self) -> int:
            """Apply retention now (also done by ``append``): return telemetry samples folded away."""
            return 0

        def depth(self) -> tuple:
            """``(records, payload_bytes)`` in the outbox."""
            return (0, 0)

        def seq_range(self) -> tuple:
            """``(first, last)`` seq in the outbox, ``(None, None)`` when empty."""
            return (None, None)

        def next_seq(self) -> int:
            """The seq the next append will get."""
            return 0

        async def _save_state(self, entry: StateEntry, value_json: bytes) -> None:
            """Persist one entry (``value_json`` is its value's compact JSON)."""

        async def _save_inbox(self, command_id: str, expires_ms: int, evict: str | None) -> None:
            """Persist one new inbox id, and forget ``evict`` (if not None) in the same write."""

        async def _drop_inbox(self, command_ids: list) -> None:
            """Persist forgetting these inbox ids."""

    else:
        open = close = append = read_outbox = ack = ack_seqs = compact = _not_implemented_async
        _save_state = _save_inbox = _drop_inbox = _not_implemented_async
        depth = seq_range = next_seq = _not_implemented

    # -- state ---------------------------------------------------------------

    async def get_state(self, key: str) -> StateEntry | None:
        return self._state.get(key)

    async def load_state(self) -> dict:
        """Every key: ``{key: StateEntry}`` (a new dict; entries are shared)."""
        return dict(self._state)

    async def put_state(  # type: ignore[no-untyped-def]
        self, key: str, value, origin: str = "local", wall_ms: int | None = None, stamp: int | None = None
    ) -> StateEntry:
        """Store ``value`` (plain JSON) under ``key`` with the next version; return the new entry.

        ``stamp`` None: the store's clock stamps the entry from ``wall_ms``
        (None when wall time is unknown). A given stamp (from the cloud or a
        LAN peer) is kept as it is and the clock observes it.
        """
        check_origin(origin)
        if not isinstance(key, str) or not key:
            raise StoreError("a state key must be a non-empty string, got %r" % (key,))
        data = encode_json(value, "state %r" % (key,))
        if stamp is None:
            stamp = self.hlc.now(wall_ms)
        else:
            self.hlc.observe(stamp)
        old = self._state.get(key)
        # A decoded copy: the caller may mutate its value later.
        entry = StateEntry(key, json.loads(data), 1 if old is None else old.version + 1, origin, stamp)
        await self._save_state(entry, data)
        self._state[key] = entry
        return entry

    def _restore_state(self, entries: list) -> None:
        """Load entries read back at open and restore the clock from their stamps."""
        for entry in entries:
            self._state[entry.key] = entry
            self.hlc.observe(entry.stamp)

    # -- inbox (the code lives in device.store.inbox) --------------------------

    async def inbox_seen(self, command_id: str) -> bool:
        """True if ``command_id`` was handled and has not expired yet."""
        return command_id in self._inbox

    async def inbox_add(self, command_id: str, expires_ms: int) -> bool:
        """Remember a handled command until ``expires_ms``; False if it was already there.

        ``expires_ms`` is on whatever timeline the caller also passes to
        ``inbox_expire`` (the sync engine uses wall time). At most
        ``INBOX_MAX`` are held: the one soonest to expire makes room.
        """
        from device.store.inbox import add

        return await add(self, command_id, expires_ms)

    async def inbox_expire(self, now_ms: int) -> int:
        """Forget every command whose expiry is ``<= now_ms``; return how many."""
        from device.store.inbox import expire

        return await expire(self, now_ms)

    def _restore_inbox(self, pairs: list) -> None:
        for command_id, expires_ms in pairs:
            self._inbox[command_id] = expires_ms

    # -- inspection ------------------------------------------------------------

    def stats(self) -> dict:
        """Counters, outbox depth and seq range, boot id, state and inbox sizes, and the backend's own sections."""
        from device.store.stats import store_stats

        return store_stats(self)

    def _more_stats(self, out: dict) -> None:
        """Backends add their own sections (the log backend: flash wear)."""
        return None
