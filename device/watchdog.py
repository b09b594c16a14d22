"""Feed the hardware watchdog only while the control loop is healthy.

The watchdog is the device's last resort against a control loop that hangs
or keeps crashing: then the feeding stops and the chip resets. Everything
else (the cloud link, the LAN API, the status LED) is left out on purpose:
a device must never reboot because the cloud is unreachable.

The control loop is healthy when every watched task (the apps, never the
link) is running in the ``Supervisor`` -- not in backoff after a crash, not
failed, not stopped -- and has made progress (its ``ticks`` counter moved)
within ``stall_ms``. A task that hangs the event loop outright stops this
task too, and the watchdog fires the same way.

A crash restarted within the watchdog's timeout costs nothing: feeding
resumes with the task. The watchdog driver arms itself on the first feed
(``hw/mp/watchdog.py``), so a slow boot never trips it.
"""

from device.log import get_logger

_log = get_logger("watchdog")

RUNNING = "running"  # device.runtime's slot state; not imported: the runtime is already loaded


class WatchdogFeeder:
    def __init__(self, wdt, clock, supervisor, watched: list, stall_ms: int = 10000, every_ms: int = 1000) -> None:  # type: ignore[no-untyped-def]
        """``watched``: ``[(task name, progress)]``; ``progress()`` returns a counter that
        moves while the task works (or ``progress`` is None: the task state alone counts)."""
        self.wdt = wdt
        self.clock = clock
        self.supervisor = supervisor
        self.stall_ms = stall_ms
        self.every_ms = every_ms
        now = clock.now_ms()
        # name -> [progress callable, last counter seen, when it last moved]
        self._watched = {}
        for name, progress in watched:
            self._watched[name] = [progress, None, now]
        self.feeds = 0
        self.withheld = 0
        self.reason = ""  # why the last check withheld the feed ("" when fed)

    def check(self, now_ms: int) -> str:
        """'' when the control loop is healthy, else the reason (and the feed is withheld)."""
        states = self.supervisor.stats()
        for name in self._watched:
            row = self._watched[name]
            slot = states.get(name)
            state = slot["state"] if slot else "missing"
            if state != RUNNING:
                return "%s %s" % (name, state)
            progress = row[0]
            if progress is None:
                continue
            count = progress()
            if count != row[1]:
                row[1] = count
                row[2] = now_ms
            elif now_ms - row[2] > self.stall_ms:
                return "%s stalled %d ms" % (name, now_ms - row[2])
        return ""

    def tend(self) -> bool:
        """One check; feed when healthy. True if fed."""
        reason = self.check(self.clock.now_ms())
        if reason:
            if not self.reason:  # once per streak: the reason's figures change every check
                _log.error("watchdog not fed: %s", reason)
            self.reason = reason
            self.withheld += 1
            return False
        if self.reason:
            _log.info("watchdog fed again")
            self.reason = ""
        self.wdt.feed()
        self.feeds += 1
        return True

    async def run(self) -> None:
        while True:
            self.tend()
            await self.clock.sleep_ms(self.every_ms)
