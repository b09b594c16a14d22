"""A heater switched by PWM (an SSR or MOSFET), usable as a plain on/off ``Switch``."""

from hw.interfaces import Switch

_FULL = 65535


class PwmHeater(Switch):
    """``set(on)`` is full power (times ``max_power``) or off; ``set_power(f)`` any fraction 0..1.

    ``pwm`` is a ``machine.PWM``-like object (``freq(hz)``, ``duty_u16(n)``).
    ``max_power`` caps the duty for an oversized element. Starts off.
    """

    def __init__(self, pwm, freq_hz: int = 10, max_power: float = 1.0) -> None:  # type: ignore[no-untyped-def]
        if not 0.0 < max_power <= 1.0:
            raise ValueError("max_power must be in (0, 1], got %r" % (max_power,))
        self.pwm = pwm
        self.max_power = max_power
        self.power = 0.0
        self.on = False
        pwm.freq(freq_hz)
        pwm.duty_u16(0)

    def set(self, on: bool) -> None:
        self.set_power(1.0 if on else 0.0)

    def set_power(self, fraction: float) -> None:
        if not fraction > 0.0:  # also NaN: off is the safe reading of a bad number
            fraction = 0.0
        elif fraction > 1.0:
            fraction = 1.0
        self.pwm.duty_u16(int(fraction * self.max_power * _FULL + 0.5))
        self.power = fraction
        self.on = fraction > 0.0
