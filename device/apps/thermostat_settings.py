"""Thermostat settings (``apps.thermostat`` in a board profile): spec, defaults, checks.

Config-time only: once the device is configured, MicroPython releases this
module (and the schema validator) to give the heap back to the runtime.
"""

from device.core import schedule as sched
from device.core.thermostat import MODES
from device.errors import ConfigError
from device.schema import validate

SETTINGS_SPEC = {
    "type": "dict",
    "fields": {
        "sensor": {"type": "str", "default": "room_sensor", "doc": "hw part that reads the room"},
        "heater": {"type": "str", "nullable": True, "default": "heater"},
        "cooler": {"type": "str", "nullable": True, "default": None},
        "tick_ms": {"type": "int", "min": 100, "max": 600000, "default": 1000},
        "hysteresis_c": {"type": "float", "min": 0.05, "max": 5.0, "default": 0.5},
        "min_on_ms": {"type": "int", "min": 0, "max": 3600000, "default": 180000},
        "min_off_ms": {"type": "int", "min": 0, "max": 3600000, "default": 300000},
        "freeze_c": {"type": "float", "min": 0.0, "max": 10.0, "default": 5.0},
        "overtemp_c": {"type": "float", "min": 25.0, "max": 90.0, "default": 35.0},
        "setpoint_min_c": {"type": "float", "min": 5.0, "max": 30.0, "default": 5.0},
        "setpoint_max_c": {"type": "float", "min": 10.0, "max": 35.0, "default": 32.0},
        "auto_gap_c": {"type": "float", "min": 0.5, "max": 10.0, "default": 2.0},
        "plausible_min_c": {"type": "float", "min": -60.0, "max": 0.0, "default": -40.0},
        "plausible_max_c": {"type": "float", "min": 40.0, "max": 150.0, "default": 85.0},
        "stale_ms": {"type": "int", "min": 1000, "max": 3600000, "default": 60000},
        "stuck_ms": {"type": "int", "min": 0, "max": 86400000, "default": 1800000, "doc": "0 disables"},
        "telemetry_ms": {"type": "int", "min": 1000, "max": 86400000, "default": 60000},
        "utc_offset_s": {"type": "int", "min": -50400, "max": 50400, "default": 0},
        "default_mode": {"type": "str", "choices": list(MODES), "default": "heat"},
        "default_setpoint_c": {"type": "float", "min": 5.0, "max": 32.0, "default": 21.0},
        "default_cool_setpoint_c": {"type": "float", "min": 5.0, "max": 35.0, "default": 25.0},
        "default_schedule": {"type": "list", "default": [], "doc": "[{'at': 'HH:MM', 'setpoint_c': n}]"},
        "eco_after_h": {"type": "float", "min": 0.0, "max": 8760.0, "default": 0.0, "doc": "0: no eco fallback"},
        "eco_setpoint_c": {"type": "float", "min": 5.0, "max": 30.0, "default": 16.0},
        "eco_cool_setpoint_c": {"type": "float", "min": 20.0, "max": 35.0, "default": 29.0},
    },
}


def load_settings(board: dict) -> dict:
    """Validate ``apps.thermostat`` of a board; check the parts it names exist in ``hw``."""
    raw = board.get("apps", {}).get("thermostat", {})
    settings = validate(SETTINGS_SPEC, raw, "apps.thermostat", board.get("_source", ""))
    if settings["setpoint_min_c"] >= settings["setpoint_max_c"]:
        raise ConfigError("apps.thermostat.setpoint_max_c", "must be above setpoint_min_c")
    parts = board.get("hw") or {}
    for role in ("sensor", "heater", "cooler"):
        name = settings[role]
        if name is not None and name not in parts:
            known = ", ".join(sorted(parts))
            raise ConfigError("apps.thermostat." + role, "no hw part named %r (parts: %s)" % (name, known))
    if settings["heater"] is None and settings["cooler"] is None:
        raise ConfigError("apps.thermostat", "needs a heater or a cooler")
    sched.parse_schedule(
        settings["default_schedule"],
        settings["setpoint_min_c"],
        settings["setpoint_max_c"],
        "apps.thermostat.default_schedule",
    )
    settings["has_heater"] = settings["heater"] is not None
    settings["has_cooler"] = settings["cooler"] is not None
    return settings
