"""``brickproof board check FILE...``: the board schema plus what the chip allows.

Loading a board (``device/board.py``) checks its shape. This adds the rules
of the silicon, which only a host tool needs to know:

* a pin that does not exist on the chip, or is taken by the board itself
  (ESP32 GPIO6-11: the SPI flash; Pico W GP23-25 and GP29: the wireless chip);
* an output on an input-only pin (ESP32 GPIO34-39, which also have no pulls);
* strapping pins (ESP32 GPIO0, 2, 5, 12, 15) and the Pi's ID EEPROM pins: warned;
* an ADC part on a pin with no ADC (ESP32 ADC2 pins: warned, Wi-Fi takes ADC2);
* the same pin used by two parts;
* a driver that does not exist, or does not run on the board's runtime,
  and options the driver does not take;
* each app's settings (``device/config.py``).

Every finding names the JSON path (``hw.heater.pin``). Exit status: 0 when
no board has an error (warnings are printed), 1 when one does, 2 for usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from device.board import load_board, resolve_pin
from device.errors import ConfigError

ERROR = "error"
WARNING = "warning"

# Which pin options a driver drives (an output, or open-drain like 1-Wire) or samples with its ADC.
OUTPUT_PINS = {
    "relay": ("pin",),
    "digital_out": ("pin",),
    "pwm_heater": ("pin",),
    "status_led": ("pin",),
    "ds18b20": ("pin",),
    "motor": ("in_up_pin", "in_down_pin"),
    "linux_relay": ("pin",),
    "linux_status_led": ("pin",),
    "linux_w1_therm": ("pin",),
}
ADC_PINS = {"thermistor_adc": ("pin",)}
# Inputs whose driver turns on the chip's pull resistor unless told "none".
PULLED_PINS = {"button": ("pin", "pull"), "motor": ("stop_up_pin", "stops_pull"), "digital_in": ("pin", "pull")}

ESP32_MISSING = (20, 24, 28, 29, 30, 31)
ESP32_FLASH = (6, 7, 8, 9, 10, 11)
ESP32_INPUT_ONLY = (34, 35, 36, 37, 38, 39)
ESP32_STRAPPING = (0, 2, 5, 12, 15)
ESP32_ADC1 = (32, 33, 34, 35, 36, 37, 38, 39)
ESP32_ADC2 = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)
RP2040_WIRELESS = (23, 24, 25, 29)
RP2040_ADC = (26, 27, 28)
BCM_ID_EEPROM = (0, 1)


class Finding:
    def __init__(self, level: str, path: str, message: str) -> None:
        self.level = level
        self.path = path
        self.message = message

    def __repr__(self) -> str:
        return "%s: %s: %s" % (self.level, self.path, self.message)


def check_file(path: str) -> list[Finding]:
    """Load ``path`` and check it; a load error is the one finding."""
    try:
        board = load_board(path)
    except ConfigError as exc:
        return [Finding(ERROR, exc.path or "(file)", exc.message)]
    return check_board(board)


def check_board(board: dict[str, Any]) -> list[Finding]:
    """The chip, driver and app findings for a loaded board, errors first, then by path."""
    out: list[Finding] = []
    used: dict[int, str] = {}
    hw = board.get("hw") or {}
    for part in sorted(hw):
        _check_driver(board, part, hw[part], out)
        for key in sorted(hw[part]):
            if key != "pin" and not key.endswith("_pin"):
                continue
            raw = hw[part][key]
            if raw is None:
                continue
            path = "hw.%s.%s" % (part, key)
            try:
                number = resolve_pin(board, raw, path)
            except ConfigError as exc:
                out.append(Finding(ERROR, exc.path, exc.message))
                continue
            if number in used:
                out.append(Finding(ERROR, path, "pin %d is already used by %s" % (number, used[number])))
            else:
                used[number] = path
            _check_pin(board, part, key, number, path, out)
    _check_apps(board, out)
    out.sort(key=lambda f: (f.level != ERROR, f.path))
    return out


def _check_driver(board: dict[str, Any], part: str, spec: dict[str, Any], out: list[Finding]) -> None:
    from hw.build_more import all_drivers

    drivers = all_drivers()
    from hw.mp.options import OPTIONS as MP_OPTIONS

    driver = spec.get("driver")
    path = "hw.%s.driver" % part
    row = drivers.get(driver) if isinstance(driver, str) else None
    if row is None or not isinstance(driver, str):
        out.append(Finding(ERROR, path, "unknown driver %r (known: %s)" % (driver, ", ".join(sorted(drivers)))))
        return
    for key in sorted(spec):
        if key != "driver" and key not in row[2]:
            takes = ", ".join(row[2]) or "none"
            out.append(
                Finding(ERROR, "hw.%s.%s" % (part, key), "driver %r does not take it (it takes: %s)" % (driver, takes))
            )
    runtime = board.get("runtime", "any")
    if driver in MP_OPTIONS and runtime == "cpython":
        out.append(Finding(ERROR, path, "driver %r needs MicroPython's machine; this board runs CPython" % driver))
    if driver.startswith("linux_") and runtime == "micropython":
        out.append(Finding(ERROR, path, "driver %r runs on CPython on Linux; this board runs MicroPython" % driver))
    if driver.startswith("sim_") and not board.get("sim"):
        out.append(Finding(ERROR, path, "driver %r needs a simulated world (the board has no 'sim' section)" % driver))


def _check_pin(board: dict[str, Any], part: str, key: str, n: int, path: str, out: list[Finding]) -> None:
    chip = board.get("chip", "host")
    spec = board["hw"][part]
    driver = spec.get("driver")
    is_output = key in OUTPUT_PINS.get(driver, ())
    is_adc = key in ADC_PINS.get(driver, ())
    pulled = PULLED_PINS.get(driver)
    wants_pull = pulled is not None and pulled[0] == key and spec.get(pulled[1]) not in ("none",)
    if driver == "motor" and key == "stop_down_pin":
        wants_pull = spec.get("stops_pull") != "none"

    def add(level: str, message: str) -> None:
        out.append(Finding(level, path, message))

    if chip == "esp32":
        if n > 39 or n in ESP32_MISSING:
            add(ERROR, "the ESP32 has no GPIO%d" % n)
        elif n in ESP32_FLASH:
            add(ERROR, "GPIO%d is wired to the SPI flash on ESP32 modules" % n)
        else:
            if n in ESP32_INPUT_ONLY:
                if is_output:
                    add(ERROR, "GPIO%d is input-only on the ESP32: it cannot drive a %s" % (n, driver))
                elif wants_pull:
                    add(WARNING, "GPIO%d has no internal pull resistor: fit an external one (or set pull none)" % n)
            if n in ESP32_STRAPPING:
                add(WARNING, "GPIO%d is a strapping pin: what is wired to it can change how the ESP32 boots" % n)
            if is_adc and n not in ESP32_ADC1:
                if n in ESP32_ADC2:
                    add(WARNING, "GPIO%d is on ADC2, which cannot be read while Wi-Fi is on; use GPIO32-39" % n)
                else:
                    add(ERROR, "GPIO%d has no ADC" % n)
    elif chip in ("rp2040", "rp2350"):
        if n in RP2040_WIRELESS:
            add(ERROR, "GP%d is not free: the Pico W's wireless chip uses GP23-25 and GP29" % n)
        elif n > 29:
            add(ERROR, "the RP2040 has no GP%d" % n)
        elif is_adc and n not in RP2040_ADC:
            add(ERROR, "GP%d has no ADC (GP26-28 do)" % n)
    elif chip in ("bcm2711", "bcm2712"):
        if n > 27:
            add(ERROR, "the Raspberry Pi header has no BCM%d (BCM0-27)" % n)
        elif n in BCM_ID_EEPROM:
            add(WARNING, "BCM%d is reserved for the HAT ID EEPROM" % n)
        if is_adc:
            add(ERROR, "the Raspberry Pi has no ADC")


def _check_apps(board: dict[str, Any], out: list[Finding]) -> None:
    from device.config import APP_NAMES, configure_apps

    for name in sorted(board.get("apps") or {}):
        if name not in APP_NAMES:
            out.append(
                Finding(WARNING, "apps." + name, "no app %r in this build (known: %s)" % (name, ", ".join(APP_NAMES)))
            )
            continue
        try:
            configure_apps(board, [name])
        except ConfigError as exc:
            out.append(Finding(ERROR, exc.path or "apps." + name, exc.message))


# -- command line ------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser("board", help="board profiles: check them against the chip's rules")
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    check = actions.add_parser("check", help="schema, chip rules (pins, strapping, ADC), drivers and apps")
    check.add_argument("files", nargs="+", metavar="FILE", help="board JSON files")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        findings = check_file(path)
        for f in findings:
            sys.stdout.write("%s: %s: %s: %s\n" % (path, f.level, f.path, f.message))
            if f.level == ERROR or args.strict:
                failed = True
        if not findings:
            sys.stdout.write("%s: ok\n" % path)
    sys.stdout.flush()
    return 1 if failed else 0
