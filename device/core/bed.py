"""The smart bed's control law (pure): a side's pad temperature and a base section's motor.

The envelope (``device.core.bed_envelope``) decides what the law may aim at; the law
only turns an aim into outputs, with these rules in order of precedence:

Side (``side_step``):

1. **No valid reading, no power.** A missing, NaN/inf or implausible reading turns the
   heater and cooler off at once; none valid for ``stale_ms`` is a ``sensor`` fault.
2. **Hard limits.** At or above ``max_c`` the heater is cut, at or below ``min_c`` the cooler,
   whatever the setpoint.
3. **Demand** with hysteresis: heat below ``setpoint - hysteresis_c`` until the setpoint,
   cool above ``setpoint + hysteresis_c`` until the setpoint; never both.

Section (``motor_direction``): move toward the target, stop once the target is reached or
passed (no hunting around it); start again only when the target is ``tolerance_pct`` away.
"""

SIDES = ("left", "right")
SECTIONS = ("head", "foot")


class SideState:
    """What the law remembers of one side between ticks."""

    def __init__(self, now_ms: int) -> None:
        self.temp_c: float | None = None
        self.last_valid_ms = now_ms  # boot counts as valid: a sensor gets stale_ms to answer
        self.heat = False
        self.cool = False
        self.fault: str | None = None  # "sensor"
        self.cut: str | None = None  # "max_c" / "min_c": a hard limit holds an output off
        self.reading_problem: str | None = None


def judge(settings: dict, reading: object) -> str | None:
    """Why a reading cannot be used, or None when it can."""
    if reading is None:
        return "missing"
    if isinstance(reading, bool) or not isinstance(reading, (int, float)):
        return "not_a_number"
    if reading != reading or reading in (float("inf"), float("-inf")):
        return "not_a_number"
    if reading < settings["plausible_min_c"] or reading > settings["plausible_max_c"]:
        return "out_of_range"
    return None


def side_step(settings: dict, st: SideState, reading: object, setpoint_c: float, now_ms: int) -> SideState:
    """One tick for one side: updates and returns ``st`` (``heat``, ``cool``, ``fault``)."""
    problem = judge(settings, reading)
    st.reading_problem = problem
    st.cut = None
    if problem is not None:
        st.heat = False
        st.cool = False
        if now_ms - st.last_valid_ms >= settings["stale_ms"]:
            st.fault = "sensor"
        return st
    temp = float(reading)  # type: ignore[arg-type]
    st.temp_c = temp
    st.last_valid_ms = now_ms
    st.fault = None
    band = settings["hysteresis_c"]
    heat = st.heat
    cool = st.cool
    if heat and temp >= setpoint_c:
        heat = False
    elif not heat and temp < setpoint_c - band:
        heat = True
    if cool and temp <= setpoint_c:
        cool = False
    elif not cool and temp > setpoint_c + band:
        cool = True
    if heat and cool:  # cannot happen with band > 0; never drive both
        cool = False
    if temp >= settings["max_c"] and heat:
        heat = False
        st.cut = "max_c"
    if temp <= settings["min_c"] and cool:
        cool = False
        st.cut = "min_c"
    st.heat = heat
    st.cool = cool
    return st


def motor_direction(settings: dict, position: float | None, target: float | None, current: int) -> int:
    """``1`` up, ``-1`` down, ``0`` stop, for one base section."""
    if position is None or target is None:
        return 0
    error = target - position
    if current > 0 and error > 0:
        return 1
    if current < 0 and error < 0:
        return -1
    tol = settings["base_tolerance_pct"]
    if error > tol:
        return 1
    if error < -tol:
        return -1
    if target <= 0.0 and position > 0.0:
        return -1  # flat means flat: down to the end stop, whatever the tolerance
    return 0
