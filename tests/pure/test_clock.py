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
