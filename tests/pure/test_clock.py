"""VirtualClock: simulated time, and standing still while the store's real I/O is in flight."""

import asyncio

from device import compat
from device.clock import VirtualClock


def test_sleepers_wake_in_deadline_order_at_their_simulated_time():
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()
        woke = []

        async def sleeper(ms):  # type: ignore[no-untyped-def]
            await clock.sleep_ms(ms)
            woke.append((ms, clock.now_ms()))

        tasks = [asyncio.create_task(sleeper(ms)) for ms in (300, 100, 200)]
        await clock.run_until(1000)
        for task in tasks:
            await task
        return woke, clock.now_ms()

    woke, now = asyncio.run(main())
    assert woke == [(100, 100), (200, 200), (300, 300)]
    assert now == 1000


def test_simulated_time_waits_while_busy():
    # A task whose "I/O" takes real time (a disk commit) must not find simulated
    # time gone on without it: each step happens at its own simulated second.
    async def main():  # type: ignore[no-untyped-def]
        clock = VirtualClock()
        in_flight = [0]
        clock.busy = lambda: in_flight[0] > 0
        stamps = []

        async def slow_write():  # type: ignore[no-untyped-def]
            in_flight[0] += 1
            try:
                await compat.sleep_ms(5)  # real time, as a thread hop or fsync takes
            finally:
                in_flight[0] -= 1

        async def worker():  # type: ignore[no-untyped-def]
            for _ in range(5):
                await slow_write()
                stamps.append(clock.now_ms())
                await clock.sleep_ms(1000)

        task = asyncio.create_task(worker())
        await clock.run_until(5500)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return stamps

    assert asyncio.run(main()) == [0, 1000, 2000, 3000, 4000]


def _tick_lateness(clock, stall) -> list:  # type: ignore[no-untyped-def]
    """Ticks every simulated second to 5 s, paced, with ``stall`` started at 2.5 s; each tick's lateness."""

    async def main():  # type: ignore[no-untyped-def]
        lates = []

        async def ticker():  # type: ignore[no-untyped-def]
            while clock.now_ms() < 5000:
                due = clock.now_ms() + 1000
                await clock.sleep_ms(1000)
                lates.append(compat.monotonic_ms() - clock.real_due_ms(due))

        async def staller():  # type: ignore[no-untyped-def]
            await clock.sleep_ms(2500)
            await stall()

        tasks = [asyncio.create_task(ticker()), asyncio.create_task(staller())]
        await clock.run_until(5000)
        for task in tasks:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        return lates

    return asyncio.run(main())


def test_a_stalled_event_loop_shows_as_tick_latency_on_a_paced_clock():
    # The stall holds the driver too: without counting from the paced due time, the tick
    # released late would look on time.
    async def hog_the_loop():  # type: ignore[no-untyped-def]
        end = compat.monotonic_ms() + 300
        while compat.monotonic_ms() < end:
            pass

    lates = _tick_lateness(VirtualClock(speed=10), hog_the_loop)
    assert len(lates) >= 4
    assert max(lates) >= 200  # the 3 s tick was due 50 real ms into the 300 ms stall


def test_time_standing_still_for_the_store_is_not_tick_latency():
    clock = VirtualClock(speed=10)
    in_flight = [0]
    clock.busy = lambda: in_flight[0] > 0

    async def slow_commit():  # type: ignore[no-untyped-def]
        in_flight[0] += 1
        try:
            await compat.sleep_ms(1000)  # real time; simulated time waits for it
        finally:
            in_flight[0] -= 1

    lates = _tick_lateness(clock, slow_commit)
    assert len(lates) >= 4
    assert max(lates) < 900  # not the 1000 ms the store held simulated time
