"""A stand-in ``machine`` for running a real board profile under the MicroPython unix port (tests only).

Pins keep their level; the ADC reads mid-scale (25 C on a 10k/10k
thermistor divider); the WDT counts feeds; ``reset_cause`` is power-on.
"""

PWRON_RESET = 1
SOFT_RESET = 5


class Pin:
    IN = 1
    OUT = 2
    PULL_UP = 3
    PULL_DOWN = 4

    def __init__(self, number, mode=1, pull=None, value=None):
        self.number = number
        self.level = 1 if value else 0
        if pull == Pin.PULL_UP:
            self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


class ADC:
    def __init__(self, pin):
        self.pin = pin

    def read_u16(self):
        return 32768


class PWM:
    def __init__(self, pin):
        self.pin = pin

    def freq(self, hz):
        pass

    def duty_u16(self, n):
        pass


class WDT:
    feeds = 0
    made = 0

    def __init__(self, timeout=5000):
        WDT.made += 1

    def feed(self):
        WDT.feeds += 1


def reset_cause():
    return PWRON_RESET
