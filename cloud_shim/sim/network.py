"""The fleet's internet: one mosquitto, DNS answering for the endpoints, a fault proxy per endpoint.

    device -> DNS (FakeDnsServer: "primary.bp.sim", "secondary.bp.sim")
           -> FaultProxy of that endpoint -> mosquitto
    cloud services (ledger, shadow, commands) -> mosquitto directly

A "wrong" DNS answer points at a ``NotABroker`` listening on the endpoint's
port at another loopback address. Everything runs in the simulator's event
loop except the broker (a process) and NotABroker (a thread); the blocking
broker start/stop go to a worker thread so the devices never wait for them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import Any

from cloud_shim.broker import Mosquitto
from cloud_shim.faults.dnsserver import FakeDnsServer
from cloud_shim.faults.notabroker import NotABroker
from cloud_shim.faults.proxy import FaultProxy

ENDPOINTS = ("primary", "secondary")
LOOPBACK = "127.0.0.1"
# Modes of the scenario's "proxy" action that are a proxy mode as such ("reset" is a one-off kill).
PROXY_MODES = ("pass", "refuse", "blackhole", "half_open", "drop_pubacks")


def host_name(endpoint: str) -> str:
    return endpoint + ".bp.sim"


def fleet_broker() -> tuple[Mosquitto, str]:
    """The fleet's mosquitto (not started) and its state directory (the caller removes it)."""
    # Persistence keeps sessions and retained desired documents across a broker restart, as a
    # production broker would; the fleet reconnects with clean_session false.
    state_dir = tempfile.mkdtemp(prefix="bp-sim-broker-")
    os.chmod(state_dir, 0o777)  # mosquitto drops root for its own user
    persist = "persistence true\npersistence_location %s/\nautosave_interval 30" % state_dir
    return Mosquitto(extra_config=persist), state_dir


class SimNetwork:
    """``broker_port``: use that broker (another process owns it: a shard of a fleet), else start one."""

    def __init__(self, broker_port: int | None = None) -> None:
        self.broker: Mosquitto | None = None
        self._state_dir: str | None = None
        if broker_port is None:
            self.broker, self._state_dir = fleet_broker()
            broker_port = self.broker.port
        self.port = broker_port
        self.dns = FakeDnsServer()
        self.proxies = {name: FaultProxy(LOOPBACK, self.port) for name in ENDPOINTS}
        self.wrong: dict[str, NotABroker] = {}
        self.broker_down = False

    async def start(self) -> None:
        if self.broker is not None:
            await asyncio.to_thread(self.broker.start)
        await self.dns.serve()
        for name, proxy in self.proxies.items():
            await proxy.serve()
            self.dns.set(host_name(name), "ok", [LOOPBACK])
            self.wrong[name] = NotABroker(proxy.port)

    def endpoints(self, names: tuple[str, ...] = ENDPOINTS) -> list[dict[str, Any]]:
        """The board ``link.endpoints`` of a fleet device (plain MQTT through the proxies)."""
        out = []
        for name in names:
            out.append(
                {
                    "name": name,
                    "role": name,
                    "host": host_name(name),
                    "port": self.proxies[name].port,
                    "tls": False,
                    "addresses": [],
                }
            )
        return out

    async def apply(self, event: dict[str, Any]) -> str:
        """Do a network event (dns, proxy, broker, wifi); return what it did, for the marks."""
        do = event["do"]
        if do == "dns":
            name, mode = event["endpoint"], event["mode"]
            if mode == "ok":
                self.dns.set(host_name(name), "ok", [LOOPBACK])
            elif mode == "wrong":
                self.dns.set(host_name(name), "wrong", [self.wrong[name].addr])
            else:
                self.dns.set(host_name(name), mode)
            return "DNS %s: %s" % (name, mode)
        if do == "proxy":
            proxy, mode = self.proxies[event["endpoint"]], event["mode"]
            if mode == "reset":
                n = await proxy.akill_all(reset=True)
                return "%s: %d connections reset" % (event["endpoint"], n)
            await proxy.aset_mode(mode)
            if mode == "refuse":  # the region is down: what was open goes too (blackhole: goes silent)
                await proxy.akill_all(reset=True)
            return "%s endpoint: %s" % (event["endpoint"], mode)
        if do == "broker":
            return await self._broker(event["action"])
        if do == "wifi":
            down = event["mode"] == "down"
            for proxy in self.proxies.values():
                await proxy.aset_offline(event["devices"], down)
            return "wifi %s: %d homes" % (event["mode"], len(event["devices"]))
        raise ValueError("not a network event: %r" % (do,))

    async def _broker(self, action: str) -> str:
        if self.broker is None:
            raise ValueError("broker events need the simulator's own broker (one process, no shards)")
        if action in ("kill", "stop", "restart"):
            if not self.broker_down:
                await asyncio.to_thread(self.broker.kill if action == "kill" else self.broker.stop)
                self.broker_down = True
            return "broker " + ("stopped" if action == "restart" else action + "ed")
        if action == "start":
            if self.broker_down:
                await asyncio.to_thread(self.broker.start)
                self.broker_down = False
            return "broker started"
        raise ValueError("unknown broker action %r" % (action,))

    def connects(self) -> int:
        """TCP connections the proxies have passed on to the broker so far."""
        return sum(p.counters["upstream_connects"] for p in self.proxies.values())

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.aclose()
        await self.dns.aclose()
        for wrong in self.wrong.values():
            wrong.close()
        if self.broker is not None:
            await asyncio.to_thread(self.broker.close)
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
