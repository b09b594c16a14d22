"""The small interfaces device code programs against (duck-typed; no ``abc`` on MicroPython).

A part is built with everything it needs passed to its constructor (pins,
buses, a simulated room), never at import time.
"""


class TempSensor:
    """Reads a temperature in degrees Celsius.

    ``read_c()`` returns a float, or ``None`` when the sensor does not answer
    (disconnected, bus error). A float may still be NaN or out of range: the
    control law, not the driver, decides what is plausible.
    """

    def read_c(self) -> float | None:
        raise NotImplementedError


class Switch:
    """An on/off actuator (relay, contactor, heater enable).

    ``set(on)`` commands it; ``on`` is the last commanded state. A part
    that can sense its real state reports it as ``sensed_on`` (else ``None``).
    """

    on = False
    sensed_on: bool | None = None

    def set(self, on: bool) -> None:
        raise NotImplementedError
