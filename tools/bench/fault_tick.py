"""``fault-tick``: control-tick latency while the cloud fails, beside the same fleet online.

The ``brickproof sim`` machinery (real devices, real mosquitto, one process):
the same small fleet for 40 simulated minutes, once with no fault and once per
fault held from minute 5 to minute 35: the endpoint black-holed, half-open,
refusing with DNS timing out, PUBACKs dropped, every home's wifi down.
Figures per case: ticks, how many were later than 50 ms (real ms from a
tick being due to its end), the worst, and control gaps. The
one rule says the fault cases look like the online one. Printed, never
asserted: these machines are noisy.
"""

from __future__ import annotations

from typing import IO, Any

from cloud_shim.scenario import check_scenario
from cloud_shim.sim.runner import simulate

NAME = "fault-tick"
SUMMARY = "control-tick latency (slow ticks, max) during each cloud fault vs online, 20 devices"
DEVICES = 20
FAULTS: dict[str, list[dict[str, Any]]] = {
    "online": [],
    "blackhole": [{"do": "proxy", "endpoint": "primary", "mode": "blackhole"}],
    "half_open": [{"do": "proxy", "endpoint": "primary", "mode": "half_open"}],
    "refuse+dns_timeout": [
        {"do": "proxy", "endpoint": "primary", "mode": "refuse"},
        {"do": "dns", "endpoint": "primary", "mode": "timeout"},
    ],
    "drop_pubacks": [{"do": "proxy", "endpoint": "primary", "mode": "drop_pubacks"}],
    "wifi_down": [{"do": "wifi", "mode": "down"}],
}
_UNDO = {"proxy": {"mode": "pass"}, "dns": {"mode": "ok"}, "wifi": {"mode": "up"}}


def _scenario(faults: list[dict[str, Any]]) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = []
    for fault in faults:
        timeline.append(dict(fault, at="5m"))
        timeline.append(dict(fault, at="35m", **_UNDO[fault["do"]]))
    return check_scenario(
        {
            "name": "fault-tick",
            "description": "one fault held for 30 minutes",
            "duration": "40m",
            "speed": 300,
            "link": {"endpoints": ["primary"]},
            "bounds": {"shadow_converged": "5m", "resync": "5m"},
            "timeline": timeline,
        },
        "fault-tick",
    )


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {"devices": DEVICES}
    for name, faults in FAULTS.items():
        metrics, _ = simulate(_scenario(faults), devices=DEVICES, seed=11, recovery_speed=300, progress=None)
        figures[name] = {
            "ticks": metrics["ticks"],
            "slow_ticks": metrics["slow_ticks"],
            "tick_max_ms": metrics["max_tick_latency_ms"],
            "control_gaps": metrics["control_gaps"],
            "ok": metrics["ok"],
        }
        if progress:
            progress.write("fault-tick: %-18s %s\n" % (name, figures[name]))
    return {"name": NAME, "figures": figures, "ratio": None}
