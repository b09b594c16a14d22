"""Digital input, digital output and relay over ``Pin``-like objects (``value()`` / ``value(v)``)."""

from hw.interfaces import Switch


class DigitalIn:
    """A logical input: ``value()`` is True when the line is active (low, with ``active_low``)."""

    def __init__(self, pin, active_low: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.pin = pin
        self.active_low = active_low

    def value(self) -> bool:
        return bool(self.pin.value()) != self.active_low


class DigitalOut(Switch):
    """A logical output; starts off. ``set(True)`` drives the pin low with ``active_low``."""

    def __init__(self, pin, active_low: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.pin = pin
        self.active_low = active_low
        self.on = False
        self.pin.value(1 if active_low else 0)

    def set(self, on: bool) -> None:
        on = bool(on)
        self.pin.value(1 if on != self.active_low else 0)
        self.on = on


class Relay(DigitalOut):
    """A relay coil (many relay boards are active low), optionally with a feedback contact.

    ``sensed_on`` reads the feedback contact when one is wired (``feedback``, a
    ``DigitalIn``), else it is ``None``: the thermostat then trusts the command.
    """

    def __init__(self, pin, active_low: bool = False, feedback=None) -> None:  # type: ignore[no-untyped-def]
        DigitalOut.__init__(self, pin, active_low)
        self.feedback = feedback

    @property
    def sensed_on(self) -> bool | None:  # type: ignore[override]
        if self.feedback is None:
            return None
        return self.feedback.value()  # type: ignore[no-any-return]
