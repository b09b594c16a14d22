"""reconnect-storm: its window counting, and that it catches a fleet without jitter (seeded bugs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from device.core.backoff import Backoff
from tools.torture import reconnect_storm as rs


def test_peak_per_window_counts_half_open_windows() -> None:
    assert rs.peak_per_window([]) == 0
    assert rs.peak_per_window([0, 999, 1000, 1500, 1999]) == 3  # [1000, 2000)
    assert rs.peak_per_window([0, 1000]) == 1
    assert rs.peak_per_window([5, 5, 5]) == 3


def _no_jitter(self: Backoff, rand: Any = None) -> int:
    """The seeded bug: backoff without its jitter (every device waits the same)."""
    delay = self.ceiling_ms()
    self.attempts += 1
    return delay


def test_storm_without_jitter_or_spread_misses_the_peak_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backoff, "next_delay_ms", _no_jitter)
    cfg = dict(rs.fleet_link_cfg(), spread_ms=0)
    figures = asyncio.run(rs._storm(300, 1, cfg, None))
    assert figures["back"] == 300
    assert figures["peak_connects_per_s"] > figures["peak_goal"]


def test_cloud_assigned_phases_flatten_the_return_below_the_hashed_peak() -> None:
    cfg = rs.fleet_link_cfg()
    assigned = asyncio.run(rs._storm(3000, 1, cfg, None, assigned=True))
    hashed = asyncio.run(rs._storm(3000, 1, cfg, None, assigned=False))
    assert assigned["back"] == hashed["back"] == 3000
    # 3,000 evenly laid phases over 300 s: exactly 10 per second; hashes bunch well above that.
    assert assigned["peak_connects_per_s"] == 10
    assert hashed["peak_connects_per_s"] > assigned["peak_connects_per_s"]


def test_storm_with_the_real_link_brings_everyone_back() -> None:
    figures = asyncio.run(rs._storm(300, 1, rs.fleet_link_cfg(), None))
    assert figures["online_before"] == 300
    assert figures["back"] == 300
    assert 0 < figures["back_99pct_s"] <= figures["back_99pct_goal_s"]


def test_connack_withheld_without_jitter_is_lockstep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Backoff, "next_delay_ms", _no_jitter)
    figures = asyncio.run(rs._connack(3, 1))
    assert figures["connack_served"] == 3
    assert figures["lockstep_pairs"] > 0
