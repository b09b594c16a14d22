"""The trial-boot health gate: is the new image good enough to keep?

Checked every ``check_every_ms`` for ``health_ms`` after a trial boot; any
failing check fails the gate at once (the update is rolled back):

* every app task is running and progressing: the watchdog feeder's check
  (``device.watchdog.WatchdogFeeder.check`` with no watchdog to feed), so an
  app that crashed (backoff), failed or stalled fails the gate;
* the store works: a private state key (``_ota.probe``) written and read back;
* no app reports a fault (``device.core.health.is_fault``);
* with ``require_link`` and a link: the link reached ``online`` before
  ``health_ms`` ended (a bundle that cannot reach the cloud could never be
  fixed by the next update).

``step(now_ms)`` returns ``""`` while undecided, ``"pass"``, or the failure
reason. Pure bookkeeping over the device; the OTA task drives it.
"""

from device.core.health import is_fault
from device.watchdog import WatchdogFeeder

PROBE_KEY = "_ota.probe"
PASS = "pass"
STALL_MIN_MS = 10000  # as device.parttasks: an app's ticks may pause this long


def _ticks_of(app):  # type: ignore[no-untyped-def]
    return lambda: app.ticks


class HealthGate:
    def __init__(self, device, health_ms: int, require_link: bool) -> None:  # type: ignore[no-untyped-def]
        self.device = device
        self.health_ms = health_ms
        self.require_link = require_link and device.link is not None
        clock = device.env.clock
        self.start_ms = clock.now_ms()
        watched = []
        stall_ms = STALL_MIN_MS
        for app in device.apps:
            watched.append((app.name, _ticks_of(app) if hasattr(app, "ticks") else None))
            stall_ms = max(stall_ms, 3 * getattr(app, "settings", {}).get("tick_ms", 0))
        self.tasks = WatchdogFeeder(None, clock, device.supervisor, watched, stall_ms)
        self.link_seen = not self.require_link
        self.checks = 0
        self._probe = 0

    def note_link(self) -> None:
        """Look at the link now (called often: a short ONLINE spell counts)."""
        link = self.device.link
        if link is not None and link.state.state == "online":
            self.link_seen = True

    async def step(self, now_ms: int) -> str:
        self.checks += 1
        self.note_link()
        reason = self.tasks.check(now_ms)
        if reason:
            return "app task " + reason
        for app in self.device.apps:
            health = app.health()
            if is_fault(health):
                return "app %s reports %s" % (app.name, health)
        reason = await self._store_probe()
        if reason:
            return reason
        if now_ms - self.start_ms < self.health_ms:
            return ""
        if not self.link_seen:
            return "link not online within %d ms" % self.health_ms
        return PASS

    async def _store_probe(self) -> str:
        self._probe += 1
        store = self.device.env.store
        try:
            await store.put_state(PROBE_KEY, self._probe)
            entry = await store.get_state(PROBE_KEY)
        except Exception as exc:  # any store failure is a failed check
            return "store probe failed: %r" % (exc,)
        if entry is None or entry.value != self._probe:
            return "store probe read back %r" % (None if entry is None else entry.value,)
        return ""
