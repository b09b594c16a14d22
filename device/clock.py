"""Clocks. Device code asks ``env.clock`` for time and sleeps through it.

Interface (duck-typed; MicroPython has no ``abc``):

* ``now_ms()``      monotonic milliseconds, never wraps, never goes back.
* ``wall_ms()``     Unix time in ms, or ``None`` when unknown (offline boot, no NTP).
* ``await sleep_ms(ms)``
* ``real_due_ms(due_ms)``  the real monotonic ms at which a sleeper due at
  ``due_ms`` was released: tick latency is ``compat.monotonic_ms()`` minus it.

``MonotonicClock`` is the real one. ``VirtualClock`` is simulated time: it only
moves when its driver (``run_until``) moves it, optionally paced to
``speed`` x real time, so a 24-hour simulated day takes seconds and is
reproducible on both interpreters.
"""

import asyncio
import heapq
import time

from device import compat

# 2024-01-01T00:00:00Z: a wall clock reading before this was never set.
_PLAUSIBLE_WALL_S = 1704067200


class MonotonicClock:
    def __init__(self) -> None:
        # MicroPython ports differ in epoch (1970 or 2000).
        self._epoch_offset_s = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def now_ms(self) -> int:
        return compat.monotonic_ms()

    def wall_ms(self) -> int | None:
        seconds = time.time() + self._epoch_offset_s
        if seconds < _PLAUSIBLE_WALL_S:
            return None
        return int(seconds * 1000)

    async def sleep_ms(self, ms: int) -> None:
        await compat.sleep_ms(ms)

    def real_due_ms(self, due_ms: int) -> int:
        return due_ms  # now_ms() is real time already


BUSY_POLL_MS = 1


class VirtualClock:
    """Simulated time driven by ``run_until``.

    Tasks sleeping on this clock are woken in deadline order. Between two
    wake-ups the driver yields ``settle`` times to the event loop so that
    woken tasks (and tasks they signal through events or queues) can run
    until they sleep again. ``speed`` > 0 paces simulated time to that many
    times real time; 0 runs as fast as the CPU allows.

    ``busy`` (optional, a callable): while it returns True, simulated time
    stands still and the driver waits in real time. The device sets it to its
    store's ``busy``: a durable append or state write in flight (a thread hop,
    a group commit window, an fsync) takes real time, and simulated time must
    not run on without the task that awaits it.
    """

    def __init__(
        self, start_ms: int = 0, wall_start_ms: int | None = None, speed: float = 0.0, settle: int = 8
    ) -> None:
        self._now = start_ms
        self._wall_offset = None if wall_start_ms is None else wall_start_ms - start_ms
        self._timers: list = []
        self._seq = 0
        self.speed = speed
        self.settle = settle
        self.busy = None  # type: ignore[var-annotated]
        self._released_real_ms = compat.monotonic_ms()  # when the last batch of sleepers was woken

    def now_ms(self) -> int:
        return self._now

    def real_due_ms(self, due_ms: int) -> int:
        # Simulated time has no real deadline: the sleeper was due when the driver released it.
        return self._released_real_ms

    def wall_ms(self) -> int | None:
        if self._wall_offset is None:
            return None
        return self._now + self._wall_offset

    def set_wall_ms(self, wall_ms: int | None) -> None:
        """Set (or forget, with None) the wall time that corresponds to now."""
        self._wall_offset = None if wall_ms is None else wall_ms - self._now

    async def sleep_ms(self, ms: int) -> None:
        if ms <= 0:
            await asyncio.sleep(0)
            return
        event = asyncio.Event()
        self._seq += 1
        heapq.heappush(self._timers, (self._now + ms, self._seq, event))
        await event.wait()

    async def _settle(self) -> int:
        """Let woken tasks run; return the real ms simulated time stood still for ``busy``."""
        for _ in range(self.settle):
            await asyncio.sleep(0)
        busy = self.busy
        if busy is None or not busy():
            return 0
        start = compat.monotonic_ms()
        while busy():
            await compat.sleep_ms(BUSY_POLL_MS)
            for _ in range(self.settle):
                await asyncio.sleep(0)
        return compat.monotonic_ms() - start

    async def run_until(self, end_ms: int) -> None:
        """Advance simulated time to ``end_ms``, waking sleepers on the way."""
        real_start = compat.monotonic_ms()
        sim_start = self._now
        timers = self._timers
        held = 0  # real ms time stood still for ``busy`` in this call
        while True:
            held += await self._settle()
            if not timers or timers[0][0] > end_ms:
                target = end_ms
            else:
                target = timers[0][0]
            due_real = -1
            if self.speed > 0:
                due_real = real_start + int((target - sim_start) / self.speed)
                lag = due_real - compat.monotonic_ms()
                if lag > 0:
                    await compat.sleep_ms(lag)
            if target > self._now:
                self._now = target
            released = compat.monotonic_ms()
            # Paced and behind the pace: the sleepers were due when the pace said so. Something
            # that held the event loop (and so this driver) shows as their latency instead of
            # hiding behind a late release; time stood still for ``busy`` does not count.
            if due_real >= 0 and due_real + held < released:
                released = due_real + held
            self._released_real_ms = released
            while timers and timers[0][0] <= self._now:
                heapq.heappop(timers)[2].set()
            if self._now >= end_ms:
                await self._settle()
                return

    async def advance(self, ms: int) -> None:
        await self.run_until(self._now + ms)
