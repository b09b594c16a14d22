"""``TickMeter``: is an app's control loop keeping time? Latency and gaps of its ticks.

* latency: real ms from the moment the tick was due (``clock.real_due_ms``:
  the deadline on a real clock, the release by the driver of a simulated one)
  to the tick's end. Whatever blocks the event loop, or a control path that
  waited on something slow, shows here. Kept: the max, the mean, and how many
  ticks took longer than ``SLOW_MS``.
* gaps: a tick that started more than two periods after the one before
  (clock time, so simulated time in a simulation): control stopped.

A few integers, no samples: it runs on a 128 KiB board too.
"""

from device.compat import monotonic_ms

SLOW_MS = 50


class TickMeter:
    def __init__(self, clock, tick_ms: int) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.tick_ms = tick_ms
        self.ticks = 0
        self.late_ms_max = 0
        self.late_ms_total = 0
        self.slow = 0  # ticks later than SLOW_MS
        self.gaps = 0
        self.gap_ms_max = 0
        self._last_start = -1

    def done(self, due_ms: int, started_ms: int) -> None:
        """After a tick due at ``due_ms`` that started at clock time ``started_ms``."""
        late = monotonic_ms() - self.clock.real_due_ms(due_ms)
        if late < 0:
            late = 0
        self.ticks += 1
        self.late_ms_total += late
        if late > self.late_ms_max:
            self.late_ms_max = late
        if late > SLOW_MS:
            self.slow += 1
        if self._last_start >= 0:
            gap = started_ms - self._last_start
            if gap > self.gap_ms_max:
                self.gap_ms_max = gap
            if gap > 2 * self.tick_ms:
                self.gaps += 1
        self._last_start = started_ms

    def stats(self) -> dict:
        return {
            "ticks": self.ticks,
            "late_ms_max": self.late_ms_max,
            "late_ms_mean": self.late_ms_total // self.ticks if self.ticks else 0,
            "slow_ticks": self.slow,
            "gaps": self.gaps,
            "gap_ms_max": self.gap_ms_max,
        }


async def run_ticks(app, period_ms: int) -> None:  # type: ignore[no-untyped-def]
    """Call ``app.tick()`` every ``period_ms`` of ``app.env.clock``, metered in ``app.meter``.

    A tick that overran skips the ones it missed rather than running them in a burst.
    """
    clock = app.env.clock
    due = clock.now_ms()
    meter = app.meter = TickMeter(clock, period_ms)
    while True:
        started = clock.now_ms()
        await app.tick()
        meter.done(due, started)
        due += period_ms
        now = clock.now_ms()
        if due < now:
            due = now
        await clock.sleep_ms(due - now)
