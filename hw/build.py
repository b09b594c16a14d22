"""``build_hw(board, world)``: the parts a board's ``hw`` section names, as a ``HwSet``.

The ``hw`` section maps a part name to ``{"driver": NAME, ...options}``. Each
driver is a row in ``DRIVERS``: a factory ``(name, options, world) -> part``,
whether it needs a simulated world, and the options it takes. Factories import
their modules when called, so a board only loads the drivers it uses (the
MicroPython ``hw.mp`` drivers, the Raspberry Pi's ``hw.linux`` ones, the bed's and the camera's
simulated parts join the table from ``hw/build_more.py`` on first need: a thermostat on a
128 KiB heap does not carry their rows).
"""

from device.errors import ConfigError
from hw.registry import HwSet

# Board drivers that a later build provides; named so the error can say "not yet", not "unknown".
PLANNED_DRIVERS = ("button", "ds18b20", "pwm_heater", "relay", "status_led", "thermistor_adc", "watchdog")


def _number(name: str, options: dict, key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError("hw.%s.%s" % (name, key), "must be a number >= 0, got %r" % (value,))
    return float(value)


def _sim_thermometer(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    from hw.sim.parts import SimThermometer

    noise_c = _number(name, options, "noise_c", 0.05)
    resolution_c = _number(name, options, "resolution_c", 0.0)
    return SimThermometer(world, name, noise_c, resolution_c)


def _sim_relay(name: str, options: dict, world):  # type: ignore[no-untyped-def]
    from hw.sim.parts import SimRelay

    load = options.get("load")
    loads = ", ".join(world.room.load_names()) or "none"
    if not isinstance(load, str) or not load:
        raise ConfigError("hw.%s.load" % name, "missing: name the room load this relay switches (one of: %s)" % loads)
    if load not in world.room.load_names():
        raise ConfigError("hw.%s.load" % name, "no load '%s' in sim.loads (known: %s)" % (load, loads))
    return SimRelay(world, name, load)


# driver name -> (factory, needs a SimWorld, options it accepts besides "driver")
DRIVERS = {
    "sim_thermometer": (_sim_thermometer, True, ("noise_c", "resolution_c")),
    "sim_relay": (_sim_relay, True, ("load",)),
}


def register_driver(name: str, factory, needs_world: bool = False, options: tuple = ()) -> None:  # type: ignore[no-untyped-def]
    """Add a driver to the table (board builds and tests use this)."""
    DRIVERS[name] = (factory, needs_world, options)


def build_hw(board: dict, world=None) -> HwSet:  # type: ignore[no-untyped-def]
    """Build every part in ``board["hw"]``; errors name the config path (``hw.heater.driver``)."""
    section = board.get("hw")
    parts = HwSet()
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError("hw", 'must be an object mapping part names to {"driver": ...}')
    pins = board.get("pins")
    for name in sorted(section):
        spec = section[name]
        if pins:
            from hw.build_more import pin_numbers

            spec = pin_numbers(name, spec, pins)
        parts.add(name, _build_part(name, spec, world))
    if world is not None:
        world.check_faults()
    return parts


def _build_part(name: str, spec, world):  # type: ignore[no-untyped-def]
    path = "hw." + name
    if not isinstance(spec, dict):
        raise ConfigError(path, 'must be an object with a "driver"')
    driver = spec.get("driver")
    if not isinstance(driver, str) or not driver:
        raise ConfigError(path + ".driver", "missing: which driver runs this part (known: %s)" % _known())
    row = DRIVERS.get(driver)
    if row is None:
        from hw.build_more import all_drivers

        row = all_drivers().get(driver)
    if row is None:
        if driver in PLANNED_DRIVERS:
            raise ConfigError(path + ".driver", "driver '%s' is not available on this interpreter/build yet" % driver)
        raise ConfigError(path + ".driver", "unknown driver '%s' (known: %s)" % (driver, _known()))
    factory, needs_world, accepted = row
    if needs_world and world is None:
        raise ConfigError(path + ".driver", "needs a simulated world (board has no 'sim' section)")
    for key in sorted(spec):
        if key != "driver" and key not in accepted:
            allowed = ", ".join(accepted) or "none"
            raise ConfigError(path + "." + key, "unknown option for driver '%s' (it takes: %s)" % (driver, allowed))
    return factory(name, spec, world)


def _known() -> str:
    from hw.build_more import all_drivers

    names = sorted(all_drivers())
    for name in PLANNED_DRIVERS:
        if name not in DRIVERS:
            names.append(name + " (not yet)")
    return ", ".join(names)
