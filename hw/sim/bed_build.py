"""Build the simulated bed's parts from a board's ``hw`` section (called by ``hw.build``).

Options are checked here so errors name the config path: ``hw.left_temp.side``.
"""

from device.errors import ConfigError
from hw.sim import bed

SIDES = ("left", "right")
SECTIONS = ("head", "foot")
ROLES = ("heat", "cool")


def _choice(name: str, options: dict, key: str, choices: tuple) -> str:
    value = options.get(key)
    if value not in choices:
        raise ConfigError("hw.%s.%s" % (name, key), "must be one of %s, got %r" % (", ".join(choices), value))
    return str(value)


def _numbers(name: str, options: dict, keys: tuple) -> dict:
    out = {}
    for key in keys:
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError("hw.%s.%s" % (name, key), "must be a number >= 0, got %r" % (value,))
            out[key] = float(value)
    return out


PAD_OPTIONS = ("initial_c", "ambient_c", "tau_s", "heat_c_s", "cool_c_s")
MOTOR_OPTIONS = ("speed_pct_s", "max_pct")


def build_part(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    driver = options["driver"]
    if driver == "sim_bed_thermometer":
        side = _choice(name, options, "side", SIDES)
        return bed.SimPadThermometer(world, name, side, _numbers(name, options, PAD_OPTIONS))
    if driver == "sim_bed_switch":
        side = _choice(name, options, "side", SIDES)
        return bed.SimPadSwitch(world, name, side, _choice(name, options, "role", ROLES))
    if driver == "sim_bed_motor":
        section = _choice(name, options, "section", SECTIONS)
        return bed.SimBaseMotor(world, name, section, _numbers(name, options, MOTOR_OPTIONS))
    if driver == "sim_bed_position":
        section = _choice(name, options, "section", SECTIONS)
        motor = options.get("motor")
        if not isinstance(motor, str) or not motor:
            raise ConfigError("hw.%s.motor" % name, "name the motor part that moves this section")
        return bed.SimPosition(world, name, section, motor)
    return bed.SimButtons(world, name)
