"""``fault-tick``'s windows: the fleet's tick meters cut into before / fault / after figures."""

from __future__ import annotations

from device.compat import monotonic_ms
from device.tickmeter import SLOW_MS, TickMeter
from tools.bench.fault_tick import FAULT_FROM_MS, FAULT_TO_MS, FAULTS, WINDOWS, TickWindows, scenario


class _LateClock:
    """Says every sleeper was released ``late_ms`` real ms ago."""

    def __init__(self) -> None:
        self.late_ms = 0

    def real_due_ms(self, due_ms: int) -> int:
        return monotonic_ms() - self.late_ms


def _ticks(meter: TickMeter, clock: _LateClock, starts: range, late_ms: int) -> None:
    clock.late_ms = late_ms
    for start in starts:
        meter.done(start, start)


def test_each_window_counts_only_its_own_ticks_and_its_own_worst() -> None:
    clock = _LateClock()
    meters = [TickMeter(clock, 1000), TickMeter(clock, 1000)]
    windows = TickWindows()
    for meter in meters:
        _ticks(meter, clock, range(0, 10_000, 1000), SLOW_MS + 400)  # 10 slow ticks each
    windows.cut("before", meters, 20)
    for meter in meters:
        _ticks(meter, clock, range(10_000, 30_000, 1000), 2)
    meters[1].done(30_000, 40_000)  # ten periods after the last: a control gap
    windows.cut("fault", meters, 0)
    windows.cut("after", meters, 20)

    before, fault, after = (windows.windows[name] for name in ("before", "fault", "after"))
    assert before["ticks"] == 20 and before["slow_ticks"] == 20
    assert SLOW_MS + 400 <= before["max_ms"] < SLOW_MS + 1400  # the real clock may move between reads
    assert fault["ticks"] == 41 and fault["slow_ticks"] == 0 and fault["gaps"] == 1
    assert fault["max_ms"] < SLOW_MS + 400  # the boot-time worst stays in its own window
    assert 2 <= fault["mean_ms"] < SLOW_MS
    assert after == {"ticks": 0, "mean_ms": 0, "max_ms": 0, "slow_ticks": 0, "gaps": 0, "online_at_end": 20}
    assert fault["online_at_end"] == 0


def test_every_fault_is_held_through_the_fault_window_and_undone_after() -> None:
    assert [end for _, end in WINDOWS] == [FAULT_FROM_MS, FAULT_TO_MS] == [5 * 60_000, 35 * 60_000]
    for name, faults in FAULTS.items():
        timeline = scenario(faults)["timeline"]
        assert len(timeline) == 2 * len(faults), name
        starts = [e for e in timeline if e["at"] == "5m"]
        ends = [e for e in timeline if e["at"] == "35m"]
        assert len(starts) == len(ends) == len(faults), name
        for start, end in zip(starts, ends, strict=True):
            assert start["do"] == end["do"] and start.get("mode") != end.get("mode"), name
