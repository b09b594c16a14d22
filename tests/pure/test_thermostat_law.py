"""The thermostat control law, rule by rule, with time as plain numbers (no clock, no sleeps)."""

from device.apps.thermostat_settings import SETTINGS_SPEC
from device.core import thermostat as law
from device.schema import validate

MIN = 60000


def settings(**over):  # type: ignore[no-untyped-def]
    s = validate(SETTINGS_SPEC, over, "apps.thermostat")
    s["has_heater"] = s["heater"] is not None
    s["has_cooler"] = s["cooler"] is not None
    return s


def targets(mode="heat", sp=21.0, cool=25.0):  # type: ignore[no-untyped-def]
    return law.Targets(mode, sp, cool)


class Run:
    """Feeds readings tick by tick and remembers every decision."""

    def __init__(self, s, now_ms=0):  # type: ignore[no-untyped-def]
        self.s = s
        self.now = now_ms
        self.st = law.ThermostatState(now_ms)
        self.d = None

    def tick(self, reading, t=None, dt_ms=1000):  # type: ignore[no-untyped-def]
        self.st, self.d = law.step(self.s, self.st, reading, t or targets(), self.now)
        self.now += dt_ms
        return self.d


def test_heat_hysteresis_band_is_centred_on_setpoint():
    r = Run(settings(min_on_ms=0, min_off_ms=0, hysteresis_c=1.0))
    assert not r.tick(20.6).heater_on  # above sp - 0.5: no demand yet
    assert r.tick(20.4).heater_on  # below sp - 0.5: heat
    assert r.tick(21.4).heater_on  # keeps heating inside the band
    assert not r.tick(21.6).heater_on  # above sp + 0.5: stop
    assert not r.tick(20.8).heater_on  # inside the band again: stays off


def test_cool_hysteresis_and_never_heats_in_cool_mode():
    r = Run(settings(cooler="cooler", min_on_ms=0, min_off_ms=0, hysteresis_c=1.0))
    t = targets("cool", sp=24.0)
    r.now = 10 * MIN  # past the compressor's boot lock-out
    d = r.tick(24.6, t)
    assert d.cooler_on and not d.heater_on
    assert r.tick(23.8, t).cooler_on
    assert not r.tick(23.4, t).cooler_on
    assert not r.tick(10.0, t).heater_on  # cold room in cool mode: no heat (above freeze guard)


def test_compressor_waits_min_off_after_boot():
    r = Run(settings(cooler="cooler", min_off_ms=5 * MIN))
    t = targets("cool", sp=22.0)
    assert not r.tick(30.0, t).cooler_on
    assert r.d.held == "min_off"
    r.now = 5 * MIN
    assert r.tick(30.0, t).cooler_on


def test_min_on_holds_heater_against_demand():
    r = Run(settings(min_on_ms=3 * MIN, min_off_ms=0))
    assert r.tick(18.0).heater_on
    d = r.tick(30.0 - 6.0)  # 24 C: far above setpoint, but only 1 s on
    assert d.heater_on and d.held == "min_on"
    r.now = 3 * MIN
    assert not r.tick(24.0).heater_on


def test_min_off_holds_heater_against_demand():
    r = Run(settings(min_on_ms=0, min_off_ms=5 * MIN))
    assert r.tick(18.0).heater_on
    assert not r.tick(23.0).heater_on
    d = r.tick(18.0)
    assert not d.heater_on and d.held == "min_off"
    r.now = MIN + 5 * MIN
    assert r.tick(18.0).heater_on


def test_auto_mode_heats_below_and_cools_above_never_both():
    r = Run(settings(cooler="cooler", min_on_ms=0, min_off_ms=0))
    r.now = 10 * MIN
    t = targets("auto", sp=20.0, cool=24.0)
    d = r.tick(18.0, t)
    assert d.heater_on and not d.cooler_on
    d = r.tick(22.0, t)
    assert not d.heater_on and not d.cooler_on
    d = r.tick(26.0, t)
    assert d.cooler_on and not d.heater_on


def test_heater_must_be_off_before_cooler_starts():
    r = Run(settings(cooler="cooler", min_on_ms=3 * MIN, min_off_ms=0))
    r.now = 10 * MIN
    t = targets("auto", sp=20.0, cool=22.0)
    assert r.tick(18.0, t).heater_on
    d = r.tick(30.0, t)  # heater held on by min_on: cooler must wait
    assert d.heater_on and not d.cooler_on
    r.now += 3 * MIN
    d = r.tick(30.0, t)  # the heater stops, and only then may the cooler start
    assert d.heater_changed and not d.heater_on and d.cooler_on


def test_freeze_protection_heats_in_off_mode_and_with_a_low_setpoint():
    for t in (targets("off"), targets("heat", sp=5.0), targets("cool", sp=5.0)):
        r = Run(settings(min_on_ms=0, min_off_ms=0, freeze_c=5.0))
        d = r.tick(5.5, t)
        assert d.heater_on and d.freeze, t.mode
        assert r.tick(6.8, t).heater_on  # keeps going to freeze_c + 2
        assert not r.tick(7.2, t).heater_on


def test_freeze_protection_needs_a_heater():
    r = Run(settings(heater=None, cooler="cooler", min_on_ms=0, min_off_ms=0))
    d = r.tick(2.0, targets("off"))
    assert not d.heater_on and not d.freeze


def test_overtemp_cuts_heater_at_once_even_inside_min_on():
    r = Run(settings(min_on_ms=10 * MIN, min_off_ms=0, overtemp_c=35.0))
    assert r.tick(18.0, targets(sp=32.0)).heater_on
    d = r.tick(35.5, targets(sp=32.0))
    assert not d.heater_on and d.forced_off and d.fault == "overtemp"
    d = r.tick(34.0, targets(sp=32.0))
    assert d.fault is None


def test_nan_reading_is_ignored_then_a_fault_after_stale_ms():
    r = Run(settings(min_on_ms=10 * MIN, min_off_ms=0, stale_ms=60000))
    assert r.tick(18.0).heater_on
    d = r.tick(float("nan"), dt_ms=30000)
    assert d.reading_problem == "nan" and d.heater_on and d.fault is None  # holds on the last good reading
    d = r.tick(float("nan"), dt_ms=30000)
    assert d.heater_on
    d = r.tick(float("nan"))  # 60 s without a valid reading
    assert d.fault == "sensor_nan" and not d.heater_on and d.forced_off
    d = r.tick(18.0)
    assert d.fault is None and d.heater_on


def test_missing_and_out_of_range_readings_fault_with_their_reason():
    for reading, fault in (
        (None, "sensor_missing"),
        (150.0, "sensor_range"),
        (-55.0, "sensor_range"),
        (float("inf"), "sensor_nan"),
    ):
        r = Run(settings(stale_ms=5000))
        r.tick(18.0)
        for _ in range(6):
            d = r.tick(reading)
        assert d.fault == fault and not d.heater_on, (reading, d.fault)


def test_no_reading_ever_after_boot_is_a_fault_after_stale_ms():
    r = Run(settings(stale_ms=5000))
    for _ in range(6):
        d = r.tick(None)
    assert d.fault == "sensor_missing" and not d.heater_on


def test_stuck_sensor_is_detected_and_clears_when_the_value_moves():
    r = Run(settings(stuck_ms=10 * MIN, min_on_ms=0, min_off_ms=0))
    d = None
    for _ in range(10 * 60 + 1):
        d = r.tick(18.0)
    assert d.fault == "sensor_stuck" and not d.heater_on
    d = r.tick(18.01)
    assert d.fault is None and d.heater_on


def test_stuck_detection_can_be_disabled():
    r = Run(settings(stuck_ms=0))
    for _ in range(3 * 60):
        d = r.tick(18.0, dt_ms=60000)
    assert d.fault is None and d.heater_on


def test_off_mode_turns_heater_off_respecting_min_on():
    r = Run(settings(min_on_ms=3 * MIN, min_off_ms=0))
    assert r.tick(18.0).heater_on
    assert r.tick(18.0, targets("off")).heater_on  # not yet: compressor protection
    r.now = 3 * MIN
    assert not r.tick(18.0, targets("off")).heater_on


def test_sanitize_clamps_500_degrees_and_reports_it():
    s = settings()
    t, problems = law.sanitize_targets(s, "heat", 500, 25.0)
    assert t.setpoint_c == s["setpoint_max_c"]
    assert problems == ["setpoint_c 500.0 clamped to 32.0"]


def test_sanitize_replaces_garbage_with_defaults():
    s = settings()
    t, problems = law.sanitize_targets(s, "hot", "warm", float("nan"))
    assert t.mode == s["default_mode"] and t.setpoint_c == s["default_setpoint_c"]
    assert t.cool_setpoint_c == s["default_cool_setpoint_c"]
    assert len(problems) == 3


def test_sanitize_keeps_auto_gap():
    s = settings()
    t, problems = law.sanitize_targets(s, "auto", 22.0, 22.5)
    assert t.cool_setpoint_c == 22.0 + s["auto_gap_c"]
    assert len(problems) == 1


def test_step_does_not_modify_its_input_state():
    r = Run(settings(min_on_ms=0))
    before = r.st
    law.step(r.s, before, 18.0, targets(), 0)
    assert not before.heater_on and before.temp_c is None
