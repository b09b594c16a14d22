"""Last-known-good broker addresses, kept on disk in the store's state cache.

When DNS for an endpoint fails (NXDOMAIN, an empty answer, SERVFAIL, a
timeout) the link dials the addresses that last worked, keeping the host
name for TLS SNI and certificate checks. An address becomes "good" only when
a connection through it reached *our* broker (TLS verified, a valid CONNACK):
a wrong DNS answer never overwrites the book.

Entries live under the private state key ``_link.lkg.<endpoint>`` (private
keys, starting with ``_``, are never reported to the cloud) as
``{"addrs": [ip, ...], "wall_ms": when}``, most recently good first.
"""

from device.errors import StoreError
from device.log import get_logger

KEY_PREFIX = "_link.lkg."
MAX_ADDRS = 4

_log = get_logger("addrbook")


class AddrBook:
    def __init__(self, store, clock) -> None:  # type: ignore[no-untyped-def]
        self._store = store
        self._clock = clock
        self.writes = 0

    async def known_good(self, endpoint: str) -> list:
        entry = await self._store.get_state(KEY_PREFIX + endpoint)
        if entry is None or not isinstance(entry.value, dict):
            return []
        addrs = entry.value.get("addrs")
        return list(addrs) if isinstance(addrs, list) else []

    async def mark_good(self, endpoint: str, addr: str) -> None:
        """Put ``addr`` first; written only when the order changes (flash wear)."""
        old = await self.known_good(endpoint)
        new = [addr]
        for a in old:
            if a != addr and len(new) < MAX_ADDRS:
                new.append(a)
        if new == old:
            return
        try:
            await self._store.put_state(
                KEY_PREFIX + endpoint, {"addrs": new, "wall_ms": self._clock.wall_ms()}, "local", self._clock.wall_ms()
            )
            self.writes += 1
        except StoreError as exc:
            # A full store must not stop the link: the address is still good in RAM this time.
            _log.warning("could not save last-known-good %s for %s: %s", addr, endpoint, exc)

    async def forget(self, endpoint: str, addr: str) -> None:
        """Drop an address that turned out not to be our broker."""
        old = await self.known_good(endpoint)
        if addr not in old:
            return
        new = [a for a in old if a != addr]
        try:
            await self._store.put_state(
                KEY_PREFIX + endpoint, {"addrs": new, "wall_ms": self._clock.wall_ms()}, "local", self._clock.wall_ms()
            )
            self.writes += 1
        except StoreError as exc:
            _log.warning("could not forget %s for %s: %s", addr, endpoint, exc)
