"""A push button with debounce, polled (no interrupt handler to allocate in)."""

from device import compat


class Button:
    """``poll()`` returns ``"press"`` or ``"release"`` on a debounced edge, else ``None``.

    A change of the raw level counts only once it has held for ``debounce_ms``.
    ``pin`` is ``Pin``-like (``value()``); buttons usually pull up and short to
    ground, hence ``active_low=True``. ``pressed`` is the debounced state.
    """

    def __init__(self, pin, active_low: bool = True, debounce_ms: int = 30, now_ms=None) -> None:  # type: ignore[no-untyped-def]
        self.pin = pin
        self.active_low = active_low
        self.debounce_ms = debounce_ms
        self._now_ms = now_ms if now_ms is not None else compat.monotonic_ms
        self.pressed = self._raw()
        self._candidate = self.pressed
        self._since_ms = self._now_ms()
        self.presses = 0

    def _raw(self) -> bool:
        return bool(self.pin.value()) != self.active_low

    def poll(self) -> str | None:
        now = self._now_ms()
        raw = self._raw()
        if raw != self._candidate:
            self._candidate = raw
            self._since_ms = now
            return None
        if raw == self.pressed or now - self._since_ms < self.debounce_ms:
            return None
        self.pressed = raw
        if raw:
            self.presses += 1
            return "press"
        return "release"
