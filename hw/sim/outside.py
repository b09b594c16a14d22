"""Outside air temperature for the simulated room: a daily sinusoid plus slow weather.

``temp_c(day_ms)`` takes milliseconds since simulated midnight of day 0. The
daily cycle wraps every 24 h; the weather drift does not repeat, and both are
continuous in time (no jumps at the hour or at midnight), so a control law
never sees an artificial step it did not cause.
"""

import math

from device.compat import const

_DAY_MS = const(86400000)
_HOUR_MS = const(3600000)
_MASK32 = const(0xFFFFFFFF)
_GOLDEN = const(0x9E3779B9)


def _mix32(x: int) -> int:
    """murmur3's finaliser: scatters nearby integers over 32 bits."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & _MASK32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & _MASK32
    x ^= x >> 16
    return x


class OutsideProfile:
    """Outside temperature: ``mean_c - amplitude_c * cos(...)``, coldest at ``coldest_hour``.

    Weather is a value in ``[-weather_noise_c, +weather_noise_c]`` drawn for
    every whole hour and eased (smoothstep) between them. Each hourly value is
    a hash of a seed taken once from ``rand`` and the hour's index, so it does
    not depend on the order in which times are asked for.
    """

    def __init__(
        self,
        mean_c: float,
        amplitude_c: float,
        coldest_hour: float = 5.0,
        weather_noise_c: float = 0.0,
        rand=None,  # type: ignore[no-untyped-def]
    ) -> None:
        self.mean_c = float(mean_c)
        self.amplitude_c = abs(float(amplitude_c))
        self.coldest_hour = float(coldest_hour)
        self.weather_noise_c = abs(float(weather_noise_c))
        self._seed = rand.next_u32() if rand is not None else 1
        # The two knots around the last hour asked for: the room asks in order.
        self._knot_hour: int | None = None
        self._knot_a = 0.0
        self._knot_b = 0.0

    def bounds_c(self) -> tuple:
        """(lowest, highest) temperature this profile can ever return."""
        spread = self.amplitude_c + self.weather_noise_c
        return (self.mean_c - spread, self.mean_c + spread)

    def daily_c(self, day_ms: int) -> float:
        """The daily cycle alone (no weather)."""
        hours = (day_ms % _DAY_MS) / _HOUR_MS
        angle = 2.0 * math.pi * (hours - self.coldest_hour) / 24.0
        return self.mean_c - self.amplitude_c * math.cos(angle)

    def weather_c(self, day_ms: int) -> float:
        """The weather drift alone: smooth, bounded by ``weather_noise_c``."""
        if self.weather_noise_c == 0.0:
            return 0.0
        hour = day_ms // _HOUR_MS
        if hour != self._knot_hour:
            self._knot_a = self._knot(hour)
            self._knot_b = self._knot(hour + 1)
            self._knot_hour = hour
        frac = (day_ms - hour * _HOUR_MS) / _HOUR_MS
        ease = frac * frac * (3.0 - 2.0 * frac)
        return self._knot_a + (self._knot_b - self._knot_a) * ease

    def temp_c(self, day_ms: int) -> float:
        return self.daily_c(day_ms) + self.weather_c(day_ms)

    def _knot(self, hour: int) -> float:
        unit = _mix32(self._seed ^ _mix32(hour * _GOLDEN)) / 4294967295.0
        return self.weather_noise_c * (2.0 * unit - 1.0)
