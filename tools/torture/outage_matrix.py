"""``outage-matrix``: real devices through offline/online schedules, one fault kind per lane, counted exactly.

Per schedule (``5/5 x5``: 5 simulated minutes offline, 5 online, five times)
one run: every fault kind of ``outage_net.FAULTS`` is a lane with its own
proxy and DNS name and ``devices`` real devices (``cloud_shim.sim.fleet``:
Device + Link + SyncEngine, thermostat app, RAM store) on one shared
``VirtualClock`` and one real mosquitto. After one online minute every lane's
fault goes on and off as the schedule says; then the fleet drains. When every
outbox is empty, each device's records ``1 .. next_seq - 1`` (seqs are per
device; each record names its boot) are counted against the cloud's ledger:

* ``lost``: expected, neither delivered nor folded into a delivered aggregate
  (a record still in an outbox when the drain bound ran out counts as lost)
* ``duplicated``: one (device, seq) delivered with different content (boot,
  time or payload): two records under one identity. Plain QoS 1 redeliveries
  of the same record are absorbed by the cloud's dedupe (``redelivered``)
* ``seq_gaps``: holes in a device's delivered seqs; ``out_of_order``
* ``control_gaps``: a control tick more than two periods late (the app's ``TickMeter``)

Tick latency (real ms from release to end of a tick) is printed per phase,
``fault`` vs ``online``; never a goal. The link's timeouts are real time and
are shortened (keepalive 5 s, connect 1.5 s, PUBACK 3 s) so that a fault of a
few real seconds is noticed; backoff runs on the simulated clock.
"""

from __future__ import annotations

import asyncio
import copy
import io
import time
from typing import IO, Any

from cloud_shim.ledger import Ledger, LedgerSubscriber
from cloud_shim.sim.fleet import SimFleet
from cloud_shim.sim.fleetlog import FleetLog
from device.clock import VirtualClock
from tools.torture.outage_net import FAULTS, OutageNet

NAME = "outage-matrix"
SUMMARY = "real devices through offline/online schedules x 14 fault kinds; every record exactly once"
MINUTE_MS = 60_000
START_WALL_MS = 1763856000000  # 2025-11-23T00:00Z
# (offline minutes, online minutes, times)
SCHEDULES = {
    "5/5x5": (5, 5, 5),
    "10/10x3": (10, 10, 3),
    "15/15x3": (15, 15, 3),
    "30/30x2": (30, 30, 2),
    "5/20x3": (5, 20, 3),
}
SIZES: dict[str, dict[str, Any]] = {
    "ci": {"schedules": [("5/5x1", (5, 5, 1))], "devices": 2, "speed": 30.0, "drain_real_s": 20.0},
    "long": {"schedules": list(SCHEDULES.items()), "devices": 3, "speed": 30.0, "drain_real_s": 60.0},
}
WARMUP_MS = MINUTE_MS
LINK = {
    "keepalive_s": 5,
    "connect_timeout_ms": 1500,
    "ack_timeout_ms": 3000,
    "dns_budget_ms": 300,
    "backoff_base_ms": 1000,
    "backoff_cap_ms": 60_000,
    "healthy_ms": 30_000,
}
TELEMETRY_MS = 20_000  # more records per simulated minute than the fleet board's one a minute
STEP_MS = 10_000  # the driver's step in simulated time


class MatrixFleet(SimFleet):
    """A fleet lane: the simulator's fleet with more telemetry, and an optional hook per booted device."""

    device_hook: Any = None

    def _board(self, app: str, index: int) -> dict[str, Any]:
        board = super()._board(app, index)
        board["apps"][app]["telemetry_ms"] = TELEMETRY_MS
        return board

    def _boot(self, board: dict[str, Any], spec: dict[str, Any], store: Any = None) -> Any:
        device = super()._boot(board, spec, store)
        if self.device_hook is not None:
            self.device_hook(device)
        return device


class Phases:
    """Tick figures per phase (``fault`` / ``online``), from the meters' running totals."""

    def __init__(self) -> None:
        self.totals = {p: {"ticks": 0, "late_ms_total": 0, "max_ms": 0, "slow": 0} for p in ("fault", "online")}
        self._seen = {"ticks": 0, "late_ms_total": 0, "slow": 0}

    def cut(self, phase: str, meters: list[Any]) -> None:
        now = {key: sum(getattr(m, key) for m in meters) for key in self._seen}
        row = self.totals[phase]
        for key in self._seen:
            row[key] += now[key] - self._seen[key]
        row["max_ms"] = max([row["max_ms"]] + [m.late_ms_max for m in meters])
        for meter in meters:
            meter.late_ms_max = 0
        self._seen = now

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for phase, row in self.totals.items():
            out["tick_%s_mean_ms" % phase] = round(row["late_ms_total"] / row["ticks"], 1) if row["ticks"] else 0
            out["tick_%s_max_ms" % phase] = row["max_ms"]
            out["tick_%s_count" % phase] = row["ticks"]
        return out


class MatrixRun:
    """One schedule, every lane at once."""

    def __init__(
        self,
        schedule: tuple[int, int, int],
        lanes: list[str],
        devices: int,
        speed: float,
        seed: int,
        drain_real_s: float,
        device_hook: Any = None,
    ) -> None:
        self.schedule = schedule
        self.devices = devices
        self.seed = seed
        self.drain_real_s = drain_real_s
        self.device_hook = device_hook
        self.clock = VirtualClock(speed=speed)
        self.clock.set_wall_ms(START_WALL_MS)
        self.net = OutageNet(lanes)
        self.ledger = Ledger(clock_ms=lambda: self.clock.wall_ms() or 0)
        self.sub: LedgerSubscriber | None = None
        self.fleets: dict[str, MatrixFleet] = {}
        self.phases = Phases()
        self.drained = False

    def members(self) -> list[Any]:
        return [m for fleet in self.fleets.values() for m in fleet.members]

    def meters(self) -> list[Any]:
        return [m for member in self.members() for app in member.device.apps if (m := getattr(app, "meter", None))]

    async def run(self) -> dict[str, Any]:
        asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
        try:
            await self._start()
            await self._drive()
            return await self._count()
        finally:
            await self._stop()

    async def _start(self) -> None:
        await self.net.start()
        assert self.net.broker.port is not None
        self.sub = LedgerSubscriber(
            "127.0.0.1",
            self.net.broker.port,
            None,
            client_id="om-ledger-%d" % id(self),
            ledger=self.ledger,
            persistent=True,
        )
        await asyncio.to_thread(self.sub.start)
        for index, (name, lane) in enumerate(self.net.lanes.items()):
            specs = [{"id": "%s-%04d" % (name, i), "app": "thermostat", "region": "home"} for i in range(self.devices)]
            link: dict[str, Any] = copy.deepcopy(LINK)
            if lane.spec.get("tls"):
                link["tls"] = {"ca": self.net.tls_ca}
            fleet = MatrixFleet(specs, self.clock, [lane.endpoint()], self.net.dns.address, link, self.seed + index)
            fleet.device_hook = self.device_hook
            await fleet.start()
            self.fleets[name] = fleet

    async def _drive(self) -> None:
        off_min, on_min, times = self.schedule
        await self._run_for(WARMUP_MS)
        self.phases.cut("online", self.meters())
        for _ in range(times):
            await self.net.fault(True)
            await self._run_for(off_min * MINUTE_MS)
            self.phases.cut("fault", self.meters())
            await self.net.fault(False)
            await self._run_for(on_min * MINUTE_MS)
            self.phases.cut("online", self.meters())
        deadline = time.monotonic() + self.drain_real_s
        while time.monotonic() < deadline:
            if all(m.store.depth()[0] == 0 for m in self.members()):
                self.drained = True
                return
            await self._run_for(STEP_MS)

    async def _run_for(self, ms: int) -> None:
        end = self.clock.now_ms() + ms
        while self.clock.now_ms() < end:
            await self.clock.run_until(min(end, self.clock.now_ms() + STEP_MS))

    async def _count(self) -> dict[str, Any]:
        made = {m.id: m.store.next_seq() - 1 for m in self.members()}
        gaps = sum(meter.gaps for meter in self.meters())
        self.phases.cut("online", self.meters())
        await asyncio.to_thread(self._settle, made)
        fig = {
            "expected": 0,
            "matched": 0,
            "lost": 0,
            "duplicated": 0,
            "redelivered": 0,
            "seq_gaps": 0,
            "out_of_order": 0,
            "control_gaps": gaps,
            "undrained": 0,
        }
        per_lane: dict[str, dict[str, int]] = {}
        for name, fleet in self.fleets.items():
            lane = per_lane.setdefault(name, {"lost": 0, "duplicated": 0, "connects": 0})
            lane["connects"] = self.net.lanes[name].proxy.counters["upstream_connects"]
            # a fault that bit forced every device to connect again at least once
            fig["quiet_kinds"] = fig.get("quiet_kinds", 0) + (lane["connects"] < 2 * len(fleet.members))
            for member in fleet.members:
                expected = range(1, made[member.id] + 1)
                report = self.ledger.report(member.id, expected)
                lost = len(report.lost or [])
                fig["expected"] += len(expected)
                fig["matched"] += len(expected) - lost
                fig["lost"] += lost
                fig["duplicated"] += len(report.conflicts)
                fig["redelivered"] += report.duplicates
                fig["seq_gaps"] += len(report.gaps)
                fig["out_of_order"] += len(report.order_violations)
                fig["undrained"] += member.store.depth()[0]
                lane["lost"] += lost
                lane["duplicated"] += len(report.conflicts)
        fig["lanes"] = per_lane
        fig.update(self.phases.figures())
        return fig

    def _settle(self, made: dict[str, int]) -> None:
        """Wait (bounded) until the ledger accounts for every record made, or stops changing."""

        def complete(ledger: Ledger) -> bool:
            return all(ledger.count(dev) >= n for dev, n in made.items())

        self.ledger.wait_for(complete, 5.0)

    async def _stop(self) -> None:
        for fleet in self.fleets.values():
            await fleet.stop()
        if self.sub is not None:
            await asyncio.to_thread(self.sub.stop)
        await self.net.close()


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The proxy's handlers cancelled at shutdown are expected; anything else is reported as usual."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def run_schedule(
    schedule: tuple[int, int, int],
    lanes: list[str] | None = None,
    devices: int = 2,
    speed: float = 30.0,
    seed: int = 1,
    drain_real_s: float = 20.0,
    device_hook: Any = None,
) -> dict[str, Any]:
    """One schedule over ``lanes`` (default: every fault kind); the counting figures."""
    matrix = MatrixRun(schedule, list(lanes or FAULTS), devices, speed, seed, drain_real_s, device_hook)
    with FleetLog(io.StringIO()):  # a fault makes every device log the same lines: counted, not shown
        return asyncio.run(matrix.run())


_SUMMED = (
    "expected",
    "matched",
    "lost",
    "duplicated",
    "redelivered",
    "seq_gaps",
    "out_of_order",
    "control_gaps",
    "undrained",
    "quiet_kinds",
)
GOALS = {
    key: ["==", 0]
    for key in ("lost", "duplicated", "seq_gaps", "out_of_order", "control_gaps", "undrained", "quiet_kinds")
}


def run(
    size: str, seed: int, progress: IO[str] | None, device_hook: Any = None, lanes: list[str] | None = None
) -> dict[str, Any]:
    cfg = SIZES[size]
    names = list(lanes or FAULTS)
    figures: dict[str, Any] = {key: 0 for key in _SUMMED}
    figures.update({"schedules": [], "fault_kinds": len(names), "cases": 0, "devices_per_case": cfg["devices"]})
    ticks: dict[str, list[Any]] = {}
    failing: set[str] = set()
    started = time.monotonic()
    for label, schedule in cfg["schedules"]:
        t0 = time.monotonic()
        out = run_schedule(schedule, names, cfg["devices"], cfg["speed"], seed, cfg["drain_real_s"], device_hook)
        for key in _SUMMED:
            figures[key] += out[key]
        for key, value in out.items():
            if key.startswith("tick_"):
                ticks.setdefault(key, []).append(value)
        failing.update(name for name, lane in out["lanes"].items() if lane["lost"] or lane["duplicated"])
        figures["schedules"].append(label)
        figures["cases"] += len(names)
        if progress is not None:
            progress.write(
                "outage-matrix: %-8s %d kinds: expected %d lost %d duplicated %d (%.0f s)\n"
                % (label, len(names), out["expected"], out["lost"], out["duplicated"], time.monotonic() - t0)
            )
            progress.flush()
    for key, values in ticks.items():
        figures[key] = (
            max(values)
            if key.endswith("max_ms")
            else (sum(values) if key.endswith("count") else round(sum(values) / len(values), 1))
        )
    figures["failing_kinds"] = sorted(failing)
    figures["wall_s"] = round(time.monotonic() - started, 1)
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": dict(GOALS)}
