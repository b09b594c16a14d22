"""The driver rows beyond the thermostat's simulated ones, and pin aliases: loaded on first need.

``all_drivers()`` adds to ``hw.build.DRIVERS`` the simulated bed, camera and status LED parts,
the MicroPython drivers over ``machine`` (``hw/mp``) and, on CPython, the Raspberry Pi's
(``hw/linux``). ``pin_numbers`` resolves a board's pin aliases. ``hw.build`` imports this
module only when a board names a driver it does not have or has a ``pins`` section.
"""

from device.errors import ConfigError
from hw.build import DRIVERS, register_driver


def _sim_camera(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    from hw.sim.camera import build_sim_camera

    return build_sim_camera(name, options, world)


def _sim_bed_part(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    from hw.sim.bed_build import build_part

    return build_part(name, options, world)


def _sim_status_led(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    from hw.sim.indicator import SimStatusLed

    return SimStatusLed(world.clock, name)


def _mp_driver(driver: str):  # type: ignore[no-untyped-def]
    # hw/mp/factories.py loads only when a board builds one of its parts.
    def factory(name: str, options: dict, world):  # type: ignore[no-untyped-def]
        from hw.mp.factories import FACTORIES

        return FACTORIES[driver](name, options, world)

    return factory


def _register_sim_extras() -> None:
    # The bed's, the camera's and the status LED's simulated parts.
    register_driver(
        "sim_bed_thermometer", _sim_bed_part, True, ("side", "initial_c", "ambient_c", "tau_s", "heat_c_s", "cool_c_s")
    )
    register_driver("sim_bed_switch", _sim_bed_part, True, ("side", "role"))
    register_driver("sim_bed_motor", _sim_bed_part, True, ("section", "speed_pct_s", "max_pct"))
    register_driver("sim_bed_position", _sim_bed_part, True, ("section", "motor"))
    register_driver("sim_buttons", _sim_bed_part, True, ())
    register_driver("sim_status_led", _sim_status_led, True, ())
    register_driver("sim_camera", _sim_camera, True, ("scene", "width", "height"))


def _register_mp_drivers() -> None:
    # MicroPython drivers over `machine` (hw/mp); where `machine` has no Pin they say "not available".
    from hw.mp.options import OPTIONS

    for driver in OPTIONS:
        register_driver(driver, _mp_driver(driver), False, OPTIONS[driver])


def _register_linux_drivers() -> None:
    # Raspberry Pi drivers (hw/linux: sysfs GPIO, the kernel's 1-Wire, /dev/watchdog): CPython only.
    from device.compat import IS_MICROPYTHON

    if IS_MICROPYTHON:
        return
    from hw.linux.factories import FACTORIES, OPTIONS

    for driver in OPTIONS:
        register_driver(driver, FACTORIES[driver], False, OPTIONS[driver])


def all_drivers() -> dict:
    """``DRIVERS`` with every row, the board driver tables included."""
    if "sim_camera" not in DRIVERS:  # the table itself says whether this ran (hw.build may be reloaded)
        _register_sim_extras()
        _register_mp_drivers()
        _register_linux_drivers()
    return DRIVERS


def pin_numbers(name: str, spec, pins: dict):  # type: ignore[no-untyped-def]
    """``spec`` with its pin options (``pin``, ``*_pin``) as numbers: drivers never see the board's aliases."""
    if not isinstance(spec, dict):
        return spec
    out = spec
    for key in spec:
        if key != "pin" and not key.endswith("_pin"):
            continue
        value = spec[key]
        seen = 0
        while isinstance(value, str) and seen <= len(pins):  # aliases may chain; a cycle runs out
            if value not in pins:
                raise ConfigError("hw.%s.%s" % (name, key), "unknown pin %r" % (value,))
            value = pins[value]
            seen += 1
        if isinstance(value, str):
            raise ConfigError("hw.%s.%s" % (name, key), "pin alias cycle")
        if value is not spec[key]:
            if out is spec:
                out = dict(spec)
            out[key] = value
    return out
