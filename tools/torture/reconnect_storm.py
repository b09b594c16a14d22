"""``reconnect-storm``: a fleet coming back from a 30-minute outage, and CONNACK withheld five times.

Part 1 (virtual time, ``storm_fleet``): ``devices`` real ``Link``s with the
fleet board's link settings connect, stay up 5 simulated minutes (a healthy
run: backoff reset), lose the broker for 30 minutes, and come back. It runs
twice: with the reconnect phases the cloud assigned while the fleet was up
(``cloud_shim.phases``, delivered through the link's ``link_phase`` command
handler) -- the figures with goals: the peak of successful connects over any
1-second window after the outage (goal <= 1.5 x fleet / backoff cap) and the
time until 99% are back (goal <= cap + 30 s) -- and with the phases each
device hashes from its id (a fleet the cloud never assigned; printed as
``hashed_*``), plus the peak of attempts while the broker was down.

Part 2 (real time, real devices): a scripted broker on loopback reads each
CONNECT and withholds the CONNACK from a client's first five, then serves it
on the sixth. ``connack_devices`` real devices (``cloud_shim.sim.fleet``)
with a short connect timeout and backoff. Figures: the distinct times of the
sixth CONNECT (goal > 1) and pairs of devices whose six attempts all came
within ``LOCKSTEP_MS`` of each other (goal 0).
"""

from __future__ import annotations

import asyncio
import io
import time
from bisect import bisect_left
from pathlib import Path
from typing import IO, Any

from cloud_shim.faults.mqttframe import connect_client_id
from cloud_shim.phases import assign_phases
from cloud_shim.sim.fleet import REPO, SimFleet
from cloud_shim.sim.fleetlog import FleetLog
from device.board import load_board
from device.clock import MonotonicClock, VirtualClock
from tools.torture.storm_fleet import Network, build_links

NAME = "reconnect-storm"
SUMMARY = "10,000 real Links back from a 30-minute outage (peak connects/s, 99% back) + CONNACK withheld 5x"
SIZES = {"ci": {"devices": 5000, "connack_devices": 4}, "long": {"devices": 10_000, "connack_devices": 8}}
UP_MS = 5 * 60_000
OUTAGE_MS = 30 * 60_000
WITHHELD = 5
LOCKSTEP_MS = 20
CONNACK_LINK = {"connect_timeout_ms": 300, "backoff_base_ms": 200, "backoff_cap_ms": 3000, "healthy_ms": 60_000}
CONNACK_BOUND_S = 40.0


def fleet_link_cfg() -> dict[str, Any]:
    """The link section of the fleet board: the settings a fleet device really has."""
    return dict(load_board(str(Path(REPO) / "boards/host_fleet_sim.json"))["link"])


def peak_per_window(times_ms: list[int], window_ms: int = 1000) -> int:
    """The most events in any half-open window ``[t, t + window_ms)`` (sorted input)."""
    best = 0
    for i, t in enumerate(times_ms):
        best = max(best, bisect_left(times_ms, t + window_ms, i) - i)
    return best


async def _storm(
    devices: int, seed: int, cfg: dict[str, Any], progress: IO[str] | None, assigned: bool = False
) -> dict[str, Any]:
    clock = VirtualClock(speed=0)
    net = Network(clock)
    links = await build_links(devices, cfg, clock, net, seed)
    if assigned and cfg["spread_ms"] > 0:
        phases = assign_phases([link.device_id for link in links], cfg["spread_ms"])
        for link in links:
            await link.phase_command({"phase_ms": phases[link.device_id], "spread_ms": cfg["spread_ms"]})
    tasks = [asyncio.create_task(link.run()) for link in links]
    try:
        await clock.run_until(UP_MS)
        up_before = len({i for _, i, ok in net.attempts if ok})
        net.start_outage()
        await clock.run_until(UP_MS + OUTAGE_MS)
        back_at = clock.now_ms()
        net.end_outage()
        if progress is not None:
            how = "cloud-assigned" if assigned else "hashed"
            progress.write(
                "reconnect-storm: %d links, %s phases, outage over at %.0f s (sim)\n" % (devices, how, back_at / 1000)
            )
        horizon = back_at + cfg["backoff_cap_ms"] + cfg["spread_ms"] + 120_000
        while clock.now_ms() < horizon:
            await clock.run_until(clock.now_ms() + 10_000)
            if sum(1 for link in links if link.state.state == "online") == devices:
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    during = sorted(t for t, _, ok in net.attempts if back_at - OUTAGE_MS <= t < back_at)
    first_back: dict[int, int] = {}
    for t, i, ok in net.attempts:
        if ok and t >= back_at and i not in first_back:
            first_back[i] = t
    after = sorted(first_back.values())
    need = -(-devices * 99 // 100)
    t99 = (after[need - 1] - back_at) / 1000 if len(after) >= need else None
    cap_s = cfg["backoff_cap_ms"] / 1000
    return {
        "devices": devices,
        "online_before": up_before,
        "backoff_cap_s": cap_s,
        "spread_s": cfg["spread_ms"] / 1000,
        "long_outage_s": cfg["long_outage_ms"] / 1000,
        "back": len(after),
        "peak_connects_per_s": peak_per_window(after),
        "peak_goal": round(1.5 * devices / cap_s, 1),
        "mean_connects_per_s": round(len(after) / max(1.0, (after[-1] - back_at) / 1000), 1) if after else 0,
        "back_99pct_s": t99 if t99 is not None else -1.0,
        "back_99pct_goal_s": cap_s + 30,
        "peak_attempts_per_s_during_outage": peak_per_window(during),
    }


class ScriptedBroker:
    """Reads CONNECTs; stays silent to a client's first ``WITHHELD``, CONNACKs from the next one on."""

    def __init__(self) -> None:
        self.connects: dict[str, list[float]] = {}
        self.started = time.monotonic()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def serve(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.read(4096)
            client_id = connect_client_id(data) if data else None
            if not client_id:
                return
            times = self.connects.setdefault(client_id, [])
            times.append(time.monotonic() - self.started)
            if len(times) > WITHHELD:
                writer.write(b"\x20\x02\x00\x00")
                await writer.drain()
            while await reader.read(4096):  # hold the line; answer nothing more
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def _connack(n: int, seed: int) -> dict[str, Any]:
    broker = ScriptedBroker()
    await broker.serve()
    endpoint = {
        "name": "primary",
        "role": "primary",
        "host": "127.0.0.1",
        "port": broker.port,
        "tls": False,
        "addresses": [],
    }
    specs = [{"id": "connack-%04d" % i, "app": "thermostat", "region": "home"} for i in range(n)]
    fleet = SimFleet(specs, MonotonicClock(), [endpoint], "127.0.0.1:9", dict(CONNACK_LINK), seed)  # type: ignore[arg-type]
    try:
        await fleet.start()
        deadline = time.monotonic() + CONNACK_BOUND_S
        while time.monotonic() < deadline:
            if len(broker.connects) == n and all(len(t) > WITHHELD for t in broker.connects.values()):
                break
            await asyncio.sleep(0.1)
    finally:
        await fleet.stop()
        await broker.close()
    sixth = {cid: round(t[WITHHELD] * 1000) for cid, t in broker.connects.items() if len(t) > WITHHELD}
    ids = sorted(broker.connects)
    lockstep = 0
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            ta, tb = broker.connects[ids[a]][: WITHHELD + 1], broker.connects[ids[b]][: WITHHELD + 1]
            if len(ta) == len(tb) == WITHHELD + 1 and all(
                abs(x - y) * 1000 < LOCKSTEP_MS for x, y in zip(ta, tb, strict=True)
            ):
                lockstep += 1
    return {
        "connack_devices": n,
        "connack_served": len(sixth),
        "sixth_connect_ms": sorted(sixth.values()),
        "distinct_sixth_connect_ms": len({t // LOCKSTEP_MS for t in sixth.values()}),
        "lockstep_pairs": lockstep,
    }


def run(size: str, seed: int, progress: IO[str] | None, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    sizes = SIZES[size]
    link_cfg = cfg if cfg is not None else fleet_link_cfg()
    started = time.monotonic()
    figures = asyncio.run(_storm(sizes["devices"], seed, link_cfg, progress, assigned=True))
    hashed = asyncio.run(_storm(sizes["devices"], seed, link_cfg, progress, assigned=False))
    for key in ("back", "peak_connects_per_s", "mean_connects_per_s", "back_99pct_s"):
        figures["hashed_" + key] = hashed[key]
    figures["storm_wall_s"] = round(time.monotonic() - started, 1)
    with FleetLog(io.StringIO()):
        figures.update(asyncio.run(_connack(sizes["connack_devices"], seed)))
    n = sizes["connack_devices"]
    goals = {
        "back": ["==", figures["devices"]],
        "peak_connects_per_s": ["<=", figures["peak_goal"]],
        "back_99pct_s": ["<=", figures["back_99pct_goal_s"]],
        "connack_served": ["==", n],
        "distinct_sixth_connect_ms": [">=", min(2, n)],
        "lockstep_pairs": ["==", 0],
    }
    if figures["back_99pct_s"] < 0:
        figures["back_99pct_s"] = float("inf")
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
