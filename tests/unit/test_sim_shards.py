"""Merging the verdicts of a fleet run in several processes (``brickproof sim --shards``)."""

from __future__ import annotations

from typing import Any

import pytest

from cloud_shim.scenario import ScenarioError, load_scenario
from cloud_shim.sim.shards import check_shardable, merge_metrics, merge_series


def shard(devices: int, **changes: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "scenario": "s",
        "devices": devices,
        "records_created": 10 * devices,
        "records_delivered": 9 * devices,
        "records_pending": devices,
        "lost": 0,
        "duplicated": 0,
        "control_gaps": 0,
        "max_tick_latency_ms": 40,
        "shadow_converged_s": 60.0,
        "resync_s": 120.0,
        "spread_s": 120.0,
        "herd_cap_per_s": devices / 120,
        "commands": {"issued": devices, "ok": devices},
        "apps": {"thermostat": devices},
        "bed": {"beds": 1, "breaches": 0, "pad_min_c": 24.0, "pad_max_c": 30.0, "longest_raised_s": 10.0},
        "clips": {"cameras": 1, "made": 5, "delivered": 4, "lost": 0, "lost_examples": []},
        "log_lines": {"WARN link: x": devices},
        "invariants": {"no_loss": True, "resynced": True},
        "ok": True,
    }
    metrics.update(changes)
    return metrics


def test_counts_add_up_and_worst_cases_win() -> None:
    merged = merge_metrics(
        [shard(3, max_tick_latency_ms=90, resync_s=300.0), shard(2, bed={"beds": 1, "breaches": 0, "pad_min_c": 20.0,
                                                                         "pad_max_c": 41.0, "longest_raised_s": 7.0})]
    )  # fmt: skip
    assert merged["shards"] == 2 and merged["devices"] == 5
    assert merged["records_created"] == 50 and merged["records_pending"] == 5
    assert merged["max_tick_latency_ms"] == 90 and merged["resync_s"] == 300.0
    assert merged["commands"] == {"issued": 5, "ok": 5}
    assert merged["apps"] == {"thermostat": 5}
    assert merged["log_lines"] == {"WARN link: x": 5}
    assert merged["bed"]["beds"] == 2 and merged["bed"]["pad_min_c"] == 20.0 and merged["bed"]["pad_max_c"] == 41.0
    assert merged["clips"]["made"] == 10 and merged["clips"]["delivered"] == 8
    assert merged["herd_cap_per_s"] == round(5 / 120, 2)
    assert merged["ok"] is True


def test_an_invariant_broken_in_one_shard_breaks_the_run() -> None:
    merged = merge_metrics([shard(2), shard(2, invariants={"no_loss": False, "resynced": True}, resync_s=None)])
    assert merged["invariants"] == {"no_loss": False, "resynced": True}
    assert merged["ok"] is False
    assert merged["resync_s"] is None  # one shard never resynced: the fleet did not


def test_series_add_up_sample_by_sample() -> None:
    def series(k: int, n: int) -> dict[str, Any]:
        return {
            "t_s": [60.0 * i for i in range(n)],
            "room": {"device": "thermostat-0000", "temp_c": [20.0] * n},
            "outbox_depth": {"total": [k] * n, "max": [k] * n},
            "link_states": {"online": [k] * n, "offline": [0] * n},
            "connects": {"bin_s": 1, "t_s": [1.0, 2.0, 3.0], "per_s": [k, 0, k], "cap_per_s": 1},
            "latency_s": {"bins": [0, 1], "counts": [k]},
            "marks": [],
        }

    merged = merge_series([series(1, 4), series(2, 3)], herd_cap_per_s=0.5)
    assert merged["t_s"] == [0.0, 60.0, 120.0]
    assert merged["outbox_depth"] == {"total": [3, 3, 3], "max": [2, 2, 2]}
    assert merged["link_states"]["online"] == [3, 3, 3]
    assert merged["connects"]["per_s"] == [3, 0, 3] and merged["connects"]["cap_per_s"] == 0.5
    assert merged["latency_s"]["counts"] == [3]


def test_broker_events_need_one_process() -> None:
    scenario = load_scenario("broker-restart")
    check_shardable(scenario, 1)
    with pytest.raises(ScenarioError, match=r"timeline\[\d+\]\.do: broker events need one process"):
        check_shardable(scenario, 2)
    check_shardable(load_scenario("us-east-1-2025"), 4)
