"""The connectivity state machine and its outage receipts (pure: the caller passes the time).

States::

    OFFLINE     no connection; waiting out the backoff before the next attempt
    RESOLVING   asking DNS for an endpoint's addresses (under a time budget)
    CONNECTING  dialling a candidate address (TCP, TLS, CONNECT/CONNACK)
    ONLINE      connected to the primary endpoint at an address DNS gave this time
    DEGRADED    connected, but on a fallback: a last-known-good or seed address
                because DNS failed, or a secondary endpoint

Allowed moves (anything else raises ``ValueError``: a bug in the link)::

    OFFLINE    -> RESOLVING | CONNECTING
    RESOLVING  -> CONNECTING | OFFLINE
    CONNECTING -> ONLINE | DEGRADED | CONNECTING | RESOLVING | OFFLINE
    ONLINE     -> OFFLINE | DEGRADED
    DEGRADED   -> OFFLINE | ONLINE

An *outage* runs from the moment the device is not connected (boot counts)
until it is connected again. Its receipt records when it started and ended,
the first cause and the last one, how many attempts it took, and how the
outbox fared (depth at start and end, records compacted meanwhile), so the
owner and the cloud can see what the device lived through.
"""

OFFLINE = "offline"
RESOLVING = "resolving"
CONNECTING = "connecting"
ONLINE = "online"
DEGRADED = "degraded"

STATES = (OFFLINE, RESOLVING, CONNECTING, ONLINE, DEGRADED)
CONNECTED = (ONLINE, DEGRADED)

_ALLOWED = {
    OFFLINE: (RESOLVING, CONNECTING),
    RESOLVING: (CONNECTING, OFFLINE),
    CONNECTING: (ONLINE, DEGRADED, CONNECTING, RESOLVING, OFFLINE),
    ONLINE: (OFFLINE, DEGRADED),
    DEGRADED: (OFFLINE, ONLINE),
}

HISTORY_LEN = 32


class LinkState:
    """Where the link is, how it got there, and the outage in progress.

    ``move(state, now_ms, cause, depth, compacted)`` returns the receipt of an
    outage that just ended (a dict), else None. ``depth`` is the outbox record
    count and ``compacted`` the store's running ``compacted`` counter; the
    receipt reports the difference over the outage.
    """

    def __init__(self, now_ms: int, depth: int = 0, compacted: int = 0, wall_ms=None) -> None:  # type: ignore[no-untyped-def]
        self.state = OFFLINE
        self.since_ms = now_ms
        self.transitions = 0
        self.counts: dict = {}
        for name in STATES:
            self.counts[name] = 0
        self.counts[OFFLINE] = 1
        self.causes: dict = {}
        self.history: list = [(now_ms, OFFLINE, "boot")]
        self.outages = 0
        self.outage: dict | None = self._open(now_ms, "boot", depth, compacted, wall_ms)
        self.last_receipt: dict | None = None

    @staticmethod
    def _open(now_ms: int, cause: str, depth: int, compacted: int, wall_ms) -> dict:  # type: ignore[no-untyped-def]
        return {
            "start_ms": now_ms,
            "start_wall_ms": wall_ms,
            "first_cause": cause,
            "last_cause": cause,
            "attempts": 0,
            "depth_start": depth,
            "compacted_start": compacted,
        }

    def connected(self) -> bool:
        return self.state in CONNECTED

    def move(self, state: str, now_ms: int, cause: str = "", depth: int = 0, compacted: int = 0, wall_ms=None):  # type: ignore[no-untyped-def]
        old = self.state
        if state not in _ALLOWED.get(old, ()):
            raise ValueError("link state %s -> %s is not allowed" % (old, state))
        self.state = state
        self.since_ms = now_ms
        self.transitions += 1
        self.counts[state] += 1
        if cause:
            self.causes[cause] = self.causes.get(cause, 0) + 1
        self.history.append((now_ms, state, cause))
        if len(self.history) > HISTORY_LEN:
            self.history.pop(0)
        outage = self.outage
        if state == CONNECTING and outage is not None:
            outage["attempts"] += 1
        if outage is not None and cause and state in (OFFLINE, CONNECTING, RESOLVING):
            outage["last_cause"] = cause
        if state in CONNECTED and old not in CONNECTED and outage is not None:
            self.outage = None
            self.outages += 1
            receipt = {
                "type": "outage",
                "start_ms": outage["start_ms"],
                "end_ms": now_ms,
                "duration_ms": now_ms - outage["start_ms"],
                "start_wall_ms": outage["start_wall_ms"],
                "end_wall_ms": wall_ms,
                "cause": outage["first_cause"],
                "last_cause": outage["last_cause"],
                "attempts": outage["attempts"],
                "outbox_depth_start": outage["depth_start"],
                "outbox_depth_end": depth,
                "compacted": compacted - outage["compacted_start"],
                "via": state,
            }
            self.last_receipt = receipt
            return receipt
        if state == OFFLINE and old in CONNECTED:
            self.outage = self._open(now_ms, cause or "lost", depth, compacted, wall_ms)
        return None

    def outage_ms(self, now_ms: int) -> int:
        """How long the current outage has lasted (0 when connected)."""
        if self.outage is None:
            return 0
        return now_ms - self.outage["start_ms"]

    def stats(self, now_ms: int) -> dict:
        return {
            "state": self.state,
            "for_ms": now_ms - self.since_ms,
            "transitions": self.transitions,
            "entered": dict(self.counts),
            "causes": dict(self.causes),
            "outages": self.outages,
            "outage_ms": self.outage_ms(now_ms),
            "last_receipt": self.last_receipt,
        }
