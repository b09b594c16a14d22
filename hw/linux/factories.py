"""Board-table factories for the Raspberry Pi (CPython): sysfs GPIO, the kernel's 1-Wire, /dev/watchdog.

The relay, button and status LED are the ``hw/mp`` drivers over a
``SysfsPin``; options have the ``hw/mp`` meaning plus ``sysfs`` (default
``/sys``, a directory tree in tests).
"""

from __future__ import annotations

from typing import Any

from device.errors import ConfigError

OPTIONS = {
    "linux_relay": ("pin", "active_low", "sysfs"),
    "linux_button": ("pin", "active_low", "debounce_ms", "sysfs"),
    "linux_status_led": ("pin", "active_low", "sysfs"),
    "linux_w1_therm": ("pin", "device_id", "sysfs"),
    "linux_watchdog": ("device", "timeout_ms"),
}


def _get(name: str, options: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = options.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError("hw.%s.%s" % (name, key), "expected %s, got %r" % (kind.__name__, value))
    return value


def _line(name: str, options: dict[str, Any]) -> int:
    if options.get("pin") is None:
        raise ConfigError("hw.%s.pin" % name, "missing: which BCM line this part is wired to")
    return int(_get(name, options, "pin", int, None))


def _pin(name: str, options: dict[str, Any], output: bool, initial: int = 0) -> Any:
    from hw.linux.sysfs_gpio import SysfsPin

    try:
        return SysfsPin(_line(name, options), output, initial, _get(name, options, "sysfs", str, "/sys"))
    except OSError as exc:
        raise ConfigError("hw.%s.pin" % name, "cannot open GPIO through sysfs: %s" % exc) from None


def linux_relay(name: str, options: dict[str, Any], world: Any = None) -> Any:
    from hw.mp.gpio import Relay

    active_low = _get(name, options, "active_low", bool, False)
    return Relay(_pin(name, options, True, 1 if active_low else 0), active_low)


def linux_button(name: str, options: dict[str, Any], world: Any = None) -> Any:
    from hw.mp.button import Button

    active_low = _get(name, options, "active_low", bool, True)
    return Button(_pin(name, options, False), active_low, _get(name, options, "debounce_ms", int, 30))


def linux_status_led(name: str, options: dict[str, Any], world: Any = None) -> Any:
    from hw.mp.status_led import StatusLed

    active_low = _get(name, options, "active_low", bool, False)
    return StatusLed(_pin(name, options, True, 1 if active_low else 0), active_low)


def linux_w1_therm(name: str, options: dict[str, Any], world: Any = None) -> Any:
    from hw.linux.w1_therm import W1Therm

    device_id = options.get("device_id")
    if device_id is not None:
        _get(name, options, "device_id", str, None)
    return W1Therm(device_id, _get(name, options, "sysfs", str, "/sys"))


def linux_watchdog(name: str, options: dict[str, Any], world: Any = None) -> Any:
    from hw.linux.watchdog import LinuxWdt
    from hw.mp.watchdog import Watchdog

    path = _get(name, options, "device", str, "/dev/watchdog")
    # The kernel's timeout is set by the driver (bcm2835_wdt: 15 s); timeout_ms here is informational.
    return Watchdog(lambda _ms: LinuxWdt(path), _get(name, options, "timeout_ms", int, 15000))


FACTORIES = {
    "linux_relay": linux_relay,
    "linux_button": linux_button,
    "linux_status_led": linux_status_led,
    "linux_w1_therm": linux_w1_therm,
    "linux_watchdog": linux_watchdog,
}
