"""A simulated status LED: records every mode it was asked to show, with the time."""

from hw.interfaces_extra import StatusIndicator


class SimStatusLed(StatusIndicator):
    def __init__(self, clock, name: str = "status_led") -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.name = name
        self.mode = "local_only"
        self.shown: list = []  # [(t_ms, mode)], one per show() call

    def show(self, mode: str) -> None:
        self.mode = mode
        self.shown.append((self.clock.now_ms(), mode))
