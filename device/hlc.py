"""Hybrid logical clock stamps for state entries.

A stamp is one int: ``physical_ms * 65536 + counter``. Stamps from one clock
strictly increase, whether or not wall time is known (a device that booted
offline has no NTP time: the physical part then stays where the last stamp
left it and the counter moves). Once wall time is known, stamps jump to it.
Comparing two stamps is comparing ints, on both VMs.

The store restores the clock from the largest stamp it holds at open, so
stamps keep increasing across reboots even without a wall clock.
"""

from device.compat import const

COUNTER_BITS = const(16)
_COUNTER_SPAN = const(65536)


def make_stamp(physical_ms: int, counter: int = 0) -> int:
    return physical_ms * _COUNTER_SPAN + counter


def physical_ms(stamp: int) -> int:
    """The wall-clock milliseconds a stamp carries (0 if it was made before wall time was known)."""
    return stamp // _COUNTER_SPAN


class HLC:
    def __init__(self, last: int = 0) -> None:
        self.last = last

    def now(self, wall_ms: int | None = None) -> int:
        """A new stamp, larger than every stamp this clock made or observed."""
        candidate = self.last + 1
        if wall_ms is not None:
            from_wall = wall_ms * _COUNTER_SPAN
            if from_wall > candidate:
                candidate = from_wall
        self.last = candidate
        return candidate

    def observe(self, stamp: int) -> None:
        """Take in a stamp made elsewhere (the cloud, a LAN peer, the store at open)."""
        if stamp > self.last:
            self.last = stamp
