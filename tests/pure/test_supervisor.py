"""Supervisor: restart after backoff in simulated time, isolation between tasks, reporting, stop."""

import asyncio

from device import log
from device.clock import VirtualClock
from device.core.backoff import Backoff
from device.errors import TaskError
from device.runtime import Supervisor
from tests.pure._check import raises


def _backoff():
    return Backoff(base_ms=1000, cap_ms=60000, factor=2, healthy_ms=30000)


def _run(main):
    """Run ``main()`` with log lines captured; return (result, lines)."""
    lines = []
    log.set_sink(lines.append)
    try:
        result = asyncio.run(main())
    finally:
        log.set_sink(None)
    return result, lines


def test_crash_restarts_after_backoff_in_simulated_time():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        starts = []

        async def flaky():
            starts.append(clock.now_ms())
            await clock.sleep_ms(100)
            raise ValueError("sensor bus stuck")

        sup.spawn("flaky", flaky)
        sup.start()
        await clock.run_until(7350)
        stats = sup.stats()
        healthy = sup.healthy()
        await sup.stop()
        return starts, stats, healthy, sup.crash_total

    (starts, stats, healthy, total), lines = _run(main)
    # crash at 100 -> +1000; crash at 1200 -> +2000; crash at 3300 -> +4000
    assert starts == [0, 1100, 3200, 7300], starts
    s = stats["flaky"]
    assert s["state"] == "running"
    assert s["crashes"] == 3
    assert s["restarts"] == 3
    assert s["last_error"] == "ValueError: sensor bus stuck"
    assert total == 3
    assert healthy is True
    assert len(lines) == 3
    assert "flaky" in lines[0] and "sensor bus stuck" in lines[0] and "1000" in lines[0]


def test_crashing_task_does_not_disturb_a_healthy_one():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        ticks = [0]

        async def ticker():
            while True:
                await clock.sleep_ms(100)
                ticks[0] += 1

        async def crasher():
            raise RuntimeError("boom")

        sup.spawn("ticker", ticker)
        sup.spawn("crasher", crasher)
        sup.start()
        await clock.run_until(10000)
        stats = sup.stats()
        healthy = sup.healthy()
        await sup.stop()
        return ticks[0], stats, healthy

    (ticks, stats, healthy), _ = _run(main)
    assert ticks == 100
    # crashes at 0, 1000, 3000, 7000; the next restart is due at 15000
    assert stats["crasher"]["crashes"] == 4
    assert stats["crasher"]["restarts"] == 3
    assert stats["crasher"]["state"] == "backoff"
    assert stats["ticker"] == {"state": "running", "crashes": 0, "restarts": 0, "last_error": None}
    assert healthy is False


def test_report_gets_the_crash_event():
    async def main():
        clock = VirtualClock()
        events = []

        async def report(event):
            events.append((clock.now_ms(), event))

        sup = Supervisor(clock, report=report, backoff_factory=_backoff)

        async def bad():
            await clock.sleep_ms(50)
            raise KeyError("zone")

        sup.spawn("bad", bad)
        sup.start()
        await clock.run_until(1200)
        await sup.stop()
        return events

    events, _ = _run(main)
    assert len(events) == 2
    at_ms, first = events[0]
    assert at_ms == 50
    assert first["type"] == "task_crash"
    assert first["task"] == "bad"
    assert first["error"].startswith("KeyError")
    assert "zone" in first["error"]
    assert first["crashes"] == 1
    assert first["restart_in_ms"] == 1000
    assert events[1][0] == 1100
    assert events[1][1]["crashes"] == 2
    assert events[1][1]["restart_in_ms"] == 2000


def test_crashing_report_kills_nothing():
    async def main():
        clock = VirtualClock()

        async def report(event):
            raise OSError(28, "no space")

        sup = Supervisor(clock, report=report, backoff_factory=_backoff)
        ticks = [0]
        runs = [0]

        async def ticker():
            while True:
                await clock.sleep_ms(100)
                ticks[0] += 1

        async def crasher():
            runs[0] += 1
            raise ValueError("x")

        sup.spawn("ticker", ticker)
        sup.spawn("crasher", crasher)
        sup.start()
        await clock.run_until(5000)
        stats = sup.stats()
        await sup.stop()
        return ticks[0], runs[0], stats, sup.report_failures

    (ticks, runs, stats, failures), lines = _run(main)
    assert ticks == 50
    assert runs == 3  # at 0, 1000, 3000: still restarted
    assert failures == 3
    assert stats["crasher"]["crashes"] == 3
    assert len([line for line in lines if "report" in line]) == 3


def test_done_task_is_not_restarted():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        calls = [0]

        async def once():
            calls[0] += 1
            await clock.sleep_ms(10)

        sup.spawn("once", once)
        sup.start()
        await clock.run_until(100000)
        stats = sup.stats()
        healthy = sup.healthy()
        await sup.stop()
        return calls[0], stats, healthy, sup.stats()

    (calls, stats, healthy, after), _ = _run(main)
    assert calls == 1
    assert stats["once"]["state"] == "done"
    assert stats["once"]["restarts"] == 0
    assert healthy is True
    assert after["once"]["state"] == "done"  # stop() leaves finished tasks as they were


def test_restart_false_fails_once_and_reports():
    async def main():
        clock = VirtualClock()
        events = []

        async def report(event):
            events.append(event)

        sup = Supervisor(clock, report=report, backoff_factory=_backoff)
        calls = [0]

        async def oneshot():
            calls[0] += 1
            raise ValueError("bad config")

        sup.spawn("oneshot", oneshot, restart=False)
        sup.start()
        await clock.run_until(100000)
        stats = sup.stats()
        await sup.stop()
        return calls[0], stats, events

    (calls, stats, events), _ = _run(main)
    assert calls == 1
    assert stats["oneshot"]["state"] == "failed"
    assert stats["oneshot"]["crashes"] == 1
    assert events[0]["restart_in_ms"] is None


def test_stop_cancels_running_and_backing_off_tasks():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        cleaned = []

        async def forever():
            try:
                while True:
                    await clock.sleep_ms(100)
            finally:
                cleaned.append("forever")

        async def crasher():
            raise ValueError("x")

        sup.spawn("forever", forever)
        sup.spawn("crasher", crasher)
        sup.start()
        await clock.run_until(500)
        before = sup.stats()
        await sup.stop()
        await sup.stop()  # idempotent
        await clock.run_until(5000)  # nothing comes back
        return before, sup.stats(), cleaned, sup.crash_total

    (before, after, cleaned, total), _ = _run(main)
    assert before["forever"]["state"] == "running"
    assert before["crasher"]["state"] == "backoff"
    assert after["forever"]["state"] == "stopped"
    assert after["crasher"]["state"] == "stopped"
    assert after["crasher"]["restarts"] == 0
    assert cleaned == ["forever"]
    assert total == 1  # cancellation is not a crash


def test_stop_before_tasks_ever_ran():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        ran = [0]

        async def body():
            ran[0] += 1

        sup.spawn("a", body)
        sup.spawn("b", body)
        sup.start()
        await sup.stop()  # no yield in between: the tasks were created but never scheduled
        return ran[0], sup.stats()

    (ran, stats), _ = _run(main)
    assert ran == 0
    assert stats["a"]["state"] == "stopped" and stats["b"]["state"] == "stopped"


def test_cancelled_error_is_not_a_crash():
    async def main():
        clock = VirtualClock()
        events = []

        async def report(event):
            events.append(event)

        sup = Supervisor(clock, report=report, backoff_factory=_backoff)
        calls = [0]

        async def cancelled():
            calls[0] += 1
            await clock.sleep_ms(10)
            raise asyncio.CancelledError()

        sup.spawn("cancelled", cancelled)
        sup.start()
        await clock.run_until(10000)
        stats = sup.stats()
        await sup.stop()
        return calls[0], stats, events, sup.crash_total

    (calls, stats, events, total), lines = _run(main)
    assert calls == 1
    assert stats["cancelled"]["state"] == "stopped"
    assert stats["cancelled"]["crashes"] == 0
    assert total == 0
    assert events == []
    assert lines == []


def test_healthy_run_resets_backoff():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        starts = []

        async def long_runner():
            starts.append(clock.now_ms())
            await clock.sleep_ms(40000)
            raise ValueError("late failure")

        sup.spawn("long", long_runner)
        sup.start()
        await clock.run_until(125000)
        await sup.stop()
        return starts

    starts, _ = _run(main)
    # each run lasted >= healthy_ms, so every restart waits only base_ms
    assert starts == [0, 41000, 82000, 123000], starts


def test_spawn_after_start_runs_at_once_and_names_are_unique():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        started_at = []

        async def late():
            started_at.append(clock.now_ms())
            await clock.sleep_ms(1000000)

        sup.start()
        await clock.run_until(300)
        sup.spawn("late", late)
        await clock.run_until(400)
        err = raises(TaskError, sup.spawn, "late", late)
        await sup.stop()
        err2 = raises(TaskError, sup.spawn, "other", late)
        return started_at, str(err), str(err2)

    (started_at, err, err2), _ = _run(main)
    assert started_at == [300]
    assert "late" in err
    assert "stopped" in err2


def test_task_may_stop_its_own_supervisor():
    async def main():
        clock = VirtualClock()
        sup = Supervisor(clock, backoff_factory=_backoff)
        ticks = [0]

        async def ticker():
            while True:
                await clock.sleep_ms(100)
                ticks[0] += 1

        async def shutdown():
            await clock.sleep_ms(1000)
            await sup.stop()

        sup.spawn("ticker", ticker)
        sup.spawn("shutdown", shutdown)
        sup.start()
        await clock.run_until(3000)
        return ticks[0], sup.stats()

    (ticks, stats), _ = _run(main)
    assert ticks in (9, 10)  # same instant as the shutdown: order decides the last tick
    assert stats["ticker"]["state"] == "stopped"
    assert stats["shutdown"]["state"] in ("done", "stopped")
