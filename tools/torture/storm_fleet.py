"""The reconnect storm's virtual fleet: the real ``device.link.link.Link`` per device, fake network.

Each device is the real ``Link`` (its backoff, full jitter and long-outage
phase spread are ``device.core.backoff``'s, called by the link's own loop) on
a shared ``VirtualClock`` running as fast as the CPU allows, with its own RAM
store and ``Rand``. Only the network is fake: ``StormClient.connect`` fails
while the outage lasts and otherwise succeeds at once; ``StormEngine.serve``
holds the connection until the outage starts. Every connect attempt is logged
with its simulated time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from device.clock import VirtualClock
from device.env import Env
from device.link.link import Link
from device.linkerrors import ConnectError
from device.rand import Rand
from device.store.memory import MemoryStore

BROKER = "10.0.0.1"  # an address literal: no DNS in the storm
STORE_BYTES = 8192


class Network:
    """Up or down; the attempts seen, as ``(t_ms, device index, succeeded)``."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.up = True
        self.attempts: list[tuple[int, int, bool]] = []
        self.dropped = asyncio.Event()  # set when the outage starts: every served link returns

    def start_outage(self) -> None:
        self.up = False
        self.dropped.set()

    def end_outage(self) -> None:
        self.up = True
        self.dropped = asyncio.Event()


class StormClient:
    def __init__(self, net: Network, index: int) -> None:
        self.net = net
        self.index = index
        self.closed: str | None = "new"

    async def connect(self, addr: str, port: int, host: str) -> bool:
        ok = self.net.up
        self.net.attempts.append((self.net.clock.now_ms(), self.index, ok))
        if not ok:
            raise ConnectError("connect to %s:%d refused (outage)" % (addr, port), 111, "connect")
        self.closed = None
        return False

    async def close(self) -> None:
        self.closed = "closed"

    def stats(self) -> dict[str, Any]:
        return {}


class StormEngine:
    def __init__(self, net: Network) -> None:
        self.net = net

    async def serve(self, client: StormClient, rate_limited: bool) -> str:
        await self.net.dropped.wait()
        return "closed"

    def stats(self) -> dict[str, Any]:
        return {}


def device_id(index: int) -> str:
    return "storm-%05d" % index


async def build_links(n: int, cfg: dict[str, Any], clock: VirtualClock, net: Network, seed: int) -> list[Link]:
    endpoint = {"name": "primary", "role": "primary", "host": BROKER, "port": 1883, "tls": False, "addresses": []}
    link_cfg = dict(cfg, endpoints=[endpoint])
    links = []
    for i in range(n):
        store = MemoryStore(budget_bytes=STORE_BYTES)
        await store.open()
        env = Env(clock, store, None, Rand(seed * 1_000_003 + i + 1))
        links.append(Link(env, link_cfg, device_id(i), StormEngine(net), lambda ep, i=i: StormClient(net, i), None))
    return links
