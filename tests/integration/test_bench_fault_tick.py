"""``fault-tick`` end to end on a tiny fleet at a fast pace: windows cut on the run's clock, the fault bites."""

from __future__ import annotations

import pytest

from tools.bench.fault_tick import measure

WINDOWS = ("before", "fault", "after")


@pytest.mark.parametrize(("case", "online_in_fault"), [("online", 2), ("wifi_down", 0)])
def test_each_window_has_its_ticks_and_the_fault_takes_the_links_down(case: str, online_in_fault: int) -> None:
    result = measure(case, devices=2, speed=600)
    ticks = [result[name]["ticks"] for name in WINDOWS]
    # a thermostat ticks every 10 simulated s: 5, 30 and 5 minutes of it per device (give or take one)
    assert abs(ticks[0] - 2 * 30) <= 2 and abs(ticks[1] - 2 * 180) <= 2 and abs(ticks[2] - 2 * 30) <= 4, result
    assert result["fault"]["online_at_end"] == online_in_fault
    assert result["after"]["online_at_end"] == 2
    assert all(result[name]["gaps"] == 0 for name in WINDOWS)
    assert result["lost"] == 0 and result["duplicated"] == 0
