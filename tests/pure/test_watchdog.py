"""device/watchdog.py: the watchdog is fed while the control loop runs and ticks, whatever the cloud does."""

import asyncio

from device import log
from device.clock import VirtualClock
from device.core.backoff import Backoff
from device.runtime import Supervisor
from device.watchdog import WatchdogFeeder


class RecordingWdt:
    """A fake WDT that notes when it was fed (counts, not a list: the test must fit a board's heap)."""

    def __init__(self, clock) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.feeds = 0
        self.first = None
        self.last = None
        self.max_gap = 0

    def feed(self) -> None:
        now = self.clock.now_ms()
        if self.last is None:
            self.first = now
        elif now - self.last > self.max_gap:
            self.max_gap = now - self.last
        self.last = now
        self.feeds += 1


def _backoff():  # type: ignore[no-untyped-def]
    return Backoff(base_ms=1000, cap_ms=60000, factor=2, healthy_ms=30000)


class Control:
    """A control task that ticks every second; ``hang`` makes it await forever, ``crash`` raise."""

    def __init__(self, clock) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.ticks = 0
        self.hang = False
        self.crash = False
        self.never = asyncio.Event()

    async def run(self) -> None:
        while True:
            if self.crash:
                raise RuntimeError("control law blew up")
            if self.hang:
                await self.never.wait()  # stuck on something that never comes
            self.ticks += 1
            await self.clock.sleep_ms(1000)


def _run(main):  # type: ignore[no-untyped-def]
    lines: list = []
    log.set_sink(lines.append)
    try:
        return asyncio.run(main()), lines
    finally:
        log.set_sink(None)


def _rig(clock, link=None):  # type: ignore[no-untyped-def]
    sup = Supervisor(clock, backoff_factory=_backoff)
    control = Control(clock)
    wdt = RecordingWdt(clock)
    sup.spawn("thermostat", control.run)
    if link is not None:
        sup.spawn("link", link)
    feeder = WatchdogFeeder(wdt, clock, sup, [("thermostat", lambda: control.ticks)], stall_ms=5000, every_ms=1000)
    sup.spawn("watchdog", feeder.run)
    return sup, control, wdt, feeder


def test_fed_every_second_while_the_control_loop_ticks():
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()
        sup, _, wdt, feeder = _rig(clock)
        sup.start()
        await clock.run_until(60000)
        await sup.stop()
        return wdt, feeder

    (wdt, feeder), _ = _run(main)
    assert wdt.feeds == 61 and wdt.first == 0 and wdt.last == 60000 and wdt.max_gap == 1000
    assert feeder.withheld == 0 and feeder.reason == ""


def test_fed_through_a_cloud_outage_with_the_link_crash_looping():
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()

        async def link():  # type: ignore[no-untyped-def]
            await clock.sleep_ms(500)
            raise OSError(113, "EHOSTUNREACH")  # the cloud is gone

        sup, _, wdt, feeder = _rig(clock, link)
        sup.start()
        await clock.run_until(600000)
        stats = sup.stats()
        await sup.stop()
        return wdt, feeder, stats

    (wdt, feeder, stats), _ = _run(main)
    assert stats["link"]["crashes"] >= 10  # the link kept failing the whole time...
    assert feeder.withheld == 0  # ...and the watchdog never went hungry
    assert wdt.max_gap == 1000 and wdt.last == 600000 and wdt.feeds == 601


def test_not_fed_once_the_control_task_is_stuck():
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()
        sup, control, wdt, feeder = _rig(clock)
        sup.start()
        await clock.run_until(10000)
        control.hang = True
        await clock.run_until(60000)
        await sup.stop()
        return wdt, feeder, control.ticks

    (wdt, feeder, ticks), lines = _run(main)
    # last tick at 10000 (then it hangs); fed until the stall (5 s) is exceeded
    assert ticks == 11
    assert wdt.last == 15000, wdt.last
    assert feeder.withheld == 45
    assert "stalled" in feeder.reason and "thermostat" in feeder.reason
    assert len([line for line in lines if "not fed" in line]) == 1  # said once per streak


def test_not_fed_while_the_control_task_waits_to_restart_after_crashes():
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()
        sup, control, wdt, feeder = _rig(clock)
        sup.start()
        await clock.run_until(5000)
        control.crash = True
        await clock.run_until(20000)
        starved = (wdt.last, feeder.reason)
        control.crash = False  # the fault cleared: the next restart runs
        await clock.run_until(60000)
        await sup.stop()
        return starved, wdt

    ((last_before, reason), wdt), _ = _run(main)
    # crash at 6000 -> backoff 1 s, 2 s, 4 s, 8 s: mostly in backoff, so feeding stopped
    assert last_before <= 6000, last_before
    assert "backoff" in reason
    assert wdt.last == 60000  # fed again once the task ran again
