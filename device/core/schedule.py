"""The local setpoint schedule: pure functions over wall time.

A schedule is a list of ``{"at": "HH:MM", "setpoint_c": 21.0}`` entries in
local time (``utc_offset_s`` from UTC). The entry in force at a moment is the
last one at or before that time of day, wrapping to the previous day's last
entry before the first. Each activation has an id (day number + minute), so
the app can apply an entry's setpoint exactly once: a manual change made after
it holds until the next entry begins, even across reboots.
"""

from device.errors import ConfigError

DAY_MS = 86400000


def parse_at(text: object, path: str) -> int:
    """'HH:MM' -> minute of the day."""
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        raise ConfigError(path, "expected 'HH:MM', got %r" % (text,))
    try:
        hours = int(text[:2])
        minutes = int(text[3:])
    except ValueError:
        raise ConfigError(path, "expected 'HH:MM', got %r" % (text,)) from None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ConfigError(path, "no such time of day: %r" % (text,))
    return hours * 60 + minutes


def parse_schedule(entries: object, low_c: float, high_c: float, path: str = "schedule") -> list:
    """Validate a schedule; return ``[(minute, setpoint_c), ...]`` sorted by minute."""
    if not isinstance(entries, list):
        raise ConfigError(path, "expected a list of {'at': 'HH:MM', 'setpoint_c': number}")
    parsed = []
    seen: dict = {}
    for i, entry in enumerate(entries):
        where = "%s[%d]" % (path, i)
        if not isinstance(entry, dict):
            raise ConfigError(where, "expected an object with 'at' and 'setpoint_c'")
        for key in entry:
            if key not in ("at", "setpoint_c"):
                raise ConfigError(where + "." + str(key), "unknown key (known: at, setpoint_c)")
        minute = parse_at(entry.get("at"), where + ".at")
        if minute in seen:
            raise ConfigError(where + ".at", "same time as %s[%d]" % (path, seen[minute]))
        seen[minute] = i
        sp = entry.get("setpoint_c")
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or sp != sp:
            raise ConfigError(where + ".setpoint_c", "expected a number, got %r" % (sp,))
        if not (low_c <= sp <= high_c):
            raise ConfigError(where + ".setpoint_c", "must be within %s..%s, got %s" % (low_c, high_c, sp))
        parsed.append((minute, float(sp)))
    parsed.sort()
    return parsed


def active_entry(parsed: list, wall_ms: int | None, utc_offset_s: int = 0) -> tuple | None:
    """``(activation_id, setpoint_c)`` of the entry in force, or None (no schedule or no wall clock)."""
    if not parsed or wall_ms is None:
        return None
    local_ms = wall_ms + utc_offset_s * 1000
    day = local_ms // DAY_MS
    minute = (local_ms % DAY_MS) // 60000
    chosen = None
    for entry in parsed:
        if entry[0] <= minute:
            chosen = entry
    if chosen is None:  # before the first entry: yesterday's last one is in force
        chosen = parsed[-1]
        day -= 1
    return "%d@%d" % (day, chosen[0]), chosen[1]
