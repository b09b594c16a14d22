"""The local schedule: parsing, the entry in force, activation ids."""

from device.core import schedule as sched
from device.errors import ConfigError
from tests.pure._check import raises

H = 3600000
NIGHT_DAY = [{"at": "22:30", "setpoint_c": 18}, {"at": "06:30", "setpoint_c": 21.5}]


def test_parse_sorts_by_time():
    assert sched.parse_schedule(NIGHT_DAY, 5, 32) == [(390, 21.5), (1350, 18.0)]


def test_entry_in_force_wraps_to_yesterdays_last_entry():
    p = sched.parse_schedule(NIGHT_DAY, 5, 32)
    assert sched.active_entry(p, 3 * H) == ("-1@1350", 18.0)
    assert sched.active_entry(p, 7 * H) == ("0@390", 21.5)
    assert sched.active_entry(p, 23 * H) == ("0@1350", 18.0)
    assert sched.active_entry(p, 24 * H + 7 * H) == ("1@390", 21.5)


def test_utc_offset_shifts_local_time():
    p = sched.parse_schedule(NIGHT_DAY, 5, 32)
    assert sched.active_entry(p, 5 * H, utc_offset_s=2 * 3600)[1] == 21.5  # 07:00 local


def test_no_wall_clock_or_empty_schedule_means_no_entry():
    p = sched.parse_schedule(NIGHT_DAY, 5, 32)
    assert sched.active_entry(p, None) is None
    assert sched.active_entry([], 7 * H) is None


def test_bad_schedules_name_the_path():
    cases = (
        ([{"at": "25:00", "setpoint_c": 20}], "schedule[0].at"),
        ([{"at": "6:30", "setpoint_c": 20}], "schedule[0].at"),
        ([{"at": "06:30", "setpoint_c": 500}], "schedule[0].setpoint_c"),
        ([{"at": "06:30", "setpoint_c": "warm"}], "schedule[0].setpoint_c"),
        ([{"at": "06:30", "setpoint_c": 20}, {"at": "06:30", "setpoint_c": 19}], "schedule[1].at"),
        ([{"at": "06:30", "setpoint_c": 20, "mode": "x"}], "schedule[0].mode"),
        ("06:30", "schedule"),
    )
    for entries, path in cases:
        exc = raises(ConfigError, sched.parse_schedule, entries, 5, 32)
        assert exc.path == path, (exc.path, path)
