"""Every simulated part's fault kinds, in one place.

The board's ``sim.faults`` timeline, ``brickproof run --fault`` and
``SimWorld.inject`` accept a kind from ``ALL_FAULTS``; whether a given part
can have it is the part's own list (``SimWorld.register_part``), checked
once the parts are built. Kinds:

* thermometers (room sensor, bed pads): ``stuck``, ``nan``, ``out_of_range``, ``disconnected``
* relays and pad switches: ``stuck_off``, ``stuck_on``
* bed base motors: ``stall`` (commanded but not moving)
* bed base position sensors: ``disconnected``, ``stuck``
"""

THERMOMETER_FAULTS = ("stuck", "nan", "out_of_range", "disconnected")
RELAY_FAULTS = ("stuck_off", "stuck_on")
MOTOR_FAULTS = ("stall",)
POSITION_FAULTS = ("disconnected", "stuck")


def _distinct(*groups: tuple) -> tuple:
    out: list = []
    for group in groups:
        for kind in group:
            if kind not in out:
                out.append(kind)
    return tuple(out)


ALL_FAULTS = _distinct(THERMOMETER_FAULTS, RELAY_FAULTS, MOTOR_FAULTS, POSITION_FAULTS)
