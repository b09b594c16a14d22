"""The smart bed's safety envelope (pure): what any request may ask, and what time allows.

Every request -- a button, a cloud command, the cloud's desired state, the LAN API, the
schedule -- goes through ``admit``, whoever sends it; nothing else changes a target. Each
tick, ``side_limit`` and ``base_guard`` apply the rules that depend on time and readings:

* **Hard temperature limits**: a setpoint is clamped into ``min_c..max_c`` (and the law cuts
  the heater at ``max_c``, see ``device.core.bed``).
* **Time at extremes**: a setpoint above ``extreme_high_c`` or below ``extreme_low_c`` holds
  for ``extreme_max_ms`` at most; then the side is capped to the extreme bounds until the
  request has been calm (within bounds) for ``extreme_rest_ms``. A short dip does not reset it.
* **Auto-flatten after a timeout**: once the base has been off flat for ``raised_max_ms``,
  every section goes flat and no raise is admitted until it is.
* **Motor stall**: a section driven for ``stall_ms`` that moved less than
  ``stall_min_move_pct`` (or whose sensor is stuck: it cannot be told apart) stops, latched
  until a *local* stop button: nobody remote restarts a stalled motor.
* **Position sensor failure**: no valid position for ``position_stale_ms`` drives the
  section down blind for ``blind_flatten_ms`` (the end stop cuts the motor), then stops.
* **Auto-flatten on fault**: while a section has a fault, the others go flat.
"""

from device.core.bed import SECTIONS, SIDES

SOURCES = ("button", "cloud", "lan", "schedule", "local")
TARGETS = ("left.setpoint_c", "right.setpoint_c", "base.head", "base.foot", "base.stop")

STALL = "stall"
POSITION_SENSOR = "position_sensor"
FLATTEN_TIMEOUT = "timeout"
FLATTEN_FAULT = "fault"


class SideGuard:
    def __init__(self) -> None:
        self.extreme_since_ms: int | None = None
        self.calm_since_ms: int | None = None
        self.capped = False


class SectionGuard:
    def __init__(self, now_ms: int) -> None:
        self.position: float | None = None  # last valid reading
        self.last_valid_ms = now_ms
        self.fault: str | None = None
        self.fault_ms = 0
        self.ref_pos = 0.0  # stall detector: where the section was when the current move began
        self.ref_ms: int | None = None
        self.ref_dir = 0


class Envelope:
    def __init__(self, now_ms: int) -> None:
        self.sides = {}
        for side in SIDES:
            self.sides[side] = SideGuard()
        self.sections = {}
        for name in SECTIONS:
            self.sections[name] = SectionGuard(now_ms)
        self.raised_since_ms: int | None = None
        self.flatten: str | None = None  # why every section is going flat, or None
        self.limited = 0
        self.rejected = 0


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else (high if value > high else value)


def admit(settings: dict, env: Envelope, source: str, target: str, value: object, now_ms: int) -> tuple:
    """THE entry point for requests: ``(admitted value or None if rejected, note)``.

    ``note`` is "" when the value was taken as asked, else why it was limited or rejected.
    ``base.stop`` admits ``True``; a stop from a ``button`` also clears latched stalls.
    """
    if source not in SOURCES:
        return _reject(env, "unknown source %r" % (source,))
    if target == "base.stop":
        if source == "button":
            for name in SECTIONS:
                guard = env.sections[name]
                if guard.fault == STALL:
                    guard.fault = None
                    guard.ref_ms = None
        return True, ""
    if target not in TARGETS:
        return _reject(env, "unknown target %r" % (target,))
    number = _number(value)
    if number is None:
        return _reject(env, "%s: not a number: %r" % (target, value))
    if target.startswith("base."):
        return _admit_section(settings, env, target[5:], number)
    side = target[: target.index(".")]
    admitted = _clamp(number, settings["min_c"], settings["max_c"])
    if env.sides[side].capped:
        admitted = _clamp(admitted, settings["extreme_low_c"], settings["extreme_high_c"])
    return _limited(env, target, number, admitted)


def _admit_section(settings: dict, env: Envelope, name: str, number: float) -> tuple:
    guard = env.sections[name]
    if guard.fault is not None:
        return _reject(env, "base.%s: %s fault" % (name, guard.fault))
    admitted = _clamp(number, 0.0, settings["base_max_pct"])
    if env.flatten is not None and admitted > 0.0:
        return _reject(env, "base.%s: flattening (%s)" % (name, env.flatten))
    return _limited(env, "base." + name, number, admitted)


def _limited(env: Envelope, target: str, asked: float, admitted: float) -> tuple:
    if admitted == asked:
        return admitted, ""
    env.limited += 1
    return admitted, "%s: %s limited to %s" % (target, asked, admitted)


def _reject(env: Envelope, note: str) -> tuple:
    env.rejected += 1
    return None, note


def side_limit(settings: dict, env: Envelope, side: str, setpoint_c: float, now_ms: int) -> tuple:
    """``(setpoint the law may aim at, event or None)`` for one side this tick."""
    guard = env.sides[side]
    low = settings["extreme_low_c"]
    high = settings["extreme_high_c"]
    sp = _clamp(setpoint_c, settings["min_c"], settings["max_c"])  # even a value that skipped admit
    event = None
    if sp > high or sp < low:
        guard.calm_since_ms = None
        if guard.extreme_since_ms is None:
            guard.extreme_since_ms = now_ms
        if not guard.capped and now_ms - guard.extreme_since_ms >= settings["extreme_max_ms"]:
            guard.capped = True
            event = "extreme_timeout"
    else:
        if guard.calm_since_ms is None:
            guard.calm_since_ms = now_ms
        if guard.extreme_since_ms is not None and now_ms - guard.calm_since_ms >= settings["extreme_rest_ms"]:
            guard.extreme_since_ms = None
            guard.capped = False
    if guard.capped:
        sp = _clamp(sp, low, high)
    return sp, event


def valid_position(settings: dict, reading: object) -> float | None:
    number = _number(reading)
    if number is None or number < -5.0 or number > settings["base_max_pct"] + 5.0:
        return None
    return number


def base_guard(settings: dict, env: Envelope, readings: dict, directions: dict, targets: dict, now_ms: int) -> tuple:
    """Apply the base rules for this tick: ``(overrides, events)``.

    ``readings``: section -> raw position reading; ``directions``: section -> the motor's
    current direction; ``targets``: section -> admitted target, set to 0.0 in place when the
    base must go flat (the caller keeps them: a flattened base stays flat).
    ``overrides``: section -> ``"stop"`` or ``"down"`` (blind) where the law must not steer.
    """
    events = []
    for name in SECTIONS:
        event = _check_section(settings, env.sections[name], readings.get(name), directions.get(name, 0), now_ms)
        if event is not None:
            events.append(event + ":" + name)
    faulty = False
    raised = False
    for name in SECTIONS:
        guard = env.sections[name]
        if guard.fault is not None:
            faulty = True
        if guard.position is None or guard.position > settings["base_flat_pct"]:
            raised = True
    if raised:
        if env.raised_since_ms is None:
            env.raised_since_ms = now_ms
    else:
        env.raised_since_ms = None
    if faulty:
        if env.flatten != FLATTEN_FAULT:
            env.flatten = FLATTEN_FAULT
            events.append("flatten:fault")
    elif env.flatten == FLATTEN_FAULT:
        env.flatten = None  # sensor back, or a stall cleared by a local stop: targets set since then hold
        events.append("flatten_end:fault")
    if env.flatten is None and raised and now_ms - env.raised_since_ms >= settings["raised_max_ms"]:  # type: ignore[operator]
        env.flatten = FLATTEN_TIMEOUT
        events.append("flatten:timeout")
    elif env.flatten == FLATTEN_TIMEOUT and not raised:
        env.flatten = None
        events.append("flat")
    overrides = {}
    for name in SECTIONS:
        if env.flatten is not None:
            targets[name] = 0.0
        guard = env.sections[name]
        if guard.fault == STALL:
            overrides[name] = "stop"
        elif guard.fault == POSITION_SENSOR:
            blind = now_ms - guard.fault_ms < settings["blind_flatten_ms"]
            overrides[name] = "down" if blind else "stop"
    return overrides, events


def _check_section(settings: dict, guard: SectionGuard, reading: object, direction: int, now_ms: int) -> str | None:
    position = valid_position(settings, reading)
    if position is None:
        guard.ref_ms = None
        if guard.fault is None and now_ms - guard.last_valid_ms >= settings["position_stale_ms"]:
            guard.fault = POSITION_SENSOR
            guard.fault_ms = now_ms
            return "fault_" + POSITION_SENSOR
        return None
    guard.position = position
    guard.last_valid_ms = now_ms
    if guard.fault == POSITION_SENSOR:
        guard.fault = None  # readings are back; the fault flatten finishes with the sensor's help
        return "cleared_" + POSITION_SENSOR
    if direction == 0 or guard.fault is not None:
        guard.ref_ms = None
        return None
    moved = abs(position - guard.ref_pos) >= settings["stall_min_move_pct"]
    if guard.ref_ms is None or guard.ref_dir != direction or moved:
        guard.ref_pos = position
        guard.ref_ms = now_ms
        guard.ref_dir = direction
        return None
    if now_ms - guard.ref_ms >= settings["stall_ms"]:
        guard.fault = STALL
        guard.fault_ms = now_ms
        guard.ref_ms = None
        return "fault_" + STALL
    return None
