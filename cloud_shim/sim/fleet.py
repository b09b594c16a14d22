"""The simulated fleet: real device code, one ``Device`` per member, all on one ``VirtualClock``.

Each device boots from its app's fleet board (``FLEET_BOARDS``) with the
network's endpoints, its own room (the board's sim seed varied per device),
its own RAM store and its own MQTT session (client id = device id). Scenario
events that happen *on* a device land here: the owner changing a setting
("local": written to the state cache as a local change, as a button or the
LAN API would) and power cycles (the device stops and boots again on the same
store, as after a reboot that keeps flash).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from device.board import load_board
from device.boot import Device, build_env
from device.clock import VirtualClock
from device.config import configure_apps

REPO = Path(__file__).resolve().parents[2]
# How often (real ms) each device's sync engine looks at its store for new records and state.
# A device on its own polls every 50 ms; a thousand of them in one process at that rate spend a
# core on polling alone (20,000 turns a second, measured: 1,000 devices ran at 15x real time,
# CPU bound). PUBACKs, messages and the drain's pacing still wake the engine at once.
FLEET_POLL_MS = 250
FLEET_BOARDS = {
    "thermostat": "boards/host_fleet_sim.json",
    "bed": "boards/host_fleet_bed_sim.json",
    "camera": "boards/host_fleet_camera_sim.json",
}


class FleetError(RuntimeError):
    """The fleet cannot be built as asked (an app without a fleet board, a bad board)."""


def state_key(app: str, key: str) -> str:
    """Scenario state keys may leave out the app: ``setpoint_c`` on a thermostat is ``thermostat.setpoint_c``."""
    return key if "." in key else app + "." + key


def owner_app(name: str) -> str | None:
    """The fleet app a state key or command name belongs to (``bed.base.head`` -> bed), None: any app."""
    head = name.split(".", 1)[0]
    return head if "." in name and head in FLEET_BOARDS else None


def state_for(app: str, state: dict[str, Any]) -> dict[str, Any]:
    """The part of a scenario's state change meant for a device running ``app``.

    In a mixed fleet an event aimed at "all" or a fraction also picks devices of other apps; a key
    naming another app (``thermostat.setpoint_c`` on a bed) does not apply to them.
    """
    out = {}
    for key, value in state.items():
        full = state_key(app, key)
        if owner_app(full) in (None, app):
            out[full] = value
    return out


class Member:
    """One device of the fleet and what the simulator keeps beside it."""

    def __init__(self, spec: dict[str, Any], device: Device, board: dict[str, Any]) -> None:
        self.id: str = spec["id"]
        self.app: str = spec["app"]
        self.region: str = spec["region"]
        self.device = device
        self.board = board
        self.store = device.env.store
        self.boots = 1
        self.past: list[Device] = []  # the devices of earlier boots (stopped), for the bed's checks


class SimFleet:
    def __init__(
        self,
        specs: list[dict[str, Any]],
        clock: VirtualClock,
        endpoints: list[dict[str, Any]],
        dns_server: str,
        link_overrides: dict[str, Any],
        seed: int,
    ) -> None:
        self.clock = clock
        self.members: list[Member] = []
        self._specs = specs
        self._endpoints = endpoints
        self._dns = dns_server
        self._link = link_overrides
        self._seed = seed
        self._boards: dict[str, dict[str, Any]] = {}
        self.by_id: dict[str, Member] = {}

    def _board(self, app: str, index: int) -> dict[str, Any]:
        if app not in FLEET_BOARDS:
            raise FleetError("no fleet board for app %r (fleet apps: %s)" % (app, ", ".join(sorted(FLEET_BOARDS))))
        if app not in self._boards:
            self._boards[app] = load_board(str(REPO / FLEET_BOARDS[app]))
        board = copy.deepcopy(self._boards[app])
        board["sim"]["seed"] = self._seed * 100003 + index  # every home its own weather noise and sensors
        link = board["link"]
        link["endpoints"] = copy.deepcopy(self._endpoints)
        link["dns_servers"] = [self._dns]
        link.update(self._link)
        return board

    async def start(self) -> None:
        """Boot every device (each starts its control loop and its link at once)."""
        for index, spec in enumerate(self._specs):
            board = self._board(spec["app"], index)
            device = self._boot(board, spec)
            await device.start()
            member = Member(spec, device, board)
            self.members.append(member)
            self.by_id[member.id] = member

    def _boot(self, board: dict[str, Any], spec: dict[str, Any], store: Any = None) -> Device:
        env, world = build_env(board, with_link=True, clock=self.clock)
        if store is not None:
            env.store = store  # a reboot keeps what was in flash
        device = Device(env, configure_apps(board, [spec["app"]]), world)
        device.attach_link(spec["id"])
        if device.sync is not None:
            device.sync.poll_ms = max(device.sync.poll_ms, FLEET_POLL_MS)
        return device

    async def apply(self, event: dict[str, Any]) -> str:
        """Do a device event ("local", "power"); return what it did, for the marks."""
        targets = [self.by_id[d] for d in event["devices"] if d in self.by_id]
        if event["do"] == "local":
            wall = self.clock.wall_ms()
            changed = 0
            for member in targets:
                state = state_for(member.app, event["state"])
                for key, value in sorted(state.items()):
                    await member.store.put_state(key, value, "local", wall)
                changed += 1 if state else 0
            return "local change on %d devices" % changed
        if event["do"] == "power":
            for member in targets:
                await self._power_cycle(member)
            return "power cycle of %d devices" % len(targets)
        raise ValueError("not a device event: %r" % (event["do"],))

    async def _power_cycle(self, member: Member) -> None:
        await member.device.supervisor.stop()  # not Device.stop(): the store (its "flash") stays
        member.past.append(member.device)
        spec = {"id": member.id, "app": member.app, "region": member.region}
        member.device = self._boot(member.board, spec, member.store)
        await member.device.start()
        member.boots += 1

    async def stop(self) -> None:
        for member in self.members:
            await member.device.stop()
