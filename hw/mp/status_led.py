"""A single status LED showing the device's degraded-mode status as blink patterns.

    cloud_ok    steady on
    local_only  slow blink (1 s on, 1 s off): working, no cloud
    fault       fast blink (0.2 s on, 0.2 s off): needs attention

``show(mode)`` only records the mode (never blocks); ``update(now_ms)``
puts the pin where the pattern says, and ``run(clock)`` calls it every
``step_ms``. A failing pin write is counted, never raised.
"""

from hw.interfaces_extra import StatusIndicator

# mode -> (on ms, off ms); off 0 means steady on.
PATTERNS = {
    "cloud_ok": (1000, 0),
    "local_only": (1000, 1000),
    "fault": (200, 200),
}


class StatusLed(StatusIndicator):
    def __init__(self, pin, active_low: bool = False, mode: str = "local_only") -> None:  # type: ignore[no-untyped-def]
        self.pin = pin
        self.active_low = active_low
        self.mode = mode if mode in PATTERNS else "fault"
        self.lit = False
        self.write_errors = 0

    def show(self, mode: str) -> None:
        # An unknown mode is a bug upstream; showing "fault" is the honest fallback.
        self.mode = mode if mode in PATTERNS else "fault"

    def lit_at(self, now_ms: int) -> bool:
        on_ms, off_ms = PATTERNS[self.mode]
        if off_ms == 0:
            return True
        return now_ms % (on_ms + off_ms) < on_ms

    def update(self, now_ms: int) -> None:
        lit = self.lit_at(now_ms)
        try:
            self.pin.value(1 if lit != self.active_low else 0)
        except OSError:
            self.write_errors += 1
            return
        self.lit = lit

    async def run(self, clock, step_ms: int = 100) -> None:  # type: ignore[no-untyped-def]
        while True:
            self.update(clock.now_ms())
            await clock.sleep_ms(step_ms)
