"""One fleet over several processes: ``brickproof sim --shards N``.

One process carries about a thousand devices for an hour-long scenario, but
a whole us-east-1-2025 day of a thousand is CPU bound on one core (each
device's control ticks, link and sync engine are Python in one event loop).
``simulate_sharded`` starts the fleet's mosquitto here, then runs N worker
processes: shard k takes every N-th device from the k-th (``Run(shard=(k,
N))``), with its own virtual clock, DNS and fault proxies replaying the same
timeline (event picks are made over the whole fleet, so the shards agree on
who is hit), and its own cloud services following only its devices. The
verdict is merged: counts add up, worst cases take the maximum, an
invariant holds when it held in every shard.

Limits: the broker is shared and stays up, so a scenario with broker events
(kill, restart) runs in one process only. Each shard paces its own clock; the
clocks start together but are not locked to each other, so the simulated
seconds of the reconnect peaks line up only roughly (``peak_connects_per_s``
adds the shards' series bin by bin; the real-second peak is the sum of the
shards' peaks, an upper bound).
"""

from __future__ import annotations

import shutil
import sys
from multiprocessing import get_context
from pathlib import Path
from typing import IO, Any

from cloud_shim.scenario import ScenarioError
from cloud_shim.sim.network import fleet_broker
from cloud_shim.sim.runner import DEFAULT_RECOVERY_SPEED, simulate, write_report

# Merge rules by metric: summed counts, worst cases, and the last moment any shard reached.
SUMMED = (
    "devices records_created records_delivered records_pending lost duplicated redelivered order_violations "
    "compacted control_gaps ticks slow_ticks reboots peak_connects_per_real_s peak_connects_after_outage_per_real_s"
).split()
WORST = "max_tick_latency_ms sim_s wall_s".split()
LATEST = ("shadow_converged_s", "resync_s")  # None (never) in any shard: None


def check_shardable(scenario: dict[str, Any], shards: int) -> None:
    """Raise ScenarioError when the scenario cannot be split (broker events need one process)."""
    if shards <= 1:
        return
    for i, event in enumerate(scenario["timeline"]):
        if event["do"] == "broker":
            raise ScenarioError(
                "timeline[%d].do" % i, "broker events need one process: run it without --shards", scenario["name"]
            )


def _shard_main(job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from tools.sim import raise_fd_limit

    raise_fd_limit()
    progress = sys.stderr if job["progress"] else None
    return simulate(
        job["scenario"],
        job["devices"],
        job["speed"],
        job["seed"],
        None,
        job["recovery_speed"],
        progress,
        shard=(job["index"], job["shards"]),
        broker_port=job["port"],
    )


def simulate_sharded(
    scenario: dict[str, Any],
    devices: int | None,
    shards: int,
    speed: float | None = None,
    seed: int = 1,
    report_dir: Path | None = None,
    recovery_speed: float = DEFAULT_RECOVERY_SPEED,
    progress: IO[str] | None = sys.stderr,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the fleet in ``shards`` processes against one broker; return the merged ``(metrics, series)``."""
    check_shardable(scenario, shards)
    broker, state_dir = fleet_broker()
    broker.start()
    try:
        jobs = [
            {
                "scenario": scenario,
                "devices": devices,
                "speed": speed,
                "seed": seed,
                "recovery_speed": recovery_speed,
                "index": k,
                "shards": shards,
                "port": broker.port,
                "progress": progress is not None and k == 0,  # one progress bar: shard 0's
            }
            for k in range(shards)
        ]
        pool = get_context("spawn").Pool(processes=shards)
        try:
            results = pool.map(_shard_main, jobs, chunksize=1)
            pool.close()
        finally:
            pool.terminate()  # an interrupt or a failed shard ends every worker, not just this process
            pool.join()
    finally:
        broker.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    metrics = merge_metrics([m for m, _ in results])
    series = merge_series([s for _, s in results], metrics["herd_cap_per_s"])
    metrics["peak_connects_per_s"] = _peak(series["connects"]["t_s"], series["connects"]["per_s"], -1.0)
    metrics["peak_connects_after_outage_per_s"] = _peak(
        series["connects"]["t_s"], series["connects"]["per_s"], metrics["fault_end_s"]
    )
    if report_dir is not None:
        write_report(report_dir, metrics, series)
    return metrics, series


def _add(into: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            into.setdefault(key, value)
        else:
            into[key] = into.get(key, 0) + value


def merge_metrics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's metrics from its shards' (see the module docstring for the rules)."""
    out = dict(parts[0])
    out["shards"] = len(parts)
    for key in SUMMED:
        out[key] = sum(p.get(key) or 0 for p in parts)
    for key in WORST:
        out[key] = max(p.get(key) or 0 for p in parts)
    for key in LATEST:
        values = [p.get(key) for p in parts]
        reached = [float(v) for v in values if v is not None]
        out[key] = max(reached) if len(reached) == len(values) else None
    out["lost_examples"] = [e for p in parts for e in p.get("lost_examples", [])][:5]
    for key in ("commands", "shadow", "apps", "log_lines"):
        merged: dict[str, Any] = {}
        for p in parts:
            _add(merged, p.get(key) or {})
        out[key] = dict(sorted(merged.items()))
    out["bed"] = _merge_app(parts, "bed", {"pad_min_c": min, "pad_max_c": max, "longest_raised_s": max})
    out["clips"] = _merge_app(parts, "clips", {})
    spread_s = parts[0]["spread_s"]  # the same in every shard: the cap grows with the devices
    out["herd_cap_per_s"] = round(out["devices"] / spread_s, 2) if spread_s > 0 else float(out["devices"])
    invariants: dict[str, bool] = {}
    for p in parts:
        for name, held in p["invariants"].items():
            invariants[name] = invariants.get(name, True) and bool(held)
    out["invariants"] = invariants
    out["ok"] = all(invariants.values())
    return out


def _merge_app(parts: list[dict[str, Any]], key: str, extremes: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for p in parts:
        for name, value in (p.get(key) or {}).items():
            if name in extremes:
                if value is not None:
                    merged[name] = value if merged.get(name) is None else extremes[name](merged[name], value)
                else:
                    merged.setdefault(name, None)
            elif isinstance(value, list):
                merged[name] = (merged.get(name, []) + value)[:5]
            elif isinstance(value, int | float) and not isinstance(value, bool):
                merged[name] = merged.get(name, 0) + value
    return merged


def _sum_lists(lists: list[list[Any]]) -> list[Any]:
    n = min(len(values) for values in lists)
    return [sum(values[i] or 0 for values in lists) for i in range(n)]


def merge_series(parts: list[dict[str, Any]], herd_cap_per_s: float) -> dict[str, Any]:
    """The shards' series added up sample by sample (the room plot and the marks are shard 0's)."""
    out = dict(parts[0])
    n = min(len(p["t_s"]) for p in parts)
    out["t_s"] = parts[0]["t_s"][:n]
    out["room"] = {k: (v[:n] if isinstance(v, list) else v) for k, v in parts[0]["room"].items()}
    out["outbox_depth"] = {
        "total": _sum_lists([p["outbox_depth"]["total"] for p in parts]),
        "max": [max(vals) for vals in zip(*(p["outbox_depth"]["max"][:n] for p in parts), strict=False)],
    }
    out["link_states"] = {k: _sum_lists([p["link_states"][k] for p in parts]) for k in parts[0]["link_states"]}
    per_s = _sum_lists([p["connects"]["per_s"] for p in parts])
    out["connects"] = dict(parts[0]["connects"], t_s=parts[0]["connects"]["t_s"][: len(per_s)], per_s=per_s)
    out["connects"]["cap_per_s"] = herd_cap_per_s
    out["latency_s"] = dict(parts[0]["latency_s"], counts=_sum_lists([p["latency_s"]["counts"] for p in parts]))
    return out


def _peak(t_s: list[float], per_s: list[int], after_s: float) -> int:
    return max([n for t, n in zip(t_s, per_s, strict=True) if t > after_s] + [0])
