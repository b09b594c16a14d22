"""Failure rate limit for LAN auth (pure): a GCRA bucket per peer.

Each failure pushes the peer's "theoretical arrival time" ``refill_ms`` ahead;
after ``burst`` failures in a row the peer is blocked, then allowed one try
per ``refill_ms``.
It holds one int per peer address and nothing else: no token, no key, nothing
sensitive, and nothing persisted (a reboot forgets it). At most ``max_peers``
are tracked; past that, new peers share one bucket.
"""

SHARED = "*"


class FailureLimiter:
    def __init__(self, burst: int = 20, refill_ms: int = 3000, max_peers: int = 16) -> None:
        self.burst = burst
        self.refill_ms = refill_ms
        self.max_peers = max_peers
        self._tat: dict = {}  # peer -> ms

    def _key(self, peer, now_ms: int) -> str:  # type: ignore[no-untyped-def]
        if isinstance(peer, (tuple, list)) and peer:
            peer = peer[0]  # (host, port): a new port per connection must not mean a fresh bucket
        key = SHARED if peer is None else str(peer)
        tat = self._tat
        if key not in tat and len(tat) >= self.max_peers:
            for old in [k for k in tat if tat[k] <= now_ms]:  # idle peers are forgotten
                del tat[old]
            if len(tat) >= self.max_peers:
                key = SHARED
        return key

    def retry_after_ms(self, peer, now_ms: int) -> int:  # type: ignore[no-untyped-def]
        """0 when ``peer`` may try; else how long until it may."""
        tat = self._tat.get(self._key(peer, now_ms), now_ms)
        over = tat - now_ms - (self.burst - 1) * self.refill_ms  # ``burst`` failures fill the bucket
        return over if over > 0 else 0

    def fail(self, peer, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        key = self._key(peer, now_ms)
        tat = self._tat.get(key, now_ms)
        self._tat[key] = (tat if tat > now_ms else now_ms) + self.refill_ms
