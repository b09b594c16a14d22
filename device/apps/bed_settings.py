"""Smart bed settings (``apps.bed`` in a board profile): spec, defaults, checks.

Parts are found by name: per side ``<side>_temp``, ``<side>_heater``, ``<side>_cooler``;
per base section ``<section>_motor`` and ``<section>_position``; the local ``buttons``.
Config-time only: MicroPython releases this module once the device is configured.
"""

from device.core import schedule as sched
from device.core.bed import SECTIONS, SIDES
from device.errors import ConfigError
from device.schema import validate

HOUR_MS = 3600000

SETTINGS_SPEC = {
    "type": "dict",
    "fields": {
        "tick_ms": {"type": "int", "min": 100, "max": 60000, "default": 1000},
        "telemetry_ms": {"type": "int", "min": 1000, "max": 86400000, "default": 60000},
        "utc_offset_s": {"type": "int", "min": -50400, "max": 50400, "default": 0},
        "min_c": {"type": "float", "min": 5.0, "max": 30.0, "default": 13.0, "doc": "hard limit"},
        "max_c": {"type": "float", "min": 25.0, "max": 48.0, "default": 43.0, "doc": "hard limit"},
        "extreme_low_c": {"type": "float", "min": 5.0, "max": 30.0, "default": 16.0},
        "extreme_high_c": {"type": "float", "min": 25.0, "max": 48.0, "default": 40.0},
        "extreme_max_ms": {"type": "int", "min": 60000, "max": 24 * HOUR_MS, "default": 2 * HOUR_MS},
        "extreme_rest_ms": {"type": "int", "min": 0, "max": 24 * HOUR_MS, "default": HOUR_MS},
        "hysteresis_c": {"type": "float", "min": 0.05, "max": 5.0, "default": 0.5},
        "plausible_min_c": {"type": "float", "min": -20.0, "max": 10.0, "default": 0.0},
        "plausible_max_c": {"type": "float", "min": 45.0, "max": 100.0, "default": 60.0},
        "stale_ms": {"type": "int", "min": 1000, "max": 3600000, "default": 30000},
        "default_setpoint_c": {"type": "float", "min": 5.0, "max": 48.0, "default": 27.0},
        "button_step_c": {"type": "float", "min": 0.1, "max": 5.0, "default": 1.0},
        "left_schedule": {"type": "list", "default": [], "doc": "[{'at': 'HH:MM', 'setpoint_c': n}]"},
        "right_schedule": {"type": "list", "default": []},
        "base_max_pct": {"type": "float", "min": 1.0, "max": 100.0, "default": 100.0},
        "base_flat_pct": {"type": "float", "min": 0.0, "max": 10.0, "default": 1.0},
        "base_step_pct": {"type": "float", "min": 1.0, "max": 100.0, "default": 25.0},
        "base_tolerance_pct": {"type": "float", "min": 0.5, "max": 20.0, "default": 3.0},
        "raised_max_ms": {"type": "int", "min": 60000, "max": 24 * HOUR_MS, "default": 2 * HOUR_MS},
        "stall_ms": {"type": "int", "min": 500, "max": 60000, "default": 3000},
        "stall_min_move_pct": {"type": "float", "min": 0.1, "max": 20.0, "default": 1.0},
        "position_stale_ms": {"type": "int", "min": 500, "max": 600000, "default": 5000},
        "blind_flatten_ms": {"type": "int", "min": 1000, "max": 600000, "default": 90000},
    },
}


def part_names() -> list:
    """Every hw part the bed needs, by convention."""
    names = ["buttons"]
    for side in SIDES:
        names += [side + "_temp", side + "_heater", side + "_cooler"]
    for section in SECTIONS:
        names += [section + "_motor", section + "_position"]
    return names


def load_settings(board: dict) -> dict:
    """Validate ``apps.bed``; check the limits are ordered and the parts exist."""
    raw = board.get("apps", {}).get("bed", {})
    s = validate(SETTINGS_SPEC, raw, "apps.bed", board.get("_source", ""))
    order = ("min_c", "extreme_low_c", "extreme_high_c", "max_c")
    for i in range(1, len(order)):
        if s[order[i - 1]] >= s[order[i]]:
            raise ConfigError("apps.bed." + order[i], "must be above %s (%s)" % (order[i - 1], s[order[i - 1]]))
    if not (s["min_c"] <= s["default_setpoint_c"] <= s["max_c"]):
        raise ConfigError("apps.bed.default_setpoint_c", "must be within min_c..max_c")
    if s["plausible_min_c"] >= s["min_c"] or s["plausible_max_c"] <= s["max_c"]:
        raise ConfigError("apps.bed.plausible_max_c", "the plausible range must contain min_c..max_c")
    if s["base_flat_pct"] >= s["base_max_pct"]:
        raise ConfigError("apps.bed.base_flat_pct", "must be below base_max_pct")
    for side in SIDES:
        key = side + "_schedule"
        sched.parse_schedule(s[key], s["min_c"], s["max_c"], "apps.bed." + key)
    parts = board.get("hw") or {}
    for name in part_names():
        if name not in parts:
            known = ", ".join(sorted(parts)) or "none"
            raise ConfigError("hw." + name, "the bed app needs a part named %r (parts: %s)" % (name, known))
    return s
