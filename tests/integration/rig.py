"""A whole device on a real broker, behind the fault layer, for end-to-end link tests.

    device (thermostat + a record producer, sqlite store, VirtualClock paced at SPEED x)
      -> DNS: FakeDnsServer ("broker.test")
      -> TCP: FaultProxy -> mosquitto
    LedgerSubscriber on the broker directly: the cloud's view.

Simulated time is paced to real time (``SPEED``): the control loop ticks
through every fault, and the test checks afterwards that it never stalled.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cloud_shim.broker import Mosquitto
from cloud_shim.faults.dnsserver import FakeDnsServer
from cloud_shim.faults.notabroker import NotABroker
from cloud_shim.faults.proxy import FaultProxy
from cloud_shim.ledger import DeviceReport, LedgerSubscriber
from device.board import load_board
from device.boot import Device, build_env
from device.clock import VirtualClock
from device.config import configure_apps
from device.hlc import make_stamp
from device.link.topics import desired_topic

REPO = Path(__file__).resolve().parents[2]
HOST = "broker.test"
SPEED = 5.0  # simulated seconds per real second
PRODUCE_EVERY_MS = 100  # simulated: extra telemetry besides the thermostat's own
# Link settings for tests: faults noticed and recovered from in a few seconds, no long-outage slots.
FAST_LINK = {
    "connect_timeout_ms": 1500,
    "keepalive_s": 5,
    "backoff_base_ms": 200,
    "backoff_cap_ms": 2000,
    "healthy_ms": 5000,
    "long_outage_ms": 10**8,
    "spread_ms": 0,
    "ack_timeout_ms": 3000,
}


class Rig:
    def __init__(self, tmp_path: Path, broker: Mosquitto, device_id: str, client: str = "paho") -> None:
        self.broker = broker
        self.device_id = device_id
        self._closers: list[Any] = []
        try:
            self.proxy = FaultProxy("127.0.0.1", broker.port)
            self.proxy.start()
            self._closers.append(self.proxy.stop)
            self.dns = FakeDnsServer()
            self.dns.start()
            self._closers.append(self.dns.stop)
            self.dns.set(HOST, "ok", ["127.0.0.1"])
            self.wrong = NotABroker(self.proxy.port)  # where a "wrong" DNS answer points
            self._closers.append(self.wrong.close)
            self.ledger = LedgerSubscriber("127.0.0.1", broker.port, [device_id], client_id="ledger-" + device_id)
            self.ledger.start()
            self._closers.append(lambda: self.ledger.stop())  # noqa: PLW0108 - a test may replace self.ledger
        except BaseException:
            self.close()
            raise
        board = load_board(str(REPO / "boards/host_sim.json"))
        board["storage"] = dict(board["storage"], backend="sqlite", path=str(tmp_path / "store.sqlite"), fsync=False)
        link = board["link"]
        link["endpoints"] = [
            {"name": "primary", "role": "primary", "host": HOST, "port": self.proxy.port, "tls": False, "addresses": []}
        ]
        link.update(FAST_LINK, client=client, dns_servers=[self.dns.address], dns_budget_ms=300)
        self.board = board
        self.app_settings = configure_apps(board, ["thermostat"])
        self.device: Device | None = None
        self.clock: VirtualClock | None = None
        self.produced = 0
        self.tick_gaps_ms: list[int] = []

    # -- running -------------------------------------------------------------------

    async def start(self) -> None:
        env, world = build_env(self.board, SPEED, with_link=True)
        self.clock = env.clock
        self.device = Device(env, self.app_settings, world)
        self.device.attach_link(self.device_id)
        await self.device.start()
        self.device.supervisor.spawn("producer", self._produce)
        self.device.supervisor.spawn("tick_watch", self._watch_ticks)

    async def _produce(self) -> None:
        assert self.clock is not None and self.device is not None
        n = 0
        while True:
            await self.clock.sleep_ms(PRODUCE_EVERY_MS)
            n += 1
            await self.device.env.store.append("telemetry", {"n": n, "pad": "x" * 40}, self.clock.now_ms())
            if n % 25 == 0:
                await self.device.env.store.append("event", {"type": "test", "n": n}, self.clock.now_ms())
            self.produced = n

    async def _watch_ticks(self) -> None:
        """The largest simulated gap between two control ticks, sampled every tick period."""
        assert self.clock is not None and self.device is not None
        app = self.device.apps[0]
        last_ticks, last_ms = app.ticks, self.clock.now_ms()
        while True:
            await self.clock.sleep_ms(app.settings["tick_ms"])
            now = self.clock.now_ms()
            if app.ticks != last_ticks:
                last_ticks, last_ms = app.ticks, now
            else:
                self.tick_gaps_ms.append(now - last_ms)

    async def run_for(self, sim_ms: int) -> None:
        assert self.clock is not None
        await self.clock.run_until(self.clock.now_ms() + sim_ms)

    async def run_until(self, predicate: Any, timeout_s: float, step_ms: int = 500) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            await self.run_for(step_ms)
        return bool(predicate())

    async def stop(self) -> None:
        if self.device is not None:
            await self.device.stop()

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:  # teardown goes on
                pass

    # -- views -----------------------------------------------------------------------

    @property
    def link_state(self) -> str:
        assert self.device is not None and self.device.link is not None
        return self.device.link.state.state

    def connected(self) -> bool:
        return self.link_state in ("online", "degraded")

    def outbox_depth(self) -> int:
        assert self.device is not None
        return int(self.device.env.store.depth()[0])

    def created(self) -> range:
        assert self.device is not None
        return range(1, self.device.env.store.next_seq())

    def delivered_all(self) -> bool:
        return self.outbox_depth() == 0 and self.ledger.ledger.count(self.device_id) >= len(self.created())

    def report(self) -> DeviceReport:
        return self.ledger.ledger.report(self.device_id, self.created())

    def publish_desired(self, state: dict[str, Any], version: int) -> None:
        # The cloud stamps with the same (simulated) wall time the device lives in.
        assert self.clock is not None
        stamp = make_stamp(self.clock.wall_ms() or 0)
        doc = {"version": version, "state": {k: {"value": v, "stamp": stamp} for k, v in state.items()}}
        self.ledger.publish(desired_topic(self.device_id), json.dumps(doc).encode(), qos=1, retain=True)

    def reported_value(self, key: str) -> Any:
        doc = self.ledger.ledger.reported.get(self.device_id) or {}
        entry = doc.get("state", {}).get(key)
        return None if entry is None else entry.get("value")


async def settle(rig: Rig, timeout_s: float = 60.0) -> None:
    """Run until the link is up and every record created so far is in the ledger."""
    ok = await rig.run_until(lambda: rig.connected() and rig.delivered_all(), timeout_s)
    assert ok, (rig.link_state, rig.outbox_depth(), len(rig.created()), rig.ledger.ledger.count(rig.device_id))
