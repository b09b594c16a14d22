"""Freshness of signed LAN requests within one boot (pure; ``device.lan.token`` persists it).

A signed request carries the device's boot id and a timestamp on the device's
monotonic clock, so no NTP is needed. It is fresh when:

* its boot is this boot (a captured request dies with the boot it was made in);
* its timestamp is within ``window_ms`` of the device's clock, either way;
* its timestamp is above ``floor`` and its nonce was not seen yet.

Nonces are remembered until their timestamp leaves the window (then the window
check refuses a replay by itself). At most ``max_nonces`` are held: to make room
the oldest is forgotten and ``floor`` rises to its timestamp, so what was
forgotten can never pass again (a flood only makes older-stamped requests fail).
"""

MAX_NONCES = 64


class ReplayGuard:
    def __init__(self, boot: int, window_ms: int, max_nonces: int = MAX_NONCES) -> None:
        self.boot = boot
        self.window_ms = window_ms
        self.max_nonces = max_nonces
        self.floor = -1  # timestamps at or below are refused
        self.seen: dict = {}  # nonce -> ts

    def check(self, boot: int, ts: int, nonce: str, now_ms: int) -> str | None:
        """``None`` when fresh, else the refusal code: ``wrong_boot``, ``skewed`` or ``replayed``."""
        if boot != self.boot:
            return "wrong_boot"
        if ts < now_ms - self.window_ms or ts > now_ms + self.window_ms:
            return "skewed"
        if ts <= self.floor or nonce in self.seen:
            return "replayed"
        return None

    def record(self, ts: int, nonce: str, now_ms: int) -> None:
        """Remember an accepted request's nonce (after ``check`` said fresh)."""
        oldest = now_ms - self.window_ms
        seen = self.seen
        for old in [n for n in seen if seen[n] < oldest]:
            del seen[old]
        while len(seen) >= self.max_nonces:
            first = None
            for n in seen:
                if first is None or seen[n] < seen[first]:
                    first = n
            if seen[first] > self.floor:
                self.floor = seen[first]
            del seen[first]
        seen[nonce] = ts

    def to_json(self) -> dict:
        return {"boot": self.boot, "floor": self.floor, "seen": [[n, self.seen[n]] for n in self.seen]}

    def restore(self, saved, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        """Take back what ``to_json`` saved (the state cache); another boot's state is dropped.

        A saved value that does not read back (damaged) closes everything up to now:
        only requests stamped later can pass.
        """
        if saved is None:
            return
        try:
            if saved["boot"] != self.boot:
                return
            floor = int(saved["floor"])
            seen = {}
            for pair in saved["seen"]:
                seen[str(pair[0])] = int(pair[1])
        except (KeyError, TypeError, ValueError, IndexError):
            self.floor = now_ms
            self.seen = {}
            return
        self.floor = floor
        self.seen = seen
