"""Board profiles: loading, ``extends``, deep merge, pin aliases, cross-checks."""

import os

from device.board import BOARD_SPEC, deep_merge, load_board, load_board_dict, resolve_pin
from device.errors import ConfigError
from device.schema import validate
from tests.pure._check import raises, repo_path


def _fixture(name):  # type: ignore[no-untyped-def]
    return repo_path("tests/data/boards/" + name)


def _board_err(data):  # type: ignore[no-untyped-def]
    return raises(ConfigError, load_board_dict, data)


# -- the boards we ship ---------------------------------------------------------


def test_every_board_in_boards_loads():
    names = sorted([n for n in os.listdir(repo_path("boards")) if n.endswith(".json")])
    assert "host_sim.json" in names
    for name in names:
        board = load_board(repo_path("boards/" + name))
        assert board["name"]
        assert "extends" not in board


def test_host_sim_is_the_cold_day_thermostat():
    board = load_board(repo_path("boards/host_sim.json"))
    assert board["name"] == "host_sim"
    assert board["chip"] == "host"
    assert board["runtime"] == "any"
    assert board["storage"]["backend"] == "memory"
    assert board["storage"]["budget_bytes"] == 262144
    hw = board["hw"]
    assert sorted(hw) == ["cooler", "heater", "room_sensor"]
    assert hw["room_sensor"]["driver"] == "sim_thermometer"
    assert hw["room_sensor"]["noise_c"] == 0.05
    assert hw["heater"] == {"driver": "sim_relay", "load": "heater"}
    assert hw["cooler"]["load"] == "cooler"
    app = board["apps"]["thermostat"]
    assert (app["sensor"], app["heater"], app["cooler"]) == ("room_sensor", "heater", "cooler")
    assert app["default_schedule"] == [{"at": "06:30", "setpoint_c": 21.0}, {"at": "22:30", "setpoint_c": 18.0}]
    sim = board["sim"]
    assert sim["outside"]["mean_c"] == 2.0
    assert sim["outside"]["amplitude_c"] == 5.0
    assert sim["room"]["initial_c"] == 16.0
    assert sim["start_day_s"] == 0
    assert sim["start_wall_s"] == 1760918400  # 2025-10-20 00:00:00 UTC
    assert sim["faults"] == []
    assert sim["loads"]["heater"]["power_w"] == 5000.0
    assert sim["loads"]["cooler"]["power_w"] == -3000.0


# -- fixture profiles for real boards --------------------------------------------


def test_esp32_profile_inherits_from_its_base():
    board = load_board(_fixture("esp32_devkit.json"))
    assert board["name"] == "esp32_devkit_thermostat"
    assert board["chip"] == "esp32"
    assert board["runtime"] == "micropython"
    assert board["heap_budget_bytes"] == 110000
    assert board["storage"] == {
        "backend": "log",
        "path": "/data/store.log",
        "budget_bytes": 65536,
        "fsync": True,
        "group_commit_ms": 2,
        "segment_bytes": 4096,
        "erase_block_bytes": 4096,
        "erase_cycles": 100000,
    }
    # pins from the base and the child are merged
    assert sorted(board["pins"]) == ["boot_button", "led", "onewire", "relay1", "status"]
    assert resolve_pin(board, board["hw"]["status_led"]["pin"]) == 2
    assert resolve_pin(board, board["hw"]["heater"]["pin"]) == 26
    # the child sets client_id; the base's endpoints survive with defaults filled in
    link = board["link"]
    assert link["client_id"] == "esp32-devkit-0001"
    assert [e["name"] for e in link["endpoints"]] == ["eu", "us"]
    assert link["endpoints"][0]["port"] == 8883
    assert link["endpoints"][0]["tls"] is True
    assert link["endpoints"][1]["port"] == 8884
    assert board["sim"] is None


def test_pico_w_profile_resolves_chained_aliases_in_pin_options():
    board = load_board(_fixture("pico_w.json"))
    assert board["chip"] == "rp2040"
    assert resolve_pin(board, board["hw"]["bed_sensor"]["sda_pin"]) == 0
    assert resolve_pin(board, board["hw"]["bed_sensor"]["scl_pin"]) == 1
    assert resolve_pin(board, "relay") == 16
    assert board["hw"]["onboard_led"] == {"driver": "cyw43_led"}
    assert board["link"]["endpoints"][0]["role"] == "primary"


def test_raspberry_pi_profile():
    board = load_board(_fixture("rpi4.json"))
    assert board["chip"] == "bcm2711"
    assert board["runtime"] == "cpython"
    assert board["storage"]["backend"] == "sqlite"
    assert board["storage"]["budget_bytes"] == 1073741824
    lan = board["link"]["endpoints"][2]
    assert lan == {"name": "home", "role": "lan", "host": "192.168.1.10", "port": 1883, "tls": False, "addresses": []}
    assert resolve_pin(board, "door_relay") == 17


def test_extends_relative_to_the_file_in_a_subfolder():
    board = load_board(_fixture("sub/devkit_variant.json"))
    assert board["chip"] == "esp32s3"
    heater = board["hw"]["heater"]
    # deep merge: the child changed one option; the driver and pin come from the parents
    assert heater == {"driver": "gpio_relay", "pin": "relay1", "active_low": False}
    assert board["storage"]["path"] == "/data/store.log"


def test_extends_list_merges_left_to_right_then_child():
    board = load_board(_fixture("multi_child.json"))
    assert board["name"] == "multi_child"
    assert board["pins"] == {"x": 3, "y": 2}
    # dicts merge: budget from b wins over a, fsync from a survives
    assert board["storage"]["budget_bytes"] == 16384
    assert board["storage"]["fsync"] is False
    # lists are replaced, not appended
    assert [e["name"] for e in board["link"]["endpoints"]] == ["c"]
    assert board["description"] == "from a"


# -- broken files ---------------------------------------------------------------


def test_missing_file_names_the_file():
    path = _fixture("no_such_board.json")
    exc = raises(ConfigError, load_board, path)
    assert exc.source == path
    assert exc.path == ""
    assert exc.message.startswith("cannot read board file: ")
    assert "no_such_board.json" in str(exc)


def test_bad_json_names_the_file():
    path = _fixture("bad_json.json")
    exc = raises(ConfigError, load_board, path)
    assert exc.message.startswith("not valid JSON: ")
    assert "bad_json.json" in str(exc)


def test_top_level_must_be_an_object():
    exc = raises(ConfigError, load_board, _fixture("bad_not_object.json"))
    assert exc.message == "expected a JSON object at the top, got list"


def test_extends_cycle_names_the_chain():
    exc = raises(ConfigError, load_board, _fixture("bad_cycle_a.json"))
    assert exc.path == "extends"
    assert exc.message.startswith("extends cycle: ")
    chain = exc.message[len("extends cycle: ") :].split(" -> ")
    assert len(chain) == 3
    assert chain[0].endswith("bad_cycle_a.json")
    assert chain[1].endswith("bad_cycle_b.json")
    assert chain[2] == chain[0]
    # reported against the file whose extends closes the loop
    assert exc.source.endswith("bad_cycle_b.json")


def test_extends_self_cycle_through_dot_path():
    exc = raises(ConfigError, load_board, _fixture("bad_self_cycle.json"))
    assert exc.message.startswith("extends cycle: ")
    assert exc.message.count("bad_self_cycle.json") == 2


def test_missing_parent_names_parent_and_child():
    exc = raises(ConfigError, load_board, _fixture("bad_missing_parent.json"))
    assert exc.path == "extends"
    assert exc.source.endswith("bad_missing_parent.json")
    assert "no_such_parent.json" in exc.message
    assert exc.message.endswith("no such file")


def test_unknown_key_deep_in_a_file():
    exc = raises(ConfigError, load_board, _fixture("bad_unknown_key_deep.json"))
    assert exc.path == "sim.room"
    assert exc.message.startswith("unknown key 'mass' (known: initial_c, ")
    assert exc.source.endswith("bad_unknown_key_deep.json")


def test_broken_fixture_messages():
    cases = [
        ("bad_unknown_pin.json", "hw.heater.pin", "unknown pin 'dht2' (known: led)"),
        ("bad_pin_cycle.json", "pins.a", "pin alias cycle: a -> b -> c -> a"),
        ("bad_fault_part.json", "sim.faults[1].part", "unknown part 'fan' (known: heater)"),
        ("bad_duplicate_endpoint.json", "link.endpoints[1].name", "duplicate endpoint name 'eu'"),
        ("bad_port.json", "link.endpoints[1].port", "must be <= 65535, got 70000"),
        ("bad_storage_path.json", "storage.path", "required for backend 'sqlite'"),
    ]
    for name, path, message in cases:
        exc = raises(ConfigError, load_board, _fixture(name))
        assert (exc.path, exc.message) == (path, message), name
        assert name in str(exc)


# -- in-memory boards -------------------------------------------------------------


def test_minimal_board_gets_every_default():
    board = load_board_dict({"name": "tiny"})
    assert board["description"] == ""
    assert board["chip"] == "host"
    assert board["runtime"] == "any"
    assert board["pins"] == {}
    assert board["storage"] == {
        "backend": "memory",
        "path": "",
        "budget_bytes": 1048576,
        "fsync": True,
        "group_commit_ms": 2,
        "segment_bytes": 4096,
        "erase_block_bytes": 4096,
        "erase_cycles": 100000,
    }
    assert board["heap_budget_bytes"] is None
    assert board["hw"] == {}
    assert board["apps"] == {}
    assert board["link"]["endpoints"] == [] and board["link"]["client_id"] is None
    assert board["sim"] is None


def test_board_remembers_its_source():
    path = repo_path("boards/host_sim.json")
    assert load_board(path)["_source"] == path
    assert load_board_dict({"name": "x"})["_source"] == "<dict>"
    assert load_board_dict({"name": "x"}, "mine.json")["_source"] == "mine.json"


def test_sim_defaults_when_present():
    sim = load_board_dict({"name": "s", "sim": {}})["sim"]
    assert sim["seed"] == 1
    assert sim["start_wall_s"] is None
    assert sim["outside"] == {"mean_c": 5.0, "amplitude_c": 5.0, "coldest_hour": 5.0, "weather_noise_c": 1.0}
    assert sim["room"]["thermal_mass_j_per_k"] == 2000000.0
    assert sim["loads"] == {"heater": {"power_w": 5000.0}, "cooler": {"power_w": -3000.0}}
    assert sim["faults"] == []


def test_fault_defaults_and_rules():
    hw = {"heater": {"driver": "sim_relay"}}
    fault = {"at_s": 30, "part": "heater", "kind": "stuck_on"}
    board = load_board_dict({"name": "f", "hw": hw, "sim": {"faults": [fault]}})
    got = board["sim"]["faults"][0]
    assert got == {"at_s": 30.0, "for_s": None, "part": "heater", "kind": "stuck_on", "value": None}
    bad = {"at_s": 30, "part": "heater", "kind": "melted"}
    exc = _board_err({"name": "f", "hw": hw, "sim": {"faults": [bad]}})
    assert exc.path == "sim.faults[0].kind"
    assert exc.message == ("must be one of stuck, nan, out_of_range, disconnected, stuck_off, stuck_on, got 'melted'")
    exc = _board_err(
        {"name": "f", "hw": hw, "sim": {"faults": [{"at_s": 1, "for_s": 0, "part": "heater", "kind": "nan"}]}}
    )
    assert (exc.path, exc.message) == ("sim.faults[0].for_s", "must be > 0, got 0.0")
    exc = _board_err({"name": "f", "hw": hw, "sim": {"faults": [{"part": "heater", "kind": "nan"}]}})
    assert (exc.path, exc.message) == ("sim.faults[0].at_s", "required")


def test_board_field_rules():
    cases = [
        ({}, "name", "required"),
        (
            {"name": "x", "chip": "esp8266"},
            "chip",
            "must be one of host, esp32, esp32s3, rp2040, rp2350, bcm2711, bcm2712, got 'esp8266'",
        ),
        ({"name": "x", "runtime": "pypy"}, "runtime", "must be one of cpython, micropython, any, got 'pypy'"),
        ({"name": "x", "pins": {"led": 256}}, "pins.led", "must be <= 255, got 256"),
        ({"name": "x", "pins": {"led": True}}, "pins.led", "expected int or str, got bool"),
        (
            {"name": "x", "storage": {"backend": "flash"}},
            "storage.backend",
            "must be one of memory, sqlite, log, got 'flash'",
        ),
        ({"name": "x", "storage": {"budget_bytes": 100}}, "storage.budget_bytes", "must be >= 4096, got 100"),
        ({"name": "x", "storage": {"fsync": 1}}, "storage.fsync", "expected bool, got int"),
        ({"name": "x", "hw": {"h": {"pin": 3}}}, "hw.h.driver", "required"),
        (
            {"name": "x", "hw": {"h": {"driver": "r", "gain": [1]}}},
            "hw.h.gain",
            "expected str or int or float or bool or null, got list",
        ),
        ({"name": "x", "hw": {"h": {"driver": "r", "pin": 300}}}, "hw.h.pin", "must be <= 255, got 300"),
        (
            {"name": "x", "hw": {"h": {"driver": "r", "data_pin": True}}},
            "hw.h.data_pin",
            "expected a pin number or alias, got bool",
        ),
        (
            {"name": "x", "hw": {"h": {"driver": "r", "data_pin": 999}}},
            "hw.h.data_pin",
            "pin number must be 0..255, got 999",
        ),
        ({"name": "x", "apps": {"thermostat": 5}}, "apps.thermostat", "expected dict, got int"),
        ({"name": "x", "link": {"endpoints": [{"name": "a"}]}}, "link.endpoints[0].host", "required"),
        (
            {"name": "x", "link": {"endpoints": [{"name": "a", "host": "h", "role": "backup"}]}},
            "link.endpoints[0].role",
            "must be one of primary, secondary, lan, got 'backup'",
        ),
        (
            {"name": "x", "link": {"endpoints": [{"name": "a", "host": "h", "port": 0}]}},
            "link.endpoints[0].port",
            "must be >= 1, got 0",
        ),
        ({"name": "x", "sim": {"start_day_s": 86400}}, "sim.start_day_s", "must be <= 86399, got 86400"),
        (
            {"name": "x", "sim": {"outside": {"coldest_hour": 25}}},
            "sim.outside.coldest_hour",
            "must be <= 24, got 25.0",
        ),
        ({"name": "x", "sim": {"room": {"loss_w_per_k": 0}}}, "sim.room.loss_w_per_k", "must be > 0, got 0.0"),
        ({"name": "x", "sim": {"loads": {"fan": {}}}}, "sim.loads.fan.power_w", "required"),
        ({"name": "x", "heap_budget_bytes": "big"}, "heap_budget_bytes", "expected int or null, got str"),
        (
            {"name": "x", "wifi": {}},
            "",
            "unknown key 'wifi' (known: apps, chip, description, heap_budget_bytes, "
            "hw, lan, link, name, ota, pins, runtime, sim, storage)",
        ),
    ]
    for data, path, message in cases:
        exc = _board_err(data)
        assert (exc.path, exc.message) == (path, message), (data, exc.path, exc.message)
        assert exc.source == "<dict>"


def test_load_board_dict_resolves_extends_from_base_dir():
    data = {"extends": "esp32_base.json", "name": "mine", "hw": {"led": {"driver": "gpio_led", "pin": "led"}}}
    board = load_board_dict(data, "mine.json", repo_path("tests/data/boards"))
    assert board["chip"] == "esp32"
    assert resolve_pin(board, board["hw"]["led"]["pin"]) == 2
    assert "extends" in data  # the caller's dict is not modified


def test_extends_must_be_names():
    exc = _board_err({"name": "x", "extends": 5})
    assert exc.path == "extends"
    exc = _board_err({"name": "x", "extends": ["a.json", 5]})
    assert (exc.path, exc.message) == ("extends[1]", "expected a file name, got int")


def test_validated_board_has_no_extends_key():
    assert "extends" not in BOARD_SPEC["fields"]
    exc = raises(ConfigError, validate, BOARD_SPEC, {"name": "x", "extends": "a.json"})
    assert exc.message.startswith("unknown key 'extends'")


# -- merge and pins -----------------------------------------------------------------


def test_deep_merge_rules():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}
    over = {"a": {"y": [3], "z": 2}, "b": {"now": "dict"}, "c": None}
    out = deep_merge(base, over)
    assert out == {"a": {"x": 1, "y": [3], "z": 2}, "b": {"now": "dict"}, "c": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"k": 1}}
    out["a"]["y"].append(9)
    assert over["a"]["y"] == [3]


def test_resolve_pin():
    board = {"pins": {"GP2": 2, "led": "GP2", "status": "led", "loop_a": "loop_b", "loop_b": "loop_a"}}
    assert resolve_pin(board, 7) == 7
    assert resolve_pin(board, "GP2") == 2
    assert resolve_pin(board, "status") == 2
    exc = raises(ConfigError, resolve_pin, board, "loop_a", "hw.x.pin")
    assert (exc.path, exc.message) == ("hw.x.pin", "pin alias cycle: loop_a -> loop_b -> loop_a")
    exc = raises(ConfigError, resolve_pin, board, "dht2", "sensors[0].pin")
    assert exc.path == "sensors[0].pin"
    assert exc.message == "unknown pin 'dht2' (known: GP2, led, loop_a, loop_b, status)"
    exc = raises(ConfigError, resolve_pin, {"pins": {}}, "x")
    assert exc.message == "unknown pin 'x' (known: none)"
    assert raises(ConfigError, resolve_pin, board, -1).message == "pin number must be 0..255, got -1"
