"""The outage matrix's internet: one mosquitto, one fake DNS, one fault lane per fault kind.

    device of lane L -> DNS "<L>.bp.sim" (FakeDnsServer) -> FaultProxy of L -> mosquitto
    ledger -> mosquitto directly

Every lane has its own proxy and DNS name, so all fault kinds run side by side
on one clock and one broker; a lane's devices see only their own fault. The
``tls-stall`` lane's proxy fronts mosquitto's TLS listener (the devices speak
TLS to it), so black-holing it stalls a real TLS handshake. Building blocks are
the simulator's (``cloud_shim.faults``, ``cloud_shim.sim.network``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cloud_shim.broker import BrokerTls, Mosquitto
from cloud_shim.faults.dnsserver import FakeDnsServer
from cloud_shim.faults.notabroker import NotABroker
from cloud_shim.faults.proxy import FaultProxy
from cloud_shim.sim.network import LOOPBACK

RESET_AFTER_BYTES = 40  # inside the device's CONNECT (about 70 bytes): a reset mid-packet
DATA_LIMIT_BYTES = 300  # CONNECT, SUBSCRIBEs and a publish or two, then FIN
LINGER_BYTES = 30
LINGER_MS = 3000

# fault kind -> what "offline" means for its lane. ``dns``: the fake DNS answers so;
# ``proxy``: the proxy's mode (and its parameters); ``kill``: open connections are reset
# when the fault starts (else they live on into the fault, as a black hole's do).
FAULTS: dict[str, dict[str, Any]] = {
    "dns-nxdomain": {"dns": "nxdomain", "kill": True},
    "dns-empty": {"dns": "empty", "kill": True},
    "dns-servfail": {"dns": "servfail", "kill": True},
    "dns-timeout": {"dns": "timeout", "kill": True},
    "dns-wrong": {"dns": "wrong", "kill": True},
    "refused": {"proxy": ("refuse", {}), "kill": True},
    "blackhole": {"proxy": ("blackhole", {}), "kill": False},
    "reset-mid-packet": {"proxy": ("reset_after", {"n": RESET_AFTER_BYTES}), "kill": False},
    "slow-close": {"proxy": ("linger_close", {"n": LINGER_BYTES, "ms": LINGER_MS}), "kill": True},
    "connect-timeout": {"proxy": ("stall", {}), "kill": True},
    "slicer": {"proxy": ("slicer", {}), "kill": True},
    "data-limit": {"proxy": ("limit", {"n": DATA_LIMIT_BYTES}), "kill": False},
    "drop-pubacks": {"proxy": ("drop_pubacks", {}), "kill": False},
    "tls-stall": {"proxy": ("blackhole", {}), "kill": True, "tls": True},
}


def host_name(lane: str) -> str:
    return lane + ".bp.sim"


class Lane:
    """One fault kind: its proxy, its DNS name, a wrong address for ``dns-wrong``."""

    def __init__(self, name: str, proxy: FaultProxy, dns: FakeDnsServer) -> None:
        self.name = name
        self.spec = FAULTS[name]
        self.proxy = proxy
        self.dns = dns
        self.wrong: NotABroker | None = None
        self.faulty = False

    def endpoint(self) -> dict[str, Any]:
        return {
            "name": "primary",
            "role": "primary",
            "host": host_name(self.name),
            "port": self.proxy.port,
            "tls": bool(self.spec.get("tls")),
            "addresses": [],
        }

    async def fault(self, on: bool) -> None:
        """Start (``on``) or end the lane's fault."""
        self.faulty = on
        spec = self.spec
        if "dns" in spec:
            mode = spec["dns"] if on else "ok"
            if mode == "ok":
                self.dns.set(host_name(self.name), "ok", [LOOPBACK])
            elif mode == "wrong":
                assert self.wrong is not None
                self.dns.set(host_name(self.name), "wrong", [self.wrong.addr])
            else:
                self.dns.set(host_name(self.name), mode)
        if "proxy" in spec:
            mode, params = spec["proxy"] if on else ("pass", {})
            await self.proxy.aset_mode(mode, **params)
        if on and spec.get("kill"):
            await self.proxy.akill_all(reset=True)


class OutageNet:
    def __init__(self, lanes: list[str]) -> None:
        self._dir = tempfile.mkdtemp(prefix="bp-outage-")
        self.tls_ca: str | None = None
        tls = None
        if any(FAULTS[name].get("tls") for name in lanes):
            tls = self._pki([host_name(name) for name in lanes if FAULTS[name].get("tls")])
        os.chmod(self._dir, 0o755)
        self.broker = Mosquitto(tls=tls)
        self.dns = FakeDnsServer()
        self.lanes: dict[str, Lane] = {}
        for name in lanes:
            self.lanes[name] = Lane(name, FaultProxy(LOOPBACK, 0), self.dns)

    def _pki(self, hosts: list[str]) -> BrokerTls:
        from tools.provision import provision

        bundle = provision(Path(self._dir) / "pki", ["tls-stall-0000"], hosts)  # needs one device
        for path in Path(self._dir).rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # mosquitto may drop root for its own user
        self.tls_ca = str(bundle.ca)
        return BrokerTls(bundle.ca, bundle.broker_cert, bundle.broker_key, require_certificate=False)

    async def start(self) -> None:
        await asyncio.to_thread(self.broker.start)
        await self.dns.serve()
        for lane in self.lanes.values():
            tls = lane.spec.get("tls")
            port = self.broker.tls_port if tls else self.broker.port
            assert port is not None
            lane.proxy.upstream = (LOOPBACK, port)
            await lane.proxy.serve()
            self.dns.set(host_name(lane.name), "ok", [LOOPBACK])
            if lane.spec.get("dns") == "wrong":
                lane.wrong = NotABroker(lane.proxy.port)

    async def fault(self, on: bool) -> None:
        for lane in self.lanes.values():
            await lane.fault(on)

    def connects(self) -> dict[str, int]:
        return {name: lane.proxy.counters["upstream_connects"] for name, lane in self.lanes.items()}

    async def close(self) -> None:
        for lane in self.lanes.values():
            await lane.proxy.aclose()
            if lane.wrong is not None:
                lane.wrong.close()
        await self.dns.aclose()
        await asyncio.to_thread(self.broker.close)
        shutil.rmtree(self._dir, ignore_errors=True)
