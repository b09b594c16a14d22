"""Every rule of the bed's safety envelope, each tried from the cloud, the LAN and a faulty sensor."""

from device.core import bed as law
from device.core import bed_envelope as rules
from tests.pure._bed_loop import HOUR, MIN, SEC, BedLoop, settings

# -- the one entry point ---------------------------------------------------------


def test_admit_is_the_same_for_every_source():
    for source in ("button", "cloud", "lan", "schedule", "local"):
        loop = BedLoop()
        assert loop.request(source, "left.setpoint_c", 30.0) == (30.0, "")
        value, note = loop.request(source, "left.setpoint_c", 99.0)
        assert value == 43.0 and "limited" in note


def test_admit_rejects_unknown_sources_targets_and_non_numbers():
    loop = BedLoop()
    assert loop.request("mqtt", "left.setpoint_c", 30.0)[0] is None
    assert loop.request("cloud", "left.power_w", 30.0)[0] is None
    for bad in (None, "42", True, float("nan"), float("inf"), [1], {"v": 1}):
        assert loop.request("lan", "right.setpoint_c", bad)[0] is None
        assert loop.request("cloud", "base.head", bad)[0] is None
    assert loop.setpoints["right"] == 27.0 and loop.targets["head"] == 0.0
    assert loop.env.rejected == 2 + 14


# -- hard temperature limits -------------------------------------------------------


def test_hard_limits_clamp_cloud_and_lan_requests():
    loop = BedLoop()
    assert loop.request("cloud", "left.setpoint_c", 60.0)[0] == 43.0
    assert loop.request("lan", "right.setpoint_c", -10.0)[0] == 13.0


def test_heater_is_cut_at_max_c_even_for_a_setpoint_that_skipped_admit():
    s = settings()
    st = law.SideState(0)
    law.side_step(s, st, 30.0, 48.0, 0)
    assert st.heat
    law.side_step(s, st, 43.0, 48.0, SEC)  # at the limit: cut, whatever the aim
    assert not st.heat and st.cut == "max_c"
    # side_limit clamps a raw value too (a cloud write that bypassed admit)
    loop = BedLoop()
    loop.setpoints["left"] = 90.0
    loop.tick()
    assert loop.effective["left"] == 43.0


def test_cooler_is_cut_at_min_c():
    s = settings()
    st = law.SideState(0)
    law.side_step(s, st, 20.0, 5.0, 0)
    assert st.cool
    law.side_step(s, st, 13.0, 5.0, SEC)
    assert not st.cool and st.cut == "min_c"


def test_a_lying_sensor_cannot_make_the_heater_run_past_the_limit():
    # An out-of-range reading is no reading: power off at once, fault after stale_ms.
    loop = BedLoop()
    loop.request("cloud", "left.setpoint_c", 43.0)
    loop.run(10 * SEC)
    assert loop.sides["left"].heat
    loop.temp_fault["left"] = 150.0
    loop.run(SEC)
    assert not loop.sides["left"].heat and loop.sides["left"].reading_problem == "out_of_range"
    loop.run(40 * SEC)
    assert loop.sides["left"].fault == "sensor" and not loop.sides["left"].heat
    assert not loop.sides["right"].fault  # the other side keeps working


def test_no_valid_reading_means_safe_state_for_every_kind_of_garbage():
    for garbage in (None, float("nan"), float("-inf"), -50.0, "hot"):
        loop = BedLoop()
        loop.request("lan", "right.setpoint_c", 15.0)
        loop.run(5 * SEC)
        assert loop.sides["right"].cool
        loop.temp_fault["right"] = garbage
        loop.run(31 * SEC)
        st = loop.sides["right"]
        assert not st.heat and not st.cool and st.fault == "sensor", garbage


# -- time at extreme settings --------------------------------------------------------


def test_extreme_setpoint_is_capped_after_extreme_max_ms_from_the_cloud():
    loop = BedLoop()
    loop.request("cloud", "left.setpoint_c", 43.0)
    loop.run(2 * HOUR - SEC)
    assert loop.effective["left"] == 43.0
    loop.run(2 * SEC)
    assert loop.effective["left"] == 40.0 and loop.setpoints["left"] == 40.0
    assert loop.events.count("extreme_timeout") == 1


def test_extreme_cannot_be_rearmed_by_the_lan_or_by_short_dips():
    loop = BedLoop()
    loop.request("lan", "right.setpoint_c", 14.0)
    loop.run(90 * MIN)
    loop.request("lan", "right.setpoint_c", 20.0)  # a dip shorter than extreme_rest_ms
    loop.run(30 * MIN)
    loop.request("lan", "right.setpoint_c", 14.0)
    loop.run(31 * MIN)  # 2 h 1 min of extreme in total: capped
    assert loop.effective["right"] == 16.0
    assert loop.request("lan", "right.setpoint_c", 13.0)[0] == 16.0  # capped: asking again is limited
    assert loop.request("cloud", "right.setpoint_c", 13.0)[0] == 16.0


def test_extreme_is_allowed_again_after_a_calm_rest():
    loop = BedLoop()
    loop.request("cloud", "left.setpoint_c", 42.0)
    loop.run(2 * HOUR + MIN)
    assert loop.env.sides["left"].capped
    loop.request("cloud", "left.setpoint_c", 30.0)
    loop.run(HOUR + MIN)
    assert not loop.env.sides["left"].capped
    assert loop.request("cloud", "left.setpoint_c", 42.0)[0] == 42.0


def test_extreme_timer_holds_through_a_sensor_fault():
    loop = BedLoop()
    loop.request("cloud", "left.setpoint_c", 43.0)
    loop.temp_fault["left"] = None
    loop.run(2 * HOUR + SEC)
    assert loop.effective["left"] == 40.0
    assert not loop.sides["left"].heat


# -- auto-flatten after a timeout --------------------------------------------------------


def test_base_raised_from_the_cloud_goes_flat_after_raised_max_ms():
    loop = BedLoop()
    loop.request("cloud", "base.head", 60.0)
    loop.run(HOUR)
    assert loop.pos["head"] == 60.0
    loop.run(HOUR + 5 * SEC)
    assert loop.env.flatten == "timeout"
    loop.run(MIN)  # 60 % at 2 %/s: 30 s to flat
    assert loop.pos["head"] == 0.0 and loop.env.flatten is None
    assert loop.targets["head"] == 0.0  # it stays flat: the request itself was flattened
    assert loop.up_after_timeout == 0


def test_raise_requests_during_the_flatten_are_rejected_from_any_source():
    loop = BedLoop()
    loop.request("cloud", "base.foot", 40.0)
    loop.run(2 * HOUR + 5 * SEC)
    for source in ("cloud", "lan", "button"):
        value, note = loop.request(source, "base.foot", 50.0)
        assert value is None and "flattening" in note
    assert loop.request("lan", "base.foot", 0.0)[0] == 0.0  # going down is fine
    loop.run(MIN)
    assert loop.pos["foot"] == 0.0
    assert loop.up_after_timeout == 0


def test_repeated_raises_do_not_restart_the_timer():
    loop = BedLoop()
    loop.request("cloud", "base.head", 30.0)
    for _ in range(11):
        loop.run(10 * MIN)
        loop.request("lan", "base.head", 35.0)  # the base never got flat in between
    loop.run(11 * MIN)
    assert loop.env.flatten == "timeout" or loop.pos["head"] == 0.0


def test_raised_timer_runs_on_with_a_stuck_position_sensor():
    loop = BedLoop()
    loop.request("cloud", "base.head", 50.0)
    loop.run(MIN)
    loop.pos_fault["head"] = "stuck"
    loop.run(2 * HOUR)
    assert loop.env.flatten is not None
    assert loop.up_after_timeout == 0


# -- motor stall -------------------------------------------------------------------------


def test_stalled_motor_stops_and_only_a_local_stop_clears_it():
    loop = BedLoop()
    loop.stalled.append("head")
    loop.request("cloud", "base.head", 50.0)
    loop.run(5 * SEC)
    assert loop.env.sections["head"].fault == "stall"
    assert loop.dirs["head"] == 0
    loop.request("cloud", "base.stop")
    loop.request("lan", "base.stop")
    assert loop.env.sections["head"].fault == "stall"  # nobody remote restarts a stalled motor
    assert loop.request("cloud", "base.head", 60.0)[0] is None
    assert loop.request("lan", "base.head", 60.0)[0] is None
    loop.run(MIN)
    assert loop.dirs["head"] == 0
    loop.request("button", "base.stop")
    assert loop.env.sections["head"].fault is None


def test_stall_flattens_the_other_section():
    loop = BedLoop()
    loop.request("cloud", "base.foot", 30.0)
    loop.run(MIN)
    loop.stalled.append("head")
    loop.request("cloud", "base.head", 50.0)
    loop.run(10 * SEC)
    assert loop.env.flatten == "fault"
    loop.run(MIN)
    assert loop.pos["foot"] == 0.0


def test_a_stuck_position_sensor_is_caught_as_a_stall():
    loop = BedLoop()
    loop.pos_fault["foot"] = "stuck"
    loop.request("lan", "base.foot", 80.0)
    loop.run(10 * SEC)
    assert loop.env.sections["foot"].fault == "stall"
    assert loop.dirs["foot"] == 0
    assert loop.pos["foot"] < 20.0


def test_no_stall_at_the_end_stops():
    loop = BedLoop()
    loop.request("cloud", "base.head", 100.0)
    loop.run(2 * MIN)
    assert loop.pos["head"] == 100.0 and loop.env.sections["head"].fault is None
    loop.request("cloud", "base.head", 0.0)
    loop.run(2 * MIN)
    assert loop.pos["head"] == 0.0 and loop.env.sections["head"].fault is None


# -- position sensor failure -----------------------------------------------------------------


def test_lost_position_sensor_drives_down_blind_then_stops():
    loop = BedLoop()
    loop.request("cloud", "base.head", 70.0)
    loop.run(MIN)
    loop.pos_fault["head"] = "none"
    loop.run(5 * SEC)
    assert loop.env.sections["head"].fault == "position_sensor"
    loop.run(80 * SEC)
    assert loop.pos["head"] == 0.0  # the end stop held it
    loop.run(20 * SEC)
    assert loop.dirs["head"] == 0  # blind time over: stopped
    assert loop.request("cloud", "base.head", 20.0)[0] is None
    assert loop.request("lan", "base.head", 20.0)[0] is None


def test_sensor_back_ends_the_fault_and_the_base_stays_flat():
    loop = BedLoop()
    loop.request("cloud", "base.head", 70.0)
    loop.request("cloud", "base.foot", 30.0)
    loop.run(MIN)
    loop.pos_fault["head"] = "none"
    loop.run(2 * MIN)
    del loop.pos_fault["head"]
    loop.run(MIN)
    assert loop.env.sections["head"].fault is None
    assert loop.pos["head"] == 0.0 and loop.pos["foot"] == 0.0
    assert loop.targets == {"head": 0.0, "foot": 0.0}


def test_motor_direction_does_not_hunt_around_the_target():
    s = settings()
    assert law.motor_direction(s, 48.0, 50.0, 1) == 1
    assert law.motor_direction(s, 50.5, 50.0, 1) == 0
    assert law.motor_direction(s, 50.5, 50.0, 0) == 0  # within tolerance: stay
    assert law.motor_direction(s, 0.5, 0.0, 0) == -1  # flat means the end stop
    assert law.motor_direction(s, None, 0.0, -1) == 0
    assert rules.valid_position(s, 250.0) is None
