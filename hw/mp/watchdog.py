"""The hardware watchdog (``machine.WDT``), armed on the first feed.

A WDT cannot be stopped once started, and boot (opening and recovering the
flash store, building the apps) can take longer than its timeout. So the
driver holds a factory and starts the WDT only when the runtime first finds
the control loop healthy and feeds it (``device/watchdog.py`` decides when).
"""


class Watchdog:
    def __init__(self, make_wdt, timeout_ms: int = 8000) -> None:  # type: ignore[no-untyped-def]
        """``make_wdt(timeout_ms)`` returns a started ``WDT``-like object (``feed()``)."""
        if timeout_ms < 1:
            raise ValueError("timeout_ms must be >= 1")
        self._make_wdt = make_wdt
        self.timeout_ms = timeout_ms
        self._wdt = None
        self.feeds = 0

    @property
    def armed(self) -> bool:
        return self._wdt is not None

    def feed(self) -> None:
        if self._wdt is None:
            self._wdt = self._make_wdt(self.timeout_ms)
        self._wdt.feed()  # type: ignore[attr-defined]
        self.feeds += 1
