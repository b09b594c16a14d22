"""One simulation run: a scenario's events in time order, the fleet sampled, a verdict at the end.

Time: one ``VirtualClock`` paced at ``speed`` (simulated seconds per real
second) until the last fault ends, then at ``recovery_speed``: the herd and
the drain after an outage are real-time network work, watched at a pace where
the per-device spread (simulated time) and the broker (real time) still mean
something together. A fleet too large for the pace just runs slower than
asked; the figures say what was reached.

Invariants (the exit code): no control gap (a tick more than two periods
after the one before, in simulated time); no record lost (created, not in the
device's outbox any more, neither delivered nor folded into a delivered
aggregate); no record duplicated (the same (device, seq) carrying different
content: what the cloud could not dedupe; plain QoS 1 redeliveries are
absorbed by the cloud's dedupe on (device, seq) and reported as
``redelivered``); every lane in order; shadow converged and backlog drained
within the scenario's bounds after the last fault.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from cloud_shim.commands import CommandIssuer
from cloud_shim.ledger import Ledger, LedgerSubscriber
from cloud_shim.scenario import bounds_ms, endpoint_names, expand, fleet_for, last_fault_end_ms, link_overrides
from cloud_shim.shadow_service import ShadowService, app_policies
from cloud_shim.sim.appchecks import ClipFeed, check_beds, check_cameras
from cloud_shim.sim.fleet import SimFleet, owner_app, state_for
from cloud_shim.sim.fleetlog import FleetLog
from cloud_shim.sim.network import SimNetwork
from cloud_shim.sim.recorder import Recorder
from device.clock import VirtualClock

SAMPLE_MS = 60_000
CONNECT_BIN_MS = 1000
DEFAULT_RECOVERY_SPEED = 60.0
START_WALL_MS = 1760918400000  # 2025-10-20T00:00Z, the day it happened
NETWORK_EVENTS = ("dns", "proxy", "broker", "wifi")
DEVICE_EVENTS = ("local", "power")


class Run:
    def __init__(
        self,
        scenario: dict[str, Any],
        devices: int | None,
        speed: float | None,
        seed: int,
        recovery_speed: float = DEFAULT_RECOVERY_SPEED,
        progress: IO[str] | None = None,
        shard: tuple[int, int] = (0, 1),
        broker_port: int | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.speed = float(speed if speed is not None else scenario["speed"])
        self.recovery_speed = min(recovery_speed, self.speed)
        fleet = fleet_for(scenario, devices, seed)
        self.events = expand(scenario, fleet, seed)  # picks over the whole fleet: every shard agrees
        self.shard = shard
        self.specs = fleet[shard[0] :: shard[1]]
        self.fault_end_ms = last_fault_end_ms(self.events)
        self.bounds = bounds_ms(scenario)
        self.end_ms = int(scenario["duration_ms"])
        self.progress = progress
        self.clock = VirtualClock(speed=self.speed)
        self.clock.set_wall_ms(START_WALL_MS)
        self.network = SimNetwork(broker_port)
        self.ledger = Ledger(clock_ms=lambda: self.clock.wall_ms() or 0)
        self.ledger_sub: LedgerSubscriber | None = None
        self.fleet: SimFleet | None = None
        self.recorder: Recorder | None = None
        self.shadow: ShadowService | None = None
        self.commands: CommandIssuer | None = None
        self.clips: ClipFeed | None = None
        self.log = FleetLog(progress)
        self._services: list[Any] = []
        self._queue: list[tuple[int, int, dict[str, Any]]] = []
        self._resynced_ms: int | None = None
        self._converged_ms: int | None = None
        self._backlog_ends: dict[str, int] = {}  # device -> first seq created after the last fault
        self._bar_shown = -1

    # -- the run ------------------------------------------------------------------------

    async def run(self, workdir: Path) -> dict[str, Any]:
        wall_start = time.monotonic()
        try:
            await self._start(workdir)
            await self._drive()
            metrics = await self._verdict(time.monotonic() - wall_start)
        finally:
            await self._stop()
        return metrics

    async def _start(self, workdir: Path) -> None:
        await self.network.start()
        port = self.network.port
        wall = self.clock.wall_ms
        tag = "%d-%d-%d" % (self.seed, self.shard[0], id(self))
        ids = [s["id"] for s in self.specs]
        followed = ids if self.shard[1] > 1 else None  # a shard hears only its own devices
        self.ledger_sub = LedgerSubscriber(
            "127.0.0.1", port, followed, client_id="ledger-" + tag, ledger=self.ledger, persistent=True
        )
        self.shadow = ShadowService(
            "127.0.0.1",
            port,
            workdir / "shadow.sqlite",
            wall_ms=wall,
            client_id="shadow-" + tag,
            policies=app_policies(sorted({s["app"] for s in self.specs})),
        )
        self.commands = CommandIssuer("127.0.0.1", port, wall_ms=wall, client_id="commands-" + tag)
        services: tuple[Any, ...] = (self.ledger_sub, self.shadow, self.commands)
        cameras = [s["id"] for s in self.specs if s["app"] == "camera"]
        if cameras:
            self.clips = ClipFeed("127.0.0.1", port, "clips-" + tag, cameras)
            services += (self.clips,)
        for service in services:
            await asyncio.to_thread(service.start)
            self._services.append(service)
        endpoints = self.network.endpoints(tuple(endpoint_names(self.scenario)))
        self.fleet = SimFleet(
            self.specs, self.clock, endpoints, self.network.dns.address, link_overrides(self.scenario), self.seed
        )
        await self.fleet.start()
        self.recorder = Recorder(self.fleet.members, SAMPLE_MS // 1000)
        for n, event in enumerate(self.events):
            heapq.heappush(self._queue, (event["at_ms"], n, event))

    async def _drive(self) -> None:
        clock, recorder = self.clock, self.recorder
        assert recorder is not None
        next_sample = 0
        next_bin = CONNECT_BIN_MS
        serial = len(self.events)
        while True:
            now = clock.now_ms()
            while self._queue and self._queue[0][0] <= now:
                _, _, event = heapq.heappop(self._queue)
                follow_up = await self._apply(event)
                if follow_up is not None:
                    serial += 1
                    heapq.heappush(self._queue, (follow_up["at_ms"], serial, follow_up))
            connects = self.network.connects()
            recorder.count_connects_real(time.monotonic(), connects, now >= self.fault_end_ms)
            if now >= next_bin:
                recorder.count_connects(now / 1000, connects)
                next_bin += CONNECT_BIN_MS
            if now >= next_sample:
                self._sample(now)
                next_sample += SAMPLE_MS
            if now >= self.end_ms:
                return
            if now >= self.fault_end_ms and clock.speed != self.recovery_speed:
                clock.speed = self.recovery_speed
            target = min(next_sample, next_bin, self.end_ms)
            if self._queue:
                target = min(target, self._queue[0][0])
            await clock.run_until(target)

    async def _apply(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """Do one event; a broker restart returns the broker's start as a follow-up event."""
        assert self.recorder is not None and self.fleet is not None
        do, t_s = event["do"], event["at_ms"] / 1000
        if do == "mark":
            self.recorder.mark(t_s, event["label"])
            return None
        if do in NETWORK_EVENTS:
            label = await self.network.apply(event)
            if not event.get("auto_revert") or do != "wifi":
                self.recorder.mark(t_s, label)
            if do == "broker" and event["action"] == "restart":
                return {"at_ms": event["at_ms"] + event.get("down_for_ms", 0), "do": "broker", "action": "start"}
            return None
        if do in DEVICE_EVENTS:
            self.recorder.mark(t_s, await self.fleet.apply(event))
            return None
        if do == "desired":
            assert self.shadow is not None
            count = 0
            for dev in [d for d in event["devices"] if d in self.fleet.by_id]:  # this shard's
                state = state_for(self.fleet.by_id[dev].app, event["state"])
                if state:  # in a mixed fleet, another app's keys skip this device
                    self.shadow.set_desired(dev, state)
                    count += 1
            self.recorder.mark(t_s, "desired state for %d devices" % count)
            return None
        if do == "command":
            assert self.commands is not None
            owner = owner_app(event["name"])
            mine = [self.fleet.by_id[d] for d in event["devices"] if d in self.fleet.by_id]
            devs = [m.id for m in mine if owner in (None, m.app)]
            for dev in devs:
                self.commands.issue(dev, event["name"], event["args"], event["ttl_ms"])
            self.recorder.mark(t_s, "command %s to %d devices" % (event["name"], len(devs)))
            return None
        raise ValueError("unknown event %r" % (do,))

    def _sample(self, now: int) -> None:
        assert self.recorder is not None and self.fleet is not None and self.shadow is not None
        counts = self.recorder.sample(now / 1000)
        members = self.fleet.members
        if now >= self.fault_end_ms:
            if not self._backlog_ends:  # records up to here are the outage's backlog
                self._backlog_ends = {m.id: m.store.next_seq() for m in members}
            online = counts["online"] + counts["degraded"]
            if self._resynced_ms is None and online == len(members) and self._backlog_gone(members):
                self._resynced_ms = now
            if self._converged_ms is None and self.shadow.converged_count([m.id for m in members]) == len(members):
                self._converged_ms = now
        self._show_progress(now, counts)

    def _backlog_gone(self, members: list[Any]) -> bool:
        """Every device's oldest waiting record (if any) was created after the last fault ended."""
        for m in members:
            first = m.store.seq_range()[0]
            if first is not None and first < self._backlog_ends[m.id]:
                return False
        return True

    def _show_progress(self, now: int, counts: dict[str, int]) -> None:
        if self.progress is None:
            return
        pct = min(100, now * 100 // max(1, self.end_ms))
        tty = getattr(self.progress, "isatty", lambda: False)()
        if not tty and pct // 10 == self._bar_shown // 10 and pct < 100:
            return
        self._bar_shown = pct
        bar = "#" * (pct // 4) + "." * (25 - pct // 4)
        n = len(self.fleet.members) if self.fleet else 0
        line = "[%s] %3d%%  sim %5.1f h  online %d/%d  outbox %d" % (
            bar,
            pct,
            now / 3_600_000,
            counts["online"] + counts["degraded"],
            n,
            self.recorder.outbox["total"][-1] if self.recorder else 0,
        )
        self.progress.write(("\r" + line) if tty else (line + "\n"))
        self.progress.flush()

    # -- the verdict ------------------------------------------------------------------------

    async def _verdict(self, wall_s: float) -> dict[str, Any]:
        assert self.fleet is not None and self.recorder is not None and self.shadow is not None
        if self.progress is not None and getattr(self.progress, "isatty", lambda: False)():
            self.progress.write("\n")
        await asyncio.to_thread(self._settle_ledger)
        beds = check_beds(self.fleet.members)
        cameras = await check_cameras(self.fleet.members, self.clips.store if self.clips else None)
        created = delivered = lost = redelivered = conflicts = folded = pending = order = 0
        gaps = late_max = slow = ticks = 0
        lost_examples: list[str] = []
        latencies: list[int] = []
        for member in self.fleet.members:
            store = member.store
            made = store.next_seq() - 1
            waiting = {r.seq for r in await store.read_outbox(max(1, store.depth()[0]), 0)}
            report = self.ledger.report(member.id, [s for s in range(1, made + 1) if s not in waiting])
            created += made
            pending += len(waiting)
            delivered += report.delivered
            redelivered += report.duplicates
            conflicts += len(report.conflicts)
            order += len(report.order_violations)
            folded += report.folded
            lost += len(report.lost or [])
            if report.lost and len(lost_examples) < 5:
                lost_examples.append("%s seq %s" % (member.id, report.lost[:3]))
            for app in member.device.apps:
                meter = getattr(app, "meter", None)
                if meter is not None:
                    gaps += meter.gaps
                    late_max = max(late_max, meter.late_ms_max)
                    slow += meter.slow
                    ticks += meter.ticks
            for lanes in self.ledger.books.get(member.id, {}).values():
                latencies.extend(lanes.latencies_ms)
        n = len(self.fleet.members)
        spread_s = self.fleet.members[0].board["link"]["spread_ms"] / 1000 if n else 0
        herd_cap = round(n / spread_s, 2) if spread_s > 0 else float(n)
        converged_s = self._since_fault(self._converged_ms)
        resync_s = self._since_fault(self._resynced_ms)
        bound_conv = self.bounds["shadow_converged_ms"] / 1000
        invariants = {
            "no_control_gap": gaps == 0,
            "no_loss": lost == 0,
            "no_duplicate": conflicts == 0,
            "in_order": order == 0,
            "shadow_converged": converged_s is not None and converged_s <= bound_conv,
            "resynced": resync_s is not None and resync_s <= self.bounds["resync_ms"] / 1000,
        }
        if beds["beds"]:
            invariants["bed_envelope"] = beds["breaches"] == 0
        if cameras["cameras"]:
            invariants["clips_exactly_once"] = cameras["lost"] == 0 and cameras["duplicated"] == 0
        metrics: dict[str, Any] = {
            "scenario": self.scenario["name"],
            "seed": self.seed,
            "devices": n,
            "speed": self.speed,
            "recovery_speed": self.recovery_speed,
            "sim_s": round(self.clock.now_ms() / 1000, 1),
            "wall_s": round(wall_s, 1),
            "records_created": created,
            "records_delivered": delivered,
            "records_pending": pending,
            "lost": lost,
            "lost_examples": lost_examples,
            "duplicated": conflicts,
            "redelivered": redelivered,
            "order_violations": order,
            "compacted": folded,
            "control_gaps": gaps,
            "max_tick_latency_ms": late_max,
            "ticks": ticks,
            "slow_ticks": slow,
            "shadow_converged_s": converged_s,
            "peak_connects_per_s": self.recorder.peak_connects_per_s(),
            "peak_connects_after_outage_per_s": self.recorder.peak_connects_per_s(self.fault_end_ms / 1000),
            "herd_cap_per_s": herd_cap,
            "spread_s": spread_s,
            "peak_connects_per_real_s": self.recorder.real_peak["all"],
            "peak_connects_after_outage_per_real_s": self.recorder.real_peak["after_outage"],
            "resync_s": resync_s,
            "fault_end_s": self.fault_end_ms / 1000,
            "bounds_s": {k[:-3]: v / 1000 for k, v in self.bounds.items()},
            "commands": self.commands.stats() if self.commands else {},
            "shadow": self.shadow.stats(),
            "reboots": sum(m.boots - 1 for m in self.fleet.members),
            "apps": dict(sorted(Counter(m.app for m in self.fleet.members).items())),
            "bed": beds,
            "clips": cameras,
            "log_lines": self.log.repeats(),
            "invariants": invariants,
            "ok": all(invariants.values()),
        }
        self.series = self.recorder.series(latencies, herd_cap)
        return metrics

    def _settle_ledger(self) -> None:
        """Give in-flight cloud messages a moment to land before counting (bounded)."""
        deadline = time.monotonic() + 2.0
        last = -1
        while time.monotonic() < deadline and self._cloud_messages() != last:
            last = self._cloud_messages()
            time.sleep(0.2)

    def _cloud_messages(self) -> int:
        return self.ledger.messages + (self.clips.store.counters["messages"] if self.clips else 0)

    def _since_fault(self, at_ms: int | None) -> float | None:
        if at_ms is None:
            return None
        return round(max(0, at_ms - self.fault_end_ms) / 1000, 1)

    async def _stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
        for service in reversed(self._services):
            await asyncio.to_thread(service.stop)
        await self.network.close()


def write_report(report_dir: Path, metrics: dict[str, Any], series: dict[str, Any]) -> Path:
    """metrics.json, series.json and the rendered page; returns index.html."""
    from cloud_shim import report

    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    (report_dir / "series.json").write_text(json.dumps(series) + "\n")
    return report.render(report_dir)


def simulate(
    scenario: dict[str, Any],
    devices: int | None = None,
    speed: float | None = None,
    seed: int = 1,
    report_dir: Path | None = None,
    recovery_speed: float = DEFAULT_RECOVERY_SPEED,
    progress: IO[str] | None = sys.stderr,
    shard: tuple[int, int] = (0, 1),
    broker_port: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``scenario``; return ``(metrics, series)`` and write the report when ``report_dir`` is given.

    ``shard=(k, n)``: run only every n-th device from the k-th, against the broker on
    ``broker_port`` (``cloud_shim.sim.shards`` runs the n shards and merges them).
    """
    run = Run(scenario, devices, speed, seed, recovery_speed, progress, shard, broker_port)
    with tempfile.TemporaryDirectory(prefix="bp-sim-") as tmp, run.log:
        metrics = asyncio.run(run.run(Path(tmp)))
    if report_dir is not None:
        write_report(report_dir, metrics, run.series)
    return metrics, run.series
