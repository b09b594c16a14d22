"""The task supervisor: runs the device's long-lived tasks and restarts the ones that crash.

Each supervised task is a *factory*: a zero-argument callable that returns a
fresh coroutine. When the coroutine raises, the supervisor logs it, counts
it, tells ``report`` (usually a function that appends an event to the store
outbox) and, after a capped exponential backoff slept on the environment's
clock, calls the factory again. A coroutine that returns is done for good.

One task crashing never disturbs the others, and a crash inside ``report``
is logged and counted, never fatal. ``CancelledError`` is not a crash: it
propagates (on MicroPython and CPython alike it derives from
``BaseException``, so ``except Exception`` lets it through).

Uses only what MicroPython's asyncio has: ``create_task``, ``Task.cancel``,
``gather`` and ``current_task``. All waiting goes through ``clock.sleep_ms``
so a ``VirtualClock`` drives the backoff in simulations and tests.

Task states in ``stats()``:

* ``pending``  spawned, ``start()`` not called yet
* ``running``  the coroutine is running
* ``backoff``  it crashed and waits to be restarted
* ``done``     it returned normally (not restarted)
* ``failed``   it crashed and was spawned with ``restart=False``
* ``stopped``  cancelled (``stop()`` or from outside)
"""

import asyncio

from device.errors import TaskError
from device.log import get_logger

PENDING = "pending"
RUNNING = "running"
BACKOFF = "backoff"
DONE = "done"
FAILED = "failed"
STOPPED = "stopped"

_FINISHED = (DONE, FAILED, STOPPED)


def describe_error(exc: BaseException) -> str:
    """``"ValueError: bad reading"`` -- the form events and stats carry."""
    text = str(exc)
    name = type(exc).__name__
    return name + ": " + text if text else name


class _Slot:
    """Book-keeping for one supervised task."""

    def __init__(self, name: str, factory, restart: bool) -> None:  # type: ignore[no-untyped-def]
        self.name = name
        self.factory = factory
        self.restart = restart
        self.backoff = None  # made at the first crash: a healthy device never loads the backoff code
        self.state = PENDING
        self.crashes = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.task = None


class Supervisor:
    """Runs and restarts named tasks.

    * ``clock``            -- ``device.clock`` interface; backoff sleeps go through it
    * ``report``           -- optional ``async report(event: dict)``; keep it local and quick
                              (it runs before the backoff sleep)
    * ``backoff_factory``  -- zero-arg callable giving a fresh ``Backoff`` per task
                              (default ``Backoff()``: 1 s doubling up to 60 s)
    * ``rand``             -- ``device.rand.Rand``, needed only for jittered backoffs
    """

    def __init__(self, clock, report=None, backoff_factory=None, name: str = "runtime", rand=None) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._report = report
        self._backoff_factory = backoff_factory  # None: Backoff() (imported on the first crash)
        self._rand = rand
        self._log = get_logger(name)
        self._slots: dict = {}
        self._started = False
        self._stopped = False
        self.crash_total = 0
        self.report_failures = 0

    # -- control -----------------------------------------------------------

    def spawn(self, name: str, factory, restart: bool = True) -> None:  # type: ignore[no-untyped-def]
        """Supervise ``factory()``; starts at once if the supervisor is already started."""
        if self._stopped:
            raise TaskError("cannot spawn task '%s': the supervisor is stopped" % name)
        old = self._slots.get(name)
        if old is not None and old.state not in _FINISHED:
            raise TaskError("a task named '%s' is already supervised; pick another name" % name)
        slot = _Slot(name, factory, restart)
        self._slots[name] = slot
        if self._started:
            self._launch(slot)

    def start(self) -> None:
        """Create the asyncio tasks (call from inside the running event loop)."""
        if self._stopped:
            raise TaskError("the supervisor was stopped; build a new one to start again")
        if self._started:
            return
        self._started = True
        for name in sorted(self._slots):
            slot = self._slots[name]
            if slot.state == PENDING:
                self._launch(slot)

    async def stop(self) -> None:
        """Cancel every task and wait until all have ended. Safe to call twice."""
        self._stopped = True
        me = asyncio.current_task()
        waiting = []
        for name in sorted(self._slots):
            slot = self._slots[name]
            task = slot.task
            if slot.state not in (DONE, FAILED):
                slot.state = STOPPED
            # A supervised task may call stop(): it must not cancel and await itself.
            if task is None or task is me:
                continue
            task.cancel()
            waiting.append(task)
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)

    # -- inspection --------------------------------------------------------

    def stats(self) -> dict:
        out = {}
        for name in self._slots:
            slot = self._slots[name]
            out[name] = {
                "state": slot.state,
                "crashes": slot.crashes,
                "restarts": slot.restarts,
                "last_error": slot.last_error,
            }
        return out

    def healthy(self) -> bool:
        """True when no task is waiting in backoff after a crash."""
        for name in self._slots:
            if self._slots[name].state == BACKOFF:
                return False
        return True

    # -- internals ---------------------------------------------------------

    def _launch(self, slot: _Slot) -> None:
        slot.state = RUNNING
        slot.task = asyncio.create_task(self._run(slot))  # type: ignore[assignment]

    async def _run(self, slot: _Slot) -> None:
        clock = self._clock
        try:
            while True:
                slot.state = RUNNING
                started_ms = clock.now_ms()
                try:
                    await slot.factory()
                except Exception as exc:  # CancelledError is a BaseException: it passes through
                    error = describe_error(exc)
                else:
                    slot.state = DONE
                    return
                delay_ms = self._on_crash(slot, error, clock.now_ms() - started_ms)
                await self._send_report(slot, error, delay_ms)
                if delay_ms is None:
                    return
                await clock.sleep_ms(delay_ms)
                slot.restarts += 1
        except asyncio.CancelledError:
            if slot.state not in (DONE, FAILED):
                slot.state = STOPPED
            raise

    def _on_crash(self, slot: _Slot, error: str, ran_ms: int) -> int | None:
        slot.crashes += 1
        slot.last_error = error
        self.crash_total += 1
        if not slot.restart:
            slot.state = FAILED
            self._log.error("task %s crashed (%d): %s; not restarted", slot.name, slot.crashes, error)
            return None
        backoff = slot.backoff
        if backoff is None:
            backoff = slot.backoff = self._new_backoff()
        backoff.record_success(ran_ms)
        delay_ms = backoff.next_delay_ms(self._rand)
        slot.state = BACKOFF
        self._log.error("task %s crashed (%d): %s; restart in %d ms", slot.name, slot.crashes, error, delay_ms)
        return delay_ms

    def _new_backoff(self):  # type: ignore[no-untyped-def]
        if self._backoff_factory is not None:
            return self._backoff_factory()
        from device.core.backoff import Backoff

        return Backoff()

    async def _send_report(self, slot: _Slot, error: str, delay_ms: int | None) -> None:
        report = self._report
        if report is None:
            return
        event = {
            "type": "task_crash",
            "task": slot.name,
            "error": error,
            "crashes": slot.crashes,
            "restart_in_ms": delay_ms,
        }
        try:
            await report(event)
        except Exception as exc:  # a broken reporter must not stop the restart
            self.report_failures += 1
            self._log.error("report of task %s crash failed: %s", slot.name, describe_error(exc))
