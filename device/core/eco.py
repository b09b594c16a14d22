"""Thermostat eco fallback (pure): no cloud schedule update for ``after_h`` hours -> eco targets.

A thermostat whose owner's cloud schedule has gone quiet for that long (the cloud is down,
or the account is gone) saves energy: the heating setpoint is lowered to ``eco_setpoint_c``
and the cooling setpoint raised to ``eco_cool_setpoint_c``, never the other way. Any cloud
schedule update ends it. ``after_h`` 0 turns it off. Time is the device's monotonic clock,
counted from boot or the last cloud update (a reboot starts the count again).
"""

from device.core.thermostat import Targets


class EcoWatch:
    def __init__(self, after_h: float, now_ms: int) -> None:
        self.after_ms = int(after_h * 3600000)
        self.last_cloud_ms = now_ms
        self.active = False
        self.since_ms: int | None = None  # when eco began

    def cloud_update(self, now_ms: int) -> None:
        self.last_cloud_ms = now_ms

    def check(self, now_ms: int) -> bool | None:
        """The new ``active`` when it changed this call, else None."""
        due = self.after_ms > 0 and now_ms - self.last_cloud_ms >= self.after_ms
        if due == self.active:
            return None
        self.active = due
        self.since_ms = now_ms if due else None
        return due

    def apply(self, settings: dict, targets: Targets) -> Targets:
        return eco_targets(settings, targets)


def eco_targets(settings: dict, targets: Targets) -> Targets:
    heat = min(targets.setpoint_c, settings["eco_setpoint_c"])
    cool = max(targets.cool_setpoint_c, settings["eco_cool_setpoint_c"])
    return Targets(targets.mode, heat, cool)
