"""TickMeter: tick latency against the clock's release time, and control gaps."""

from device.compat import monotonic_ms
from device.tickmeter import SLOW_MS, TickMeter


class _LateClock:
    """Says every sleeper was released ``late_ms`` real ms ago."""

    def __init__(self) -> None:
        self.late_ms = 0

    def real_due_ms(self, due_ms: int) -> int:
        return monotonic_ms() - self.late_ms


def test_latency_max_mean_and_slow_ticks():
    clock = _LateClock()
    meter = TickMeter(clock, 1000)
    for i in range(200):
        clock.late_ms = SLOW_MS + 250 if i == 7 else 3
        meter.done(i * 1000, i * 1000)
    stats = meter.stats()
    assert stats["ticks"] == 200
    assert SLOW_MS + 250 <= stats["late_ms_max"] < SLOW_MS + 1250  # the real clock may move between two reads
    assert stats["slow_ticks"] == 1
    assert 3 <= stats["late_ms_mean"] < 100
    assert stats["gaps"] == 0 and stats["gap_ms_max"] == 1000


def test_a_tick_more_than_two_periods_late_is_a_gap():
    meter = TickMeter(_LateClock(), 1000)
    for start in (0, 1000, 2000, 4000, 7001, 8001):
        meter.done(start, start)
    stats = meter.stats()
    assert stats["gaps"] == 1  # 4000 -> 7001; 2000 -> 4000 is exactly two periods
    assert stats["gap_ms_max"] == 3001


def test_no_ticks_no_figures():
    assert TickMeter(_LateClock(), 1000).stats() == {
        "ticks": 0,
        "late_ms_max": 0,
        "late_ms_mean": 0,
        "slow_ticks": 0,
        "gaps": 0,
        "gap_ms_max": 0,
    }
