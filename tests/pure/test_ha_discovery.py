"""Home Assistant discovery: configs, command decoding, state messages, the BMP snapshot, and the
bridge's command routing into a real device (thermostat state keys; the bed through its envelope)."""

import asyncio
import json

from device import config
from device.boot import Device, build_env
from device.lan import hadiscovery as hd
from device.lan.haimage import grey_bmp
from tests.pure._check import raises, repo_path

DEV = "dev 1/x"  # not a valid HA node id as it stands
BLOCK = hd.device_block(DEV, "Hall", "host_ha_sim")
THERMO = {"has_heater": True, "has_cooler": True, "setpoint_min_c": 5.0, "setpoint_max_c": 32.0}
BED = {"min_c": 13.0, "max_c": 43.0}


def _by_object(configs):  # type: ignore[no-untyped-def]
    out = {}
    for topic, c in configs:
        out[topic.split("/")[3]] = (topic, c)
    return out


def test_topics_and_device_block():
    assert hd.node_id(DEV) == "dev_1_x"
    assert (
        hd.config_topic("homeassistant", "climate", DEV, "thermostat")
        == "homeassistant/climate/dev_1_x/thermostat/config"
    )
    assert hd.availability_topic("d1") == "bp-lan/d1/availability"
    assert BLOCK["identifiers"] == ["brickproof_dev_1_x"]
    assert BLOCK["manufacturer"] == "Brickproof"
    for field in ("name", "model", "sw_version"):
        assert BLOCK[field]


def test_every_entity_has_the_common_fields_and_a_unique_id():
    configs = hd.discovery("ha", "d1", BLOCK, {"thermostat": THERMO, "bed": BED, "camera": {}})
    assert len(configs) == 1 + 4 + 2
    ids = []
    for topic, c in configs:
        parts = topic.split("/")
        assert parts[0] == "ha" and parts[2] == "d1" and parts[4] == "config", topic
        assert parts[1] in ("climate", "cover", "binary_sensor", "image")
        assert c["availability_topic"] == "bp-lan/d1/availability"
        assert c["payload_available"] == "online" and c["payload_not_available"] == "offline"
        assert c["device"] is BLOCK
        ids.append(c["unique_id"])
        json.dumps(c)  # plain JSON
        for field in c:
            if field.endswith("_topic"):
                assert c[field].startswith("bp-lan/d1/"), (field, c[field])
    assert len(set(ids)) == len(ids)


def test_thermostat_modes_follow_the_parts():
    both = hd.thermostat_config("d1", BLOCK, THERMO)[2]
    assert both["modes"] == ["off", "heat", "cool", "heat_cool"]
    assert both["temperature_low_command_topic"] == "bp-lan/d1/thermostat/temperature_low/set"
    heat_only = hd.thermostat_config("d1", BLOCK, {"has_heater": True, "has_cooler": False})[2]
    assert heat_only["modes"] == ["off", "heat"]
    assert "temperature_high_command_topic" not in heat_only
    assert both["min_temp"] == 5.0 and both["max_temp"] == 32.0


def test_bed_and_camera_entities():
    objs = _by_object(hd.discovery("homeassistant", "d1", BLOCK, {"bed": BED, "camera": {}}))
    left = objs["bed_left"]
    assert left[0].startswith("homeassistant/climate/") and left[1]["max_temp"] == 43.0
    head = objs["bed_head"][1]
    assert objs["bed_head"][0].startswith("homeassistant/cover/")
    assert head["set_position_topic"] == "bp-lan/d1/bed/head/position/set"
    assert head["payload_stop"] == "STOP"
    motion = objs["camera_motion"][1]
    assert motion["state_topic"] == "bp-lan/d1/camera/motion" and motion["device_class"] == "motion"
    image = objs["camera_snapshot"][1]
    assert image["image_topic"] == hd.snapshot_topic("d1") and image["content_type"] == "image/bmp"


def test_command_routes_decode():
    configs = hd.discovery("homeassistant", "d1", BLOCK, {"thermostat": THERMO, "bed": BED})
    routes = hd.command_routes(configs)
    assert routes["bp-lan/d1/thermostat/mode/set"] == "thermostat/mode"
    assert routes["bp-lan/d1/bed/foot/set"] == "bed/foot"
    assert len(routes) == 4 + 2 + 2 * 2
    for route in routes.values():
        payload = b"STOP" if route in ("bed/head", "bed/foot") else b"heat" if route.endswith("mode") else b"20.5"
        assert hd.decode_command(route, payload)[0] in ("put", "call")


def test_decode_thermostat_commands():
    assert hd.decode_command("thermostat/mode", b"heat_cool") == ("put", "thermostat.mode", "auto")
    assert hd.decode_command("thermostat/mode", b"off") == ("put", "thermostat.mode", "off")
    assert hd.decode_command("thermostat/temperature", b"22.5", "heat") == ("put", "thermostat.setpoint_c", 22.5)
    assert hd.decode_command("thermostat/temperature", b"24", "cool") == ("put", "thermostat.cool_setpoint_c", 24.0)
    assert hd.decode_command("thermostat/temperature_high", b"26") == ("put", "thermostat.cool_setpoint_c", 26.0)
    for route, payload in (
        ("thermostat/mode", b"dry"),
        ("thermostat/temperature", b"warm"),
        ("thermostat/temperature", b"nan"),
        ("thermostat/temperature", b"inf"),
        ("thermostat/temperature", b"\xff\xfe"),
        ("thermostat/fan", b"1"),
        ("nothing/here", b"1"),
    ):
        raises(ValueError, hd.decode_command, route, payload)


def test_decode_bed_commands():
    assert hd.decode_command("bed/left/temperature", b"60") == (
        "call",
        "bed.set_temp",
        {"side": "left", "setpoint_c": 60.0},
    )
    assert hd.decode_command("bed/head/position", b"40") == (
        "call",
        "bed.set_base",
        {"section": "head", "position_pct": 40.0},
    )
    assert hd.decode_command("bed/foot", b"CLOSE")[2] == {"section": "foot", "position_pct": 0.0}
    assert hd.decode_command("bed/foot", b"OPEN")[2]["position_pct"] == hd.COVER_OPEN_PCT
    assert hd.decode_command("bed/head", b"STOP") == ("call", "bed.stop", {})
    raises(ValueError, hd.decode_command, "bed/head", b"UP")
    raises(ValueError, hd.decode_command, "bed/middle/temperature", b"30")


def test_state_messages():
    status = {
        "thermostat": {
            "mode": "auto",
            "temp_c": 19.5,
            "setpoint_c": 21.0,
            "cool_setpoint_c": 25.0,
            "heater_on": True,
            "cooler_on": False,
        },
        "bed": {
            "left": {"temp_c": 30.0, "setpoint_c": 31.0, "heat": False, "cool": True},
            "right": {"temp_c": 24.0, "setpoint_c": 24.0, "heat": False, "cool": False},
            "head": {"position_pct": 12.5},
            "foot": {"position_pct": 0.0},
        },
        "camera": {"moving": True},
    }
    msgs = {}
    for topic, payload in hd.state_messages("d1", status):
        msgs[topic] = payload
    t = json.loads(msgs["bp-lan/d1/thermostat/state"])
    assert t["mode"] == "heat_cool" and t["target_c"] == 21.0 and t["high_c"] == 25.0 and t["action"] == "heating"
    assert json.loads(msgs["bp-lan/d1/bed/left/state"])["action"] == "cooling"
    assert json.loads(msgs["bp-lan/d1/bed/right/state"])["action"] == "idle"
    assert json.loads(msgs["bp-lan/d1/bed/head/state"]) == {"position": 12.5}
    assert msgs["bp-lan/d1/camera/motion"] == b"ON"
    status["thermostat"]["mode"] = "cool"
    t = json.loads(hd.state_messages("d1", {"thermostat": status["thermostat"]})[0][1])
    assert t["target_c"] == 25.0 and t["mode"] == "cool"


def test_grey_bmp_layout():
    w, h = 3, 2
    bmp = grey_bmp(w, h, bytes([1, 2, 3, 4, 5, 6]))
    stride = 4
    assert bmp[0:2] == b"BM"
    assert len(bmp) == 1078 + stride * h
    assert int.from_bytes(bmp[2:6], "little") == len(bmp)
    assert int.from_bytes(bmp[10:14], "little") == 1078
    assert int.from_bytes(bmp[18:22], "little") == w and int.from_bytes(bmp[22:26], "little") == h
    assert int.from_bytes(bmp[28:30], "little") == 8
    assert bmp[54 + 4 * 200 : 54 + 4 * 200 + 4] == bytes([200, 200, 200, 0])  # grey palette
    assert bmp[1078:1081] == bytes([4, 5, 6])  # bottom row first
    assert bmp[1082:1085] == bytes([1, 2, 3])
    raises(ValueError, grey_bmp, 3, 2, b"12345")


# -- the bridge on a real device (memory store, simulated time, no network) ---------------------


def _device(board_file, app):  # type: ignore[no-untyped-def]
    board, settings = config.load(repo_path(board_file), [app])
    board["lan"]["ha"]["enabled"] = True
    if not any(ep["role"] == "lan" for ep in board["link"]["endpoints"]):
        board["link"]["endpoints"].append(
            {"name": "home", "role": "lan", "host": "127.0.0.1", "port": 1883, "tls": False}
        )
    if app == "bed":
        settings["bed"]["left_schedule"] = []
        settings["bed"]["right_schedule"] = []
    env, world = build_env(board, with_link=True)
    return Device(env, settings, world), env


def test_bridge_thermostat_command_writes_state_keys_and_the_law_sanitises():
    from device.lan.habridge import HaBridge

    device, env = _device("boards/host_ha_sim.json", "thermostat")
    bridge = HaBridge(device, "d1")

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(2000)
        await bridge._on_message(None, "bp-lan/d1/thermostat/mode/set", b"cool")
        await bridge._on_message(None, "bp-lan/d1/thermostat/temperature/set", b"500")
        await bridge._on_message(None, "bp-lan/d1/thermostat/mode/set", b"banana")
        await bridge._on_message(None, "bp-lan/d1/thermostat/other/set", b"1")  # not ours: ignored
        await env.clock.advance(2000)
        mode = await env.store.get_state("thermostat.mode")
        cool = await env.store.get_state("thermostat.cool_setpoint_c")
        await device.stop()
        return mode, cool

    mode, cool = asyncio.run(main())
    assert mode.value == "cool" and mode.origin == "lan"
    assert cool.value == 500.0 and cool.origin == "lan"  # as asked; the law clamps what it uses
    status = device.apps[0].status()
    assert status["mode"] == "cool" and status["cool_setpoint_c"] == device.apps[0].settings["setpoint_max_c"]
    assert bridge.counters["commands"] == 3 and bridge.counters["commands_rejected"] == 1


def test_bridge_bed_command_goes_through_the_envelope():
    from device.lan.habridge import HaBridge

    device, env = _device("boards/host_bed_sim.json", "bed")
    bridge = HaBridge(device, "d1")

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(2000)
        await bridge._on_message(None, "bp-lan/d1/bed/left/temperature/set", b"60")
        await bridge._on_message(None, "bp-lan/d1/bed/head/position/set", b"30")
        await env.clock.advance(2000)
        entry = await env.store.get_state("bed.left.setpoint_c")
        await device.stop()
        return entry

    entry = asyncio.run(main())
    bed = device.apps[0]
    assert bed.setpoints["left"] == bed.settings["max_c"]  # clamped to the hard limit
    assert entry.value == bed.settings["max_c"]
    assert bed.targets["head"] == 30.0
    assert bridge.counters["commands"] == 2 and bridge.counters["commands_limited"] == 1
