"""What a simulation run looked like (``series.json``) and whether it held (``metrics.json``).

Sampling reads the devices' own figures (state, outbox depth, link state),
never changes them. Reconnects are counted at the proxies: TCP connections
passed on to the broker per simulated second.
"""

from __future__ import annotations

from typing import Any

from cloud_shim.sim.fleet import Member

LINK_STATES = ("online", "degraded", "connecting", "resolving", "offline")
LATENCY_EDGES_S = [0, 1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600]


class Recorder:
    def __init__(self, members: list[Member], sample_s: int) -> None:
        self.members = members
        self.sample_s = sample_s
        self.room_member = next((m for m in members if m.app == "thermostat"), None)
        self.t_s: list[float] = []
        self.room: dict[str, Any] = {
            "device": self.room_member.id if self.room_member else None,
            "temp_c": [],
            "setpoint_c": [],
            "heater_on": [],
        }
        self.outbox: dict[str, list[int]] = {"total": [], "max": []}
        self.links: dict[str, list[int]] = {name: [] for name in LINK_STATES}
        self.connect_t_s: list[float] = []
        self.connects_per_s: list[int] = []
        self.marks: list[dict[str, Any]] = []
        self._connects_seen = 0
        # The same per real second: what the broker sees, whatever pace simulated time keeps.
        self.real_peak = {"all": 0, "after_outage": 0}
        self._real_bin: int | None = None
        self._real_base = 0

    def sample(self, t_s: float) -> dict[str, int]:
        """One sample of the fleet at simulated second ``t_s``; returns the link state counts."""
        self.t_s.append(round(t_s, 1))
        member = self.room_member
        if member is not None:
            world: Any = member.device.world
            status = member.device.apps[0].status()
            self.room["temp_c"].append(round(world.room.temp_c, 3) if world is not None else None)
            self.room["setpoint_c"].append(status.get("setpoint_c"))
            self.room["heater_on"].append(1 if status.get("heater_on") else 0)
        depths = [m.store.depth()[0] for m in self.members]
        self.outbox["total"].append(sum(depths))
        self.outbox["max"].append(max(depths) if depths else 0)
        counts = dict.fromkeys(LINK_STATES, 0)
        for m in self.members:
            link = m.device.link
            state = link.state.state if link is not None else "offline"
            counts[state] = counts.get(state, 0) + 1
        for name in LINK_STATES:
            self.links[name].append(counts[name])
        return counts

    def count_connects(self, t_s: float, total: int) -> None:
        """Called once per simulated second with the proxies' running connect count."""
        self.connect_t_s.append(round(t_s, 1))
        self.connects_per_s.append(total - self._connects_seen)
        self._connects_seen = total

    def count_connects_real(self, real_s: float, total: int, after_outage: bool) -> None:
        """Called often (every driver turn) with real seconds and the running connect count."""
        now_bin = int(real_s)
        if self._real_bin is None:
            self._real_bin, self._real_base = now_bin, total
        elif now_bin != self._real_bin:
            n = total - self._real_base  # the second just ended (and any quiet ones before this call)
            self.real_peak["all"] = max(self.real_peak["all"], n)
            if after_outage:
                self.real_peak["after_outage"] = max(self.real_peak["after_outage"], n)
            self._real_bin, self._real_base = now_bin, total

    def mark(self, t_s: float, label: str) -> None:
        self.marks.append({"t_s": round(t_s, 1), "label": label})

    def series(self, latencies_ms: list[int], herd_cap_per_s: float) -> dict[str, Any]:
        counts = [0] * (len(LATENCY_EDGES_S) - 1)
        for ms in latencies_ms:
            s = ms / 1000
            for i in range(len(counts)):
                if s < LATENCY_EDGES_S[i + 1] or i == len(counts) - 1:
                    counts[i] += 1
                    break
        return {
            "sample_s": self.sample_s,
            "t_s": self.t_s,
            "room": self.room,
            "outbox_depth": self.outbox,
            "link_states": self.links,
            "connects": {
                "bin_s": 1,
                "t_s": self.connect_t_s,
                "per_s": self.connects_per_s,
                "cap_per_s": herd_cap_per_s,
            },
            "latency_s": {"bins": LATENCY_EDGES_S, "counts": counts},
            "marks": self.marks,
        }

    def peak_connects_per_s(self, after_s: float = -1.0) -> int:
        peak = 0
        for t, n in zip(self.connect_t_s, self.connects_per_s, strict=True):
            if t > after_s and n > peak:
                peak = n
        return peak
