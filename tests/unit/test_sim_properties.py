"""Properties of the simulated room over random parameters and switching schedules."""

from hypothesis import given, settings
from hypothesis import strategies as st

from hw.sim.parts import SimRelay
from hw.sim.world import SimWorld


class ManualClock:
    def __init__(self) -> None:
        self.t = 0

    def now_ms(self) -> int:
        return self.t


def temps(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


configs = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "start_day_s": st.integers(0, 86399),
        "outside": st.fixed_dictionaries(
            {
                "mean_c": temps(-30.0, 35.0),
                "amplitude_c": temps(0.0, 15.0),
                "coldest_hour": temps(0.0, 24.0),
                "weather_noise_c": temps(0.0, 5.0),
            }
        ),
        "room": st.fixed_dictionaries(
            {
                "initial_c": temps(-10.0, 40.0),
                "thermal_mass_j_per_k": temps(1.0e4, 1.0e8),
                "loss_w_per_k": temps(1.0, 1000.0),
                "internal_gain_w": temps(0.0, 500.0),
            }
        ),
        "loads": st.fixed_dictionaries(
            {
                "heater": st.fixed_dictionaries({"power_w": temps(0.0, 10000.0)}),
                "cooler": st.fixed_dictionaries({"power_w": temps(-8000.0, 0.0)}),
            }
        ),
    }
)

# (gap before the step in ms, heater command, cooler command)
schedules = st.lists(st.tuples(st.integers(0, 4 * 3600 * 1000), st.booleans(), st.booleans()), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(configs, schedules)
def test_temperature_stays_within_the_physical_envelope(cfg, schedule):
    clock = ManualClock()
    world = SimWorld(cfg, clock)
    heater = SimRelay(world, "heater", "heater")
    cooler = SimRelay(world, "cooler", "cooler")
    room = cfg["room"]
    out_lo, out_hi = world.outside.bounds_c()
    ua = room["loss_w_per_k"]
    gain = room["internal_gain_w"]
    # Each sub-step moves T toward outside + Q/UA, Q between these: T can never leave the hull.
    low = min(room["initial_c"], out_lo + (gain + cfg["loads"]["cooler"]["power_w"]) / ua)
    high = max(room["initial_c"], out_hi + (gain + cfg["loads"]["heater"]["power_w"]) / ua)
    eps = 1e-6 * (1.0 + abs(low) + abs(high))
    for gap_ms, heat, cool in schedule:
        clock.t += gap_ms
        heater.set(heat)
        cooler.set(cool)
        summary = world.summary()
        assert low - eps <= summary["room_min_c"] <= summary["room_c"] <= summary["room_max_c"] <= high + eps


@settings(max_examples=150, deadline=None)
@given(configs, schedules)
def test_energy_is_power_times_on_time(cfg, schedule):
    clock = ManualClock()
    world = SimWorld(cfg, clock)
    heater = SimRelay(world, "heater", "heater")
    expected_on_ms = 0
    for gap_ms, heat, _ in schedule:
        if heater.on:
            expected_on_ms += gap_ms
        clock.t += gap_ms
        heater.set(heat)
    clock.t += 1000
    if heater.on:
        expected_on_ms += 1000
    loads = world.summary()["loads"]
    assert loads["heater"]["on_ms"] == expected_on_ms
    assert loads["heater"]["energy_j"] == cfg["loads"]["heater"]["power_w"] * expected_on_ms / 1000.0
    assert loads["cooler"]["on_ms"] == 0


@settings(max_examples=100, deadline=None)
@given(configs, st.lists(st.integers(1, 3 * 3600 * 1000), min_size=1, max_size=30))
def test_lazy_advance_in_one_jump_equals_many_small_ones(cfg, gaps):
    cfg = dict(cfg, faults=[])
    one = SimWorld(cfg, ManualClock())
    many = SimWorld(cfg, ManualClock())
    one.room.set_load("heater", True)
    many.room.set_load("heater", True)
    t = 0
    for gap in gaps:
        t += gap
        many.advance_to(t)
    one.advance_to(t)
    scale = 1.0 + abs(one.room.temp_c)
    assert abs(one.room.temp_c - many.room.temp_c) <= 1e-3 * scale
    assert one.room.load_on_ms("heater") == many.room.load_on_ms("heater") == t
