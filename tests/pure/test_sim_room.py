"""The outside profile and the room's heat balance (hw.sim.outside, hw.sim.room)."""

import math

from device.errors import ConfigError
from device.rand import Rand
from hw.sim.outside import OutsideProfile
from hw.sim.room import Room
from tests.pure._check import approx, raises

HOUR_MS = 3600000
DAY_MS = 24 * HOUR_MS


class ManualClock:
    def __init__(self, now_ms: int = 0) -> None:
        self.t = now_ms

    def now_ms(self) -> int:
        return self.t


def flat(temp_c: float = 5.0) -> OutsideProfile:
    return OutsideProfile(temp_c, 0.0)


def room(outside=None, **kw):  # type: ignore[no-untyped-def]
    return Room(ManualClock(), outside if outside is not None else flat(), **kw)


# -- outside -------------------------------------------------------------------


def test_daily_cycle_is_coldest_at_coldest_hour_and_warmest_twelve_hours_later():
    out = OutsideProfile(5.0, 4.0, coldest_hour=5.0)
    assert approx(out.temp_c(5 * HOUR_MS), 1.0)
    assert approx(out.temp_c(17 * HOUR_MS), 9.0)
    assert approx(out.temp_c(11 * HOUR_MS), 5.0)
    for hour in range(24):
        assert 1.0 - 1e-9 <= out.temp_c(hour * HOUR_MS) <= 9.0 + 1e-9


def test_daily_cycle_wraps_every_24_hours():
    out = OutsideProfile(3.0, 6.0, coldest_hour=4.5)
    for ms in (0, 1234567, 13 * HOUR_MS, DAY_MS - 1):
        assert approx(out.temp_c(ms), out.temp_c(ms + DAY_MS))
        assert approx(out.temp_c(ms), out.temp_c(ms + 3 * DAY_MS))


def test_weather_stays_within_its_bound_and_is_not_flat():
    out = OutsideProfile(0.0, 0.0, weather_noise_c=2.0, rand=Rand(7))
    values = [out.weather_c(ms) for ms in range(0, 3 * DAY_MS, 600000)]
    assert min(values) >= -2.0
    assert max(values) <= 2.0
    assert max(values) - min(values) > 1.0  # it really drifts


def test_outside_is_continuous_across_hours_and_midnight():
    out = OutsideProfile(5.0, 5.0, weather_noise_c=3.0, rand=Rand(3))
    # Steepest possible change: daily slope + smoothstep slope (1.5 x knot gap per hour).
    max_c_per_ms = (5.0 * 2 * math.pi / DAY_MS) + (1.5 * 6.0 / HOUR_MS)
    for edge in (HOUR_MS, 5 * HOUR_MS, DAY_MS, DAY_MS + HOUR_MS, 2 * DAY_MS):
        for ms in range(edge - 3, edge + 3):
            assert abs(out.temp_c(ms + 1) - out.temp_c(ms)) <= max_c_per_ms + 1e-12
    prev = out.temp_c(0)
    for ms in range(60000, 2 * DAY_MS, 60000):
        now = out.temp_c(ms)
        assert abs(now - prev) <= max_c_per_ms * 60000 + 1e-9
        prev = now


def test_weather_is_deterministic_for_a_seed_and_independent_of_query_order():
    times = [7 * HOUR_MS + 5, 2 * HOUR_MS, 30 * HOUR_MS + 999, 0]
    a = OutsideProfile(5.0, 5.0, weather_noise_c=1.0, rand=Rand(11))
    b = OutsideProfile(5.0, 5.0, weather_noise_c=1.0, rand=Rand(11))
    forward = [a.temp_c(ms) for ms in times]
    backward = [b.temp_c(ms) for ms in reversed(times)]
    backward.reverse()
    assert forward == backward
    other = OutsideProfile(5.0, 5.0, weather_noise_c=1.0, rand=Rand(12))
    assert [other.temp_c(ms) for ms in times] != forward


def test_bounds_cover_the_daily_cycle_and_weather():
    out = OutsideProfile(2.0, 5.0, weather_noise_c=1.0, rand=Rand(1))
    assert out.bounds_c() == (-4.0, 8.0)


# -- room physics ----------------------------------------------------------------


def test_without_loads_the_room_settles_at_outside_plus_gain_over_ua():
    r = room(flat(5.0), initial_c=20.0, thermal_mass_j_per_k=2.0e6, loss_w_per_k=100.0, internal_gain_w=100.0)
    r.advance_to(10 * 20000 * 1000)  # ten time constants (C/UA = 20000 s)
    assert abs(r.temp_c - 6.0) < 1e-3


def test_exact_solution_matches_the_closed_form():
    r = room(flat(0.0), initial_c=20.0, thermal_mass_j_per_k=1.0e6, loss_w_per_k=50.0, internal_gain_w=0.0)
    for t_s in (1, 10, 1000, 7777, 50000):
        r.advance_to(t_s * 1000)
        expected = 20.0 * math.exp(-50.0 * t_s / 1.0e6)
        assert abs(r.temp_c - expected) < 1e-9, (t_s, r.temp_c, expected)


def test_heater_raises_temperature_at_about_p_over_c_at_first():
    r = room(flat(5.0), initial_c=6.0, internal_gain_w=100.0)  # starts at equilibrium
    r.add_load("heater", 5000.0)
    r.set_load("heater", True)
    r.advance_to(60000)
    expected = 5000.0 / 2.0e6 * 60.0
    assert abs((r.temp_c - 6.0) - expected) < 0.01 * expected


def test_exact_steps_agree_with_many_small_euler_steps():
    out = OutsideProfile(5.0, 5.0, weather_noise_c=1.0, rand=Rand(5))
    r = room(out, initial_c=15.0)
    r.add_load("heater", 3000.0)
    r.set_load("heater", True)
    temp, ms = 15.0, 0
    for target in range(600000, 6 * HOUR_MS + 1, 600000):
        r.advance_to(target)
        while ms < target:  # forward Euler, 100 ms steps
            q = 100.0 * (out.temp_c(ms) - temp) + 100.0 + 3000.0
            temp += q * 0.1 / 2.0e6
            ms += 100
        assert abs(r.temp_c - temp) < 1e-3, (target, r.temp_c, temp)


def test_one_big_jump_lands_where_many_small_steps_do():
    def make():  # type: ignore[no-untyped-def]
        r = room(OutsideProfile(5.0, 6.0, weather_noise_c=2.0, rand=Rand(9)), initial_c=18.0)
        r.add_load("heater", 5000.0)
        r.set_load("heater", True)
        return r

    big, small = make(), make()
    big.advance_to(5 * HOUR_MS + 333)
    for ms in range(0, 5 * HOUR_MS + 334, 1111):
        small.advance_to(ms)
    small.advance_to(5 * HOUR_MS + 333)
    assert abs(big.temp_c - small.temp_c) < 1e-4
    assert big.load_on_ms("heater") == small.load_on_ms("heater") == 5 * HOUR_MS + 333


def test_cooler_lowers_temperature():
    r = room(flat(20.0), initial_c=21.0)
    r.add_load("cooler", -3000.0)
    r.set_load("cooler", True)
    r.advance_to(HOUR_MS)
    assert r.temp_c < 21.0
    assert r.heat_w() == 100.0 - 3000.0


def test_on_time_and_energy_count_only_while_on():
    r = room()
    r.add_load("heater", 5000.0)
    r.add_load("cooler", -3000.0)
    r.advance_to(1000)
    r.set_load("heater", True)
    r.advance_to(251000)
    r.set_load("heater", False)
    r.set_load("cooler", True)
    r.advance_to(261000)
    assert r.load_on_ms("heater") == 250000
    assert r.energy_j("heater") == 5000.0 * 250.0
    assert r.load_on_ms("cooler") == 10000
    assert r.energy_j("cooler") == 3000.0 * 10.0
    assert r.load_on("cooler") and not r.load_on("heater")


def test_time_never_goes_back_and_min_max_are_tracked():
    r = room(flat(0.0), initial_c=10.0, internal_gain_w=0.0)
    r.advance_to(HOUR_MS)
    after = r.temp_c
    r.advance_to(1000)
    assert r.temp_c == after
    assert r.last_ms == HOUR_MS
    assert r.max_c == 10.0
    assert r.min_c == after < 10.0


def test_no_losses_heats_linearly():
    r = room(flat(0.0), initial_c=10.0, loss_w_per_k=0.0, internal_gain_w=1000.0, thermal_mass_j_per_k=1.0e6)
    r.advance_to(100000)
    assert approx(r.temp_c, 10.0 + 1000.0 * 100.0 / 1.0e6)


def test_outside_time_of_day_starts_at_start_day_ms():
    out = OutsideProfile(5.0, 5.0, coldest_hour=5.0)
    r = Room(ManualClock(), out, start_day_ms=5 * HOUR_MS)
    assert approx(r.outside_c(0), 0.0)
    assert approx(r.outside_c(12 * HOUR_MS), 10.0)


def test_unknown_load_and_bad_parameters_are_config_errors():
    r = room()
    r.add_load("heater", 100.0)
    err = raises(ConfigError, r.set_load, "fan", True)
    assert err.path == "sim.loads.fan"
    assert "heater" in err.message
    assert (
        raises(ConfigError, Room, ManualClock(), flat(), thermal_mass_j_per_k=0.0).path
        == "sim.room.thermal_mass_j_per_k"
    )
    assert raises(ConfigError, Room, ManualClock(), flat(), loss_w_per_k=-1.0).path == "sim.room.loss_w_per_k"
