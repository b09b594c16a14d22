"""Board-table factories for the ``hw/mp`` drivers: ``(name, options, world) -> part``.

Each imports ``machine`` (and ``onewire``) when called, builds the ``Pin``,
``ADC``, ``PWM``, ``OneWire`` or ``WDT`` objects from the part's options, and
hands them to the driver. Pin options arrive as numbers (``hw/build.py``
resolves the board's aliases first). Where ``machine`` has no ``Pin`` (CPython,
the MicroPython unix port) the factory says the driver is not available here.
"""

from device.errors import ConfigError


def _machine(name: str, driver: str, module: str = "machine", attr: str = "Pin"):  # type: ignore[no-untyped-def]
    try:
        mod = __import__(module)
    except ImportError:
        mod = None
    if mod is None or not hasattr(mod, attr):
        raise ConfigError(
            "hw.%s.driver" % name,
            "driver '%s' is not available on this interpreter: it needs MicroPython's %s.%s"
            " (a board or the virtual board)" % (driver, module, attr),
        )
    return mod


def _opt(name: str, options: dict, key: str, kinds: tuple, default, lo=None, hi=None):  # type: ignore[no-untyped-def]
    value = options.get(key, default)
    if value is None and default is None:
        return None
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and lo is not None and not (lo <= value <= hi):
        ok = False
    if not ok:
        want = "/".join(k.__name__ for k in kinds)
        if lo is not None:
            want += " in %s..%s" % (lo, hi)
        raise ConfigError("hw.%s.%s" % (name, key), "expected %s, got %r" % (want, value))
    return value


def _pin_no(name: str, options: dict, key: str = "pin", required: bool = True):  # type: ignore[no-untyped-def]
    value = options.get(key)
    if value is None:
        if required:
            raise ConfigError("hw.%s.%s" % (name, key), "missing: which pin this part is wired to")
        return None
    return _opt(name, options, key, (int,), None, 0, 255)


def _pull(machine, name: str, options: dict, key: str, default):  # type: ignore[no-untyped-def]
    pull = _opt(name, options, key, (str,), default)
    if pull is None or pull == "none":
        return None
    if pull == "up":
        return machine.Pin.PULL_UP
    if pull == "down":
        return machine.Pin.PULL_DOWN
    raise ConfigError("hw.%s.%s" % (name, key), "expected 'up', 'down' or 'none', got %r" % (pull,))


def _in_pin(machine, number: int, pull):  # type: ignore[no-untyped-def]
    if pull is None:
        return machine.Pin(number, machine.Pin.IN)
    return machine.Pin(number, machine.Pin.IN, pull)


def _out_pin(machine, number: int, active_low: bool):  # type: ignore[no-untyped-def]
    # Start at the inactive level so an active-low relay does not click on at boot.
    return machine.Pin(number, machine.Pin.OUT, value=1 if active_low else 0)


def digital_in(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.gpio import DigitalIn

    machine = _machine(name, "digital_in")
    pull = _pull(machine, name, options, "pull", None)
    active_low = _opt(name, options, "active_low", (bool,), False)
    return DigitalIn(_in_pin(machine, _pin_no(name, options), pull), active_low)


def digital_out(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.gpio import DigitalOut

    machine = _machine(name, "digital_out")
    active_low = _opt(name, options, "active_low", (bool,), False)
    return DigitalOut(_out_pin(machine, _pin_no(name, options), active_low), active_low)


def relay(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.gpio import DigitalIn, Relay

    machine = _machine(name, "relay")
    active_low = _opt(name, options, "active_low", (bool,), False)
    feedback = None
    fb_pin = _pin_no(name, options, "feedback_pin", False)
    if fb_pin is not None:
        pull = _pull(machine, name, options, "feedback_pull", None)
        fb_low = _opt(name, options, "feedback_active_low", (bool,), False)
        feedback = DigitalIn(_in_pin(machine, fb_pin, pull), fb_low)
    return Relay(_out_pin(machine, _pin_no(name, options), active_low), active_low, feedback)


def pwm_heater(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.pwm_heater import PwmHeater

    machine = _machine(name, "pwm_heater", "machine", "PWM")
    freq = _opt(name, options, "freq_hz", (int,), 10, 1, 40000000)
    max_power = _opt(name, options, "max_power", (int, float), 1.0, 0.01, 1.0)
    pwm = machine.PWM(_out_pin(machine, _pin_no(name, options), False))
    return PwmHeater(pwm, freq, float(max_power))


def thermistor_adc(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.thermistor import ThermistorAdc

    machine = _machine(name, "thermistor_adc", "machine", "ADC")
    num = (int, float)
    beta = _opt(name, options, "beta", num, 3950.0, 100.0, 100000.0)
    r0 = _opt(name, options, "r0_ohm", num, 10000.0, 1.0, 1e8)
    t0 = _opt(name, options, "t0_c", num, 25.0, -50.0, 150.0)
    series = _opt(name, options, "series_ohm", num, 10000.0, 1.0, 1e8)
    low = _opt(name, options, "thermistor_low", (bool,), True)
    samples = _opt(name, options, "samples", (int,), 4, 1, 64)
    adc = machine.ADC(machine.Pin(_pin_no(name, options)))
    if hasattr(adc, "atten") and hasattr(machine.ADC, "ATTN_11DB"):
        adc.atten(machine.ADC.ATTN_11DB)  # ESP32: the full 0..3.3 V range
    return ThermistorAdc(adc, beta, r0, t0, series, low, samples)


def ds18b20(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.ds18b20 import DS18B20

    machine = _machine(name, "ds18b20")
    onewire = _machine(name, "ds18b20", "onewire", "OneWire")
    bits = _opt(name, options, "resolution_bits", (int,), 12, 9, 12)
    rom_hex = _opt(name, options, "rom", (str,), None)
    rom = None
    if rom_hex is not None:
        try:
            rom = bytes(int(rom_hex[i : i + 2], 16) for i in range(0, len(rom_hex), 2))
        except ValueError:
            rom = b""
        if len(rom) != 8:
            raise ConfigError("hw.%s.rom" % name, "expected 16 hex digits (the sensor's 64-bit ROM code)")
    bus = onewire.OneWire(machine.Pin(_pin_no(name, options)))
    return DS18B20(bus, rom, bits)


def button(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.button import Button

    machine = _machine(name, "button")
    active_low = _opt(name, options, "active_low", (bool,), True)
    pull = _pull(machine, name, options, "pull", "up" if active_low else "down")
    debounce = _opt(name, options, "debounce_ms", (int,), 30, 0, 10000)
    return Button(_in_pin(machine, _pin_no(name, options), pull), active_low, debounce)


def motor(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.gpio import DigitalIn
    from hw.mp.motor import EndStopMotor

    machine = _machine(name, "motor")
    stops_low = _opt(name, options, "stops_active_low", (bool,), True)
    pull = _pull(machine, name, options, "stops_pull", "up" if stops_low else "down")
    stops = []
    for key in ("stop_up_pin", "stop_down_pin"):
        number = _pin_no(name, options, key, False)
        stops.append(None if number is None else DigitalIn(_in_pin(machine, number, pull), stops_low))
    up = _out_pin(machine, _pin_no(name, options, "in_up_pin"), False)
    down = _out_pin(machine, _pin_no(name, options, "in_down_pin"), False)
    return EndStopMotor(up, down, stops[0], stops[1])


def status_led(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.status_led import StatusLed

    machine = _machine(name, "status_led")
    active_low = _opt(name, options, "active_low", (bool,), False)
    return StatusLed(_out_pin(machine, _pin_no(name, options), active_low), active_low)


def watchdog(name: str, options: dict, world=None):  # type: ignore[no-untyped-def]
    from hw.mp.watchdog import Watchdog

    machine = _machine(name, "watchdog", "machine", "WDT")
    # rp2040's WDT tops out at 8388 ms; ESP32 takes much longer ones.
    timeout = _opt(name, options, "timeout_ms", (int,), 8000, 1000, 8388)

    def make_wdt(ms: int):  # type: ignore[no-untyped-def]
        return machine.WDT(timeout=ms)

    return Watchdog(make_wdt, timeout)


FACTORIES = {
    "digital_in": digital_in,
    "digital_out": digital_out,
    "relay": relay,
    "pwm_heater": pwm_heater,
    "thermistor_adc": thermistor_adc,
    "ds18b20": ds18b20,
    "button": button,
    "motor": motor,
    "status_led": status_led,
    "watchdog": watchdog,
}
