"""Thermostat control law: pure, no I/O, no clock reads.

``step(settings, state, reading_c, targets, now_ms)`` returns the next
``ThermostatState`` and a ``Decision``. The rules, in order of precedence:

1. Sensor judgement: a reading that is missing, NaN/inf or outside the
   plausible range is ignored; no valid reading for ``stale_ms``, or exactly
   the same value for ``stuck_ms``, is a sensor fault -> safe state (all off,
   at once: safety may cut a minimum on-time short).
2. Over-temperature: at or above ``overtemp_c`` the heater is cut at once.
3. Freeze protection: with a heater, in every mode, heat when the room is
   below ``freeze_c + FREEZE_GUARD_C`` whatever the setpoint, so the room never
   falls below ``freeze_c``.
4. Mode demand with hysteresis (``hysteresis_c`` is the full band width,
   centred on the setpoint); heater and cooler are never on together.
5. Compressor protection: an actuator never turns on before it has been off
   for ``min_off_ms``; it never turns off before ``min_on_ms`` unless a safety
   rule (1, 2) forces it.
"""

from device.compat import const

MODES = ("off", "heat", "cool", "auto")

# Freeze protection heats between freeze_c + ON and freeze_c + OFF.
FREEZE_GUARD_ON_C = 1.0
FREEZE_GUARD_OFF_C = 2.0

# Reasons an actuator holds its state against demand.
_HOLD_MIN_ON = const(1)
_HOLD_MIN_OFF = const(2)


class Targets:
    """What the owner asked for, already sanitised (see ``sanitize_targets``)."""

    def __init__(self, mode: str, setpoint_c: float, cool_setpoint_c: float) -> None:
        self.mode = mode
        self.setpoint_c = setpoint_c
        self.cool_setpoint_c = cool_setpoint_c


class ThermostatState:
    """Control memory carried from one tick to the next."""

    def __init__(self, boot_ms: int) -> None:
        self.boot_ms = boot_ms
        self.heater_on = False
        self.cooler_on = False
        # None: never switched since boot, so no minimum time applies. The
        # compressor counts as just stopped: a power cut may have stopped it a
        # moment ago.
        self.heater_changed_ms: int | None = None
        self.cooler_changed_ms: int | None = boot_ms
        self.last_valid_ms: int | None = None
        self.temp_c: float | None = None
        self.last_raw: float | None = None
        self.same_since_ms = boot_ms
        self.sensor_fault: str | None = None
        self.overtemp = False
        self.freeze_active = False

    def copy(self) -> "ThermostatState":
        new = ThermostatState(self.boot_ms)
        new.heater_on = self.heater_on
        new.cooler_on = self.cooler_on
        new.heater_changed_ms = self.heater_changed_ms
        new.cooler_changed_ms = self.cooler_changed_ms
        new.last_valid_ms = self.last_valid_ms
        new.temp_c = self.temp_c
        new.last_raw = self.last_raw
        new.same_since_ms = self.same_since_ms
        new.sensor_fault = self.sensor_fault
        new.overtemp = self.overtemp
        new.freeze_active = self.freeze_active
        return new


class Decision:
    """What to do now, and why (for status lines and reports)."""

    def __init__(self) -> None:
        self.heater_on = False
        self.cooler_on = False
        self.heater_changed = False
        self.cooler_changed = False
        self.forced_off = False  # a safety rule cut a minimum on-time short
        self.held = ""  # "", "min_on" or "min_off": protection overrode demand
        self.reading_problem = ""  # why this tick's reading was ignored
        self.fault: str | None = None  # sensor fault or "overtemp"
        self.freeze = False


def judge_reading(settings: dict, reading_c: float | None) -> str:
    """'' for a usable reading, else the reason it is not usable."""
    if reading_c is None:
        return "missing"
    if reading_c != reading_c or reading_c in (float("inf"), float("-inf")):
        return "nan"
    if reading_c < settings["plausible_min_c"] or reading_c > settings["plausible_max_c"]:
        return "range"
    return ""


def _track_sensor(settings: dict, st: ThermostatState, reading_c: float | None, now_ms: int) -> str:
    """Update sensor tracking in ``st``; return why the reading was ignored ('' if used)."""
    problem = judge_reading(settings, reading_c)
    if problem:
        st.last_raw = None
        since = st.last_valid_ms if st.last_valid_ms is not None else st.boot_ms
        if now_ms - since >= settings["stale_ms"]:
            st.sensor_fault = "sensor_" + problem
        return problem
    if reading_c == st.last_raw:
        stuck_ms = settings["stuck_ms"]
        if stuck_ms and now_ms - st.same_since_ms >= stuck_ms:
            st.sensor_fault = "sensor_stuck"
            return "stuck"
    else:
        st.same_since_ms = now_ms
        st.last_raw = reading_c
    st.last_valid_ms = now_ms
    st.temp_c = reading_c
    st.sensor_fault = None
    return ""


def _demand(settings: dict, st: ThermostatState, targets: Targets) -> tuple:
    """(want_heat, want_cool, freeze) from temperature, mode and hysteresis."""
    temp_c = st.temp_c
    half = settings["hysteresis_c"] / 2
    has_heater = settings["has_heater"]
    has_cooler = settings["has_cooler"]
    mode = targets.mode
    want_heat = False
    want_cool = False
    if has_heater and mode in ("heat", "auto"):
        sp = targets.setpoint_c
        want_heat = temp_c < sp + half if st.heater_on else temp_c < sp - half
    if has_cooler and mode in ("cool", "auto"):
        sp = targets.cool_setpoint_c if mode == "auto" else targets.setpoint_c
        want_cool = temp_c > sp - half if st.cooler_on else temp_c > sp + half
    freeze = False
    if has_heater:
        limit = settings["freeze_c"] + (FREEZE_GUARD_OFF_C if st.freeze_active else FREEZE_GUARD_ON_C)
        if temp_c < limit:
            freeze = True
            want_heat = True
            want_cool = False
    if want_heat and want_cool:  # only with a misconfigured auto gap: do neither
        want_heat = want_cool = False
    return want_heat, want_cool, freeze


def _gate(want: bool, is_on: bool, changed_ms: int | None, now_ms: int, settings: dict, force_off: bool) -> tuple:
    """Apply minimum on/off times. Returns (on, hold_reason)."""
    if want == is_on:
        return is_on, 0
    elapsed = None if changed_ms is None else now_ms - changed_ms
    if want:
        if elapsed is not None and elapsed < settings["min_off_ms"]:
            return False, _HOLD_MIN_OFF
        return True, 0
    if force_off or elapsed is None or elapsed >= settings["min_on_ms"]:
        return False, 0
    return True, _HOLD_MIN_ON


def _cut_short(was_on: bool, now_on: bool, changed_ms: int | None, now_ms: int, settings: dict) -> bool:
    """True when an actuator turns off before its minimum on-time (only safety may do that)."""
    return was_on and not now_on and changed_ms is not None and now_ms - changed_ms < settings["min_on_ms"]


def step(settings: dict, state: ThermostatState, reading_c: float | None, targets: Targets, now_ms: int) -> tuple:
    """One control tick. Returns ``(new_state, decision)``; ``state`` is not modified."""
    st = state.copy()
    d = Decision()
    d.reading_problem = _track_sensor(settings, st, reading_c, now_ms)
    safe = st.sensor_fault is not None or st.temp_c is None
    if safe:
        want_heat = want_cool = False
        st.overtemp = False
        st.freeze_active = False
    else:
        want_heat, want_cool, freeze = _demand(settings, st, targets)
        st.freeze_active = freeze
        d.freeze = freeze
        st.overtemp = st.temp_c >= settings["overtemp_c"]  # type: ignore[operator]
        if st.overtemp:
            want_heat = False
    heat_forced = safe or st.overtemp
    heat_on, heat_hold = _gate(want_heat, st.heater_on, st.heater_changed_ms, now_ms, settings, heat_forced)
    # The cooler starts only once the heater is really off.
    if want_cool and heat_on:
        want_cool = False
    cool_on, cool_hold = _gate(want_cool, st.cooler_on, st.cooler_changed_ms, now_ms, settings, safe)
    if cool_on and heat_on:  # cooler held on by min_on while heat is wanted: heat waits
        heat_on = st.heater_on
    d.forced_off = _cut_short(st.heater_on, heat_on, st.heater_changed_ms, now_ms, settings) or _cut_short(
        st.cooler_on, cool_on, st.cooler_changed_ms, now_ms, settings
    )
    if heat_on != st.heater_on:
        st.heater_on = heat_on
        st.heater_changed_ms = now_ms
        d.heater_changed = True
    if cool_on != st.cooler_on:
        st.cooler_on = cool_on
        st.cooler_changed_ms = now_ms
        d.cooler_changed = True
    hold = heat_hold or cool_hold
    d.held = "min_on" if hold == _HOLD_MIN_ON else ("min_off" if hold == _HOLD_MIN_OFF else "")
    d.heater_on = st.heater_on
    d.cooler_on = st.cooler_on
    d.fault = st.sensor_fault or ("overtemp" if st.overtemp else None)
    return st, d


def sanitize_targets(settings: dict, mode: object, setpoint_c: object, cool_setpoint_c: object) -> tuple:
    """Turn raw state values into ``Targets``, clamping what is out of range.

    Returns ``(targets, problems)`` where problems is a sorted list of short
    texts such as ``"setpoint_c 500.0 clamped to 32.0"``; the caller reports
    them. Nothing here raises: bad state must never stop control.
    """
    problems = []
    if mode not in MODES:
        problems.append("mode %r unknown, using %r" % (mode, settings["default_mode"]))
        mode = settings["default_mode"]
    low = settings["setpoint_min_c"]
    high = settings["setpoint_max_c"]
    sp = _clamp_number("setpoint_c", setpoint_c, settings["default_setpoint_c"], low, high, problems)
    cool = _clamp_number("cool_setpoint_c", cool_setpoint_c, settings["default_cool_setpoint_c"], low, high, problems)
    if mode == "auto" and cool < sp + settings["auto_gap_c"]:
        wanted = cool
        cool = sp + settings["auto_gap_c"]
        problems.append("cool_setpoint_c %s raised to %s (auto_gap_c)" % (wanted, cool))
    problems.sort()
    return Targets(str(mode), sp, cool), problems


def _clamp_number(name: str, value: object, default: float, low: float, high: float, problems: list) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        problems.append("%s %r is not a number, using %s" % (name, value, default))
        return default
    number = float(value)
    if number < low:
        problems.append("%s %s clamped to %s" % (name, number, low))
        return low
    if number > high:
        problems.append("%s %s clamped to %s" % (name, number, high))
        return high
    return number
