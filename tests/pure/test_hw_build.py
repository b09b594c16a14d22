"""build_hw: a board's ``hw`` section becomes a HwSet, or a ConfigError naming the path."""

import json

from device.errors import ConfigError
from hw import build
from hw.build import build_hw
from hw.registry import HwSet
from hw.sim.parts import SimRelay, SimThermometer
from hw.sim.world import SimWorld
from tests.pure._check import raises, repo_path


class ManualClock:
    def __init__(self) -> None:
        self.t = 0

    def now_ms(self) -> int:
        return self.t


def load_board(name: str) -> dict:
    with open(repo_path("boards/" + name)) as f:
        return json.load(f)


def world_for(board: dict) -> SimWorld:
    return SimWorld(board.get("sim"), ManualClock())


def sim_board(hw: dict, faults=None) -> dict:  # type: ignore[no-untyped-def]
    return {"hw": hw, "sim": {"faults": faults or []}}


def test_host_sim_board_builds_its_parts():
    board = load_board("host_sim.json")
    world = world_for(board)
    parts = build_hw(board, world)
    assert isinstance(parts, HwSet)
    assert parts.names() == ["cooler", "heater", "room_sensor"]
    sensor = parts.get("room_sensor")
    assert isinstance(sensor, SimThermometer)
    assert sensor.noise_c == 0.05
    heater = parts.get("heater")
    assert isinstance(heater, SimRelay)
    assert heater.load == "heater"
    heater.set(True)
    assert world.room.load_on("heater")
    assert isinstance(sensor.read_c(), float)


def test_options_reach_the_part():
    board = sim_board({"t": {"driver": "sim_thermometer", "noise_c": 0.0, "resolution_c": 0.5}})
    part = build_hw(board, world_for(board)).get("t")
    assert part.noise_c == 0.0
    assert part.resolution_c == 0.5


def test_board_without_hw_gives_an_empty_set():
    assert build_hw({}).names() == []
    assert build_hw({"hw": {}}, None).names() == []


def test_sim_driver_without_a_world_is_refused():
    err = raises(ConfigError, build_hw, {"hw": {"heater": {"driver": "sim_relay", "load": "heater"}}})
    assert err.path == "hw.heater.driver"
    assert "simulated world" in err.message and "'sim'" in err.message


def test_board_drivers_not_built_yet_say_so():
    for driver in ("ds18b20", "thermistor_adc", "relay", "pwm_heater", "button", "status_led"):
        err = raises(ConfigError, build_hw, {"hw": {"p": {"driver": driver}}})
        assert err.path == "hw.p.driver"
        assert "not available" in err.message and driver in err.message


def test_unknown_driver_lists_the_known_ones():
    err = raises(ConfigError, build_hw, {"hw": {"p": {"driver": "sim_thermostat"}}})
    assert err.path == "hw.p.driver"
    assert "sim_thermometer" in err.message and "sim_relay" in err.message


def test_malformed_entries_name_their_path():
    board = sim_board({"p": "sim_relay"})
    assert raises(ConfigError, build_hw, board, world_for(board)).path == "hw.p"
    board = sim_board({"p": {"load": "heater"}})
    assert raises(ConfigError, build_hw, board, world_for(board)).path == "hw.p.driver"
    assert raises(ConfigError, build_hw, {"hw": ["p"]}).path == "hw"


def test_bad_options_name_their_path():
    cases = [
        ({"driver": "sim_relay"}, "hw.p.load", "heater"),
        ({"driver": "sim_relay", "load": "fan"}, "hw.p.load", "cooler"),
        ({"driver": "sim_thermometer", "noise": 0.1}, "hw.p.noise", "noise_c"),
        ({"driver": "sim_thermometer", "noise_c": -1}, "hw.p.noise_c", ">= 0"),
        ({"driver": "sim_thermometer", "resolution_c": "fine"}, "hw.p.resolution_c", "number"),
    ]
    for spec, path, hint in cases:
        board = sim_board({"p": spec})
        err = raises(ConfigError, build_hw, board, world_for(board))
        assert err.path == path, (spec, err.path)
        assert hint in err.message, (spec, err.message)


def test_faults_must_name_a_built_part():
    board = sim_board({"t": {"driver": "sim_thermometer"}}, [{"at_s": 5, "part": "room_sensor", "kind": "nan"}])
    err = raises(ConfigError, build_hw, board, world_for(board))
    assert err.path == "sim.faults[0].part"
    assert "'room_sensor'" in err.message and "known: t" in err.message


def test_new_drivers_can_join_the_table():
    made = []

    def factory(name, options, world):  # type: ignore[no-untyped-def]
        made.append((name, options.get("pin"), world))
        return "part:" + name

    build.register_driver("test_led", factory, False, ("pin",))
    try:
        parts = build_hw({"hw": {"led": {"driver": "test_led", "pin": 2}}})
        assert parts.get("led") == "part:led"
        assert made == [("led", 2, None)]
        err = raises(ConfigError, build_hw, {"hw": {"led": {"driver": "test_led", "pim": 2}}})
        assert err.path == "hw.led.pim"
    finally:
        del build.DRIVERS["test_led"]
