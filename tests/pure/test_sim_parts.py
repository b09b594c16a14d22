"""Simulated parts and their faults (hw.sim.parts, hw.sim.world)."""

import math

from device.errors import ConfigError
from device.rand import Rand
from hw.interfaces import Switch, TempSensor
from hw.sim.parts import SimRelay, SimThermometer
from hw.sim.world import SimWorld
from tests.pure._check import approx, raises


class ManualClock:
    def __init__(self, now_ms: int = 0) -> None:
        self.t = now_ms

    def now_ms(self) -> int:
        return self.t


def calm_cfg(faults=None) -> dict:  # type: ignore[no-untyped-def]
    """A constant 5 C outside, so expectations are easy to compute."""
    return {
        "seed": 1,
        "outside": {"mean_c": 5.0, "amplitude_c": 0.0, "weather_noise_c": 0.0},
        "room": {"initial_c": 18.0},
        "loads": {"heater": {"power_w": 5000.0}, "cooler": {"power_w": -3000.0}},
        "faults": faults or [],
    }


def make(faults=None, noise_c: float = 0.0, cfg=None):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    world = SimWorld(cfg if cfg is not None else calm_cfg(faults), clock)
    sensor = SimThermometer(world, "room_sensor", noise_c=noise_c)
    heater = SimRelay(world, "heater", "heater")
    world.check_faults()
    return clock, world, sensor, heater


# -- world config ------------------------------------------------------------------


def test_world_fills_defaults_for_a_missing_section():
    world = SimWorld({}, ManualClock())
    assert world.start_wall_ms is None
    assert world.start_day_ms == 0
    assert world.room.temp_c == 18.0
    assert world.room.load_names() == ["cooler", "heater"]
    assert world.room.power_w("cooler") == -3000.0
    assert world.outside.bounds_c() == (-1.0, 11.0)


def test_world_reads_start_times_and_rejects_bad_numbers():
    world = SimWorld({"start_wall_s": 1760918400, "start_day_s": 3600}, ManualClock())
    assert world.start_wall_ms == 1760918400000
    assert world.room.start_day_ms == 3600000
    err = raises(ConfigError, SimWorld, {"room": {"initial_c": "warm"}}, ManualClock())
    assert err.path == "sim.room.initial_c"
    err = raises(ConfigError, SimWorld, {"loads": {"heater": {"power_w": True}}}, ManualClock())
    assert err.path == "sim.loads.heater.power_w"


def test_timeline_fault_with_unknown_kind_or_bad_part_is_a_config_error():
    err = raises(ConfigError, SimWorld, calm_cfg([{"at_s": 1, "part": "room_sensor", "kind": "melted"}]), ManualClock())
    assert err.path == "sim.faults[0].kind"
    assert "stuck" in err.message
    err = raises(ConfigError, make, [{"at_s": 1, "part": "kitchen", "kind": "nan"}])
    assert err.path == "sim.faults[0].part"
    assert "room_sensor" in err.message
    err = raises(ConfigError, make, [{"at_s": 1, "part": "heater", "kind": "nan"}])
    assert err.path == "sim.faults[0].kind"


# -- thermometer -------------------------------------------------------------------


def test_thermometer_is_a_temp_sensor_reading_the_room():
    clock, world, sensor, _ = make()
    assert isinstance(sensor, TempSensor)
    assert sensor.read_c() == 18.0
    clock.t = 3600000
    reading = sensor.read_c()
    assert reading == world.room.temp_c
    assert world.room.last_ms == 3600000
    assert reading < 18.0  # 5 C outside: the room cools


def test_thermometer_noise_has_the_configured_spread():
    _, world, sensor, _ = make(noise_c=0.5)
    true_c = world.room.temp_c
    errors = [sensor.read_c() - true_c for _ in range(2000)]
    mean = sum(errors) / len(errors)
    spread = math.sqrt(sum((e - mean) ** 2 for e in errors) / len(errors))
    assert abs(mean) < 0.05
    assert 0.45 < spread < 0.55


def test_thermometer_quantises_to_its_resolution():
    clock = ManualClock()
    world = SimWorld(calm_cfg(), clock)
    sensor = SimThermometer(world, "s", noise_c=0.3, resolution_c=0.0625)
    for i in range(50):
        clock.t = i * 60000
        steps = sensor.read_c() / 0.0625
        assert approx(steps, round(steps), 1e-6)


def test_stuck_thermometer_repeats_the_reading_from_when_the_fault_began():
    clock, world, sensor, heater = make(noise_c=0.2)
    heater.set(True)
    clock.t = 60000
    sensor.read_c()
    world.inject("room_sensor", "stuck")
    frozen = sensor.read_c()
    for minute in range(2, 30):
        clock.t = minute * 60000
        assert sensor.read_c() == frozen  # the exact same float
    assert world.room.advance_to_now() > frozen + 0.5  # while the room warmed up
    world.clear("room_sensor")
    assert abs(sensor.read_c() - world.room.temp_c) < 1.5
    assert sensor.read_c() != frozen


def test_timeline_stuck_freezes_the_temperature_at_the_fault_start():
    faults = [{"at_s": 3600, "for_s": 600, "part": "room_sensor", "kind": "stuck"}]
    clock, _, sensor, _ = make(faults)
    _, twin, _, _ = make()
    clock.t = 1800000
    sensor.read_c()
    clock.t = 3900000  # first read is 5 minutes into the fault
    twin.advance_to(3600000)
    assert sensor.read_c() == twin.room.temp_c
    clock.t = 4199999
    assert sensor.read_c() == twin.room.temp_c
    clock.t = 4200000
    twin.advance_to(4200000)
    assert sensor.read_c() == twin.room.temp_c  # tracking again


def test_nan_out_of_range_and_disconnected_thermometer_faults():
    _, world, sensor, _ = make()
    world.inject("room_sensor", "nan")
    assert world.fault_of("room_sensor") == ("nan", None)
    assert math.isnan(sensor.read_c())
    world.inject("room_sensor", "out_of_range")
    assert sensor.read_c() == 150.0
    world.inject("room_sensor", "out_of_range", -55.0)
    assert sensor.read_c() == -55.0
    world.inject("room_sensor", "disconnected")
    assert sensor.read_c() is None
    world.clear("room_sensor")
    assert world.fault_of("room_sensor") is None
    assert sensor.read_c() == 18.0


def test_a_part_cannot_be_given_a_fault_of_the_other_kind_of_part():
    _, world, _, _ = make()
    assert raises(ConfigError, world.inject, "room_sensor", "stuck_on").path == "sim.faults"
    assert raises(ConfigError, world.inject, "heater", "nan").path == "sim.faults"
    assert raises(ConfigError, world.inject, "anything", "melted").path == "sim.faults"


# -- relay -------------------------------------------------------------------------


def test_relay_is_a_switch_that_drives_its_load_and_counts_operations():
    clock, world, _, heater = make()
    assert isinstance(heater, Switch)
    assert not heater.on and heater.sensed_on is False
    clock.t = 1000
    heater.set(True)
    heater.set(True)
    assert heater.on and heater.sensed_on
    assert world.room.load_on("heater")
    clock.t = 61000
    heater.set(False)
    assert heater.switch_count == 2
    clock.t = 100000
    assert world.summary()["loads"]["heater"]["on_ms"] == 60000


def test_relay_stuck_off_ignores_commands_but_reports_them():
    clock, world, _, heater = make()
    world.inject("heater", "stuck_off")
    heater.set(True)
    assert heater.on is True
    assert heater.sensed_on is False
    clock.t = 600000
    assert world.summary()["loads"]["heater"]["on_ms"] == 0
    world.clear("heater")
    assert heater.sensed_on is True  # the command still stands, now it takes effect
    clock.t = 660000
    assert world.summary()["loads"]["heater"]["on_ms"] == 60000


def test_relay_stuck_on_heats_while_commanded_off():
    clock, world, _, heater = make()
    clock.t = 1000
    world.inject("heater", "stuck_on")
    assert heater.on is False and heater.sensed_on is True
    clock.t = 3601000
    summary = world.summary()
    assert summary["loads"]["heater"]["on_ms"] == 3600000
    assert summary["room_c"] > 22.0
    world.clear("heater")
    assert heater.sensed_on is False
    assert not world.room.load_on("heater")


def test_timeline_relay_fault_acts_at_its_exact_times_untouched():
    faults = [{"at_s": 1000, "for_s": 500, "part": "heater", "kind": "stuck_on"}]
    clock, world, _, heater = make(faults)
    clock.t = 999999
    assert world.fault_of("heater") is None
    clock.t = 1000000
    assert world.fault_of("heater") == ("stuck_on", None)
    clock.t = 1499999
    assert heater.sensed_on
    clock.t = 1500000
    assert world.fault_of("heater") is None
    assert not heater.sensed_on
    clock.t = 2000000
    summary = world.summary()  # nobody touched the relay: the world still switched the load
    assert summary["loads"]["heater"]["on_ms"] == 500000
    assert summary["loads"]["heater"]["energy_j"] == 5000.0 * 500.0
    assert heater.switch_count == 0


def test_open_ended_timeline_fault_lasts_until_cleared_and_clear_spares_later_ones():
    faults = [
        {"at_s": 10, "for_s": None, "part": "room_sensor", "kind": "disconnected"},
        {"at_s": 100, "part": "room_sensor", "kind": "nan", "value": None},
    ]
    clock, world, sensor, _ = make(faults)
    clock.t = 50000
    assert sensor.read_c() is None
    world.clear("room_sensor")
    assert sensor.read_c() is not None
    clock.t = 100000
    assert math.isnan(sensor.read_c())
    clock.t = 10**9
    assert world.fault_of("room_sensor") == ("nan", None)


def test_injected_fault_wins_over_the_timeline():
    faults = [{"at_s": 0, "for_s": 100, "part": "room_sensor", "kind": "nan"}]
    _, world, sensor, _ = make(faults)
    world.inject("room_sensor", "out_of_range", 99.0)
    assert sensor.read_c() == 99.0


def test_two_relays_on_one_load_are_refused():
    _, world, _, _ = make()
    err = raises(ConfigError, SimRelay, world, "heater2", "heater")
    assert err.path == "hw.heater2.load"
    assert raises(ConfigError, SimRelay, world, "fan", "fan").path == "sim.loads.fan"


# -- determinism -------------------------------------------------------------------


def run_day(seed: int) -> list:
    cfg = calm_cfg()
    cfg["seed"] = seed
    cfg["outside"] = {"mean_c": 2.0, "amplitude_c": 5.0, "weather_noise_c": 1.0}
    clock, world, sensor, heater = make(cfg=cfg, noise_c=0.1)
    readings = []
    for i in range(96):
        clock.t = i * 900000
        value = sensor.read_c()
        readings.append(value)
        heater.set(value < 20.0)
    readings.append(world.summary()["room_c"])
    return readings


def test_a_seed_gives_the_same_run_and_another_seed_does_not():
    assert run_day(42) == run_day(42)
    assert run_day(42) != run_day(43)


def test_world_uses_a_given_rand():
    a = SimWorld(calm_cfg(), ManualClock(), Rand(5))
    b = SimWorld(calm_cfg(), ManualClock(), Rand(5))
    sa = SimThermometer(a, "s", noise_c=1.0)
    sb = SimThermometer(b, "s", noise_c=1.0)
    assert [sa.read_c() for _ in range(5)] == [sb.read_c() for _ in range(5)]
