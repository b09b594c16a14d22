"""Home Assistant on a real mosquitto: discovery, availability, commands, while the cloud is dead.

The device's cloud endpoint is a refused port; its ``lan`` endpoint is the session mosquitto.
"Home Assistant" is a plain paho client in a thread. The discovery configs must arrive retained
(a client subscribing afterwards gets them with the retain flag) and follow Home Assistant's
MQTT discovery schema: every key is a documented option of its component, the documented
required ones are there, and the modes are Home Assistant's. Waits are bounded in real time
and in count; nothing is asserted on time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from cloud_shim.broker import Mosquitto, free_port
from device.board import load_board
from device.boot import Device, build_env
from device.clock import VirtualClock
from device.config import configure_apps
from tests.integration.waiting import until_sim

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
SPEED = 5.0

# Home Assistant's MQTT discovery schema, from its documentation (integrations/<component>.mqtt):
# the options each component accepts, and those it requires.
COMMON = {
    "name", "unique_id", "object_id", "default_entity_id", "device", "origin", "icon", "qos", "encoding",
    "availability", "availability_topic", "availability_mode", "availability_template",
    "payload_available", "payload_not_available", "json_attributes_topic", "json_attributes_template",
    "enabled_by_default", "entity_category", "entity_picture", "platform",
}  # fmt: skip
DEVICE = {
    "identifiers", "connections", "name", "model", "model_id", "manufacturer", "sw_version", "hw_version",
    "serial_number", "suggested_area", "via_device", "configuration_url",
}  # fmt: skip
OPTIONS = {
    "climate": {
        "action_template", "action_topic", "current_humidity_template", "current_humidity_topic",
        "current_temperature_template", "current_temperature_topic", "fan_mode_command_template",
        "fan_mode_command_topic", "fan_mode_state_template", "fan_mode_state_topic", "fan_modes", "initial",
        "max_humidity", "max_temp", "min_humidity", "min_temp", "mode_command_template", "mode_command_topic",
        "mode_state_template", "mode_state_topic", "modes", "optimistic", "payload_off", "payload_on",
        "power_command_template", "power_command_topic", "precision", "preset_mode_command_template",
        "preset_mode_command_topic", "preset_mode_state_topic", "preset_mode_value_template", "preset_modes",
        "retain", "swing_mode_command_template", "swing_mode_command_topic", "swing_mode_state_template",
        "swing_mode_state_topic", "swing_modes", "target_humidity_command_template",
        "target_humidity_command_topic", "target_humidity_state_template", "target_humidity_state_topic",
        "temperature_command_template", "temperature_command_topic", "temperature_high_command_template",
        "temperature_high_command_topic", "temperature_high_state_template", "temperature_high_state_topic",
        "temperature_low_command_template", "temperature_low_command_topic", "temperature_low_state_template",
        "temperature_low_state_topic", "temperature_state_template", "temperature_state_topic",
        "temperature_unit", "temp_step", "value_template",
    },
    "cover": {
        "command_topic", "device_class", "optimistic", "payload_close", "payload_open", "payload_stop",
        "position_closed", "position_open", "position_template", "position_topic", "retain",
        "set_position_template", "set_position_topic", "state_closed", "state_closing", "state_open",
        "state_opening", "state_stopped", "state_topic", "tilt_closed_value", "tilt_command_template",
        "tilt_command_topic", "tilt_max", "tilt_min", "tilt_opened_value", "tilt_optimistic",
        "tilt_status_template", "tilt_status_topic", "value_template",
    },
    "binary_sensor": {
        "device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on", "state_topic",
        "value_template",
    },
    "image": {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}  # fmt: skip
REQUIRED = {"climate": set(), "cover": set(), "binary_sensor": {"state_topic"}, "image": set()}
ONE_OF = {"image": ("image_topic", "url_topic")}  # exactly one of these
CLIMATE_MODES = {"auto", "off", "cool", "heat", "dry", "fan_only", "heat_cool"}
# A state/command topic pair HA uses together: with the command topic, we must publish the state.
PAIRS = {
    "mode_command_topic": "mode_state_topic",
    "temperature_command_topic": "temperature_state_topic",
    "temperature_low_command_topic": "temperature_low_state_topic",
    "temperature_high_command_topic": "temperature_high_state_topic",
    "set_position_topic": "position_topic",
}


def check_config(component: str, config: dict[str, Any]) -> None:
    allowed = COMMON | OPTIONS[component]
    unknown = set(config) - allowed
    assert not unknown, f"{component}: options Home Assistant does not know: {sorted(unknown)}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{component}: required options missing: {sorted(missing)}"
    if component in ONE_OF:
        assert sum(1 for k in ONE_OF[component] if k in config) == 1, config
    if config.get("image_topic"):
        assert config["content_type"].startswith("image/")
    assert config["unique_id"] and config["availability_topic"]
    assert set(config["device"]) <= DEVICE and config["device"]["identifiers"]
    assert config["device"]["manufacturer"] == "Brickproof"
    if component == "climate":
        assert set(config["modes"]) <= CLIMATE_MODES, config["modes"]
        assert config["min_temp"] < config["max_temp"]
    for command, state in PAIRS.items():
        if command in config:
            assert state in config, (command, config)


class HomeAssistant:
    """A paho client in its own thread, keeping every message (payload, retain flag) per topic."""

    def __init__(self, port: int, name: str, topics: list[str]) -> None:
        self.messages: dict[str, list[tuple[bytes, bool]]] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, 1) for t in topics]
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.setdefault(msg.topic, []).append((bytes(msg.payload), bool(msg.retain)))

    def last(self, topic: str) -> bytes | None:
        with self.lock:
            got = self.messages.get(topic)
            return got[-1][0] if got else None

    def last_json(self, topic: str) -> Any:
        payload = self.last(topic)
        return None if payload is None else json.loads(payload)

    def configs(self, prefix: str) -> dict[str, tuple[dict[str, Any], bool]]:
        with self.lock:
            return {
                t: (json.loads(m[-1][0]), m[-1][1])
                for t, m in self.messages.items()
                if t.startswith(prefix + "/") and t.endswith("/config")
            }

    def publish(self, topic: str, payload: str | bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _board(name: str, broker_port: int, dead_port: int, prefix: str) -> dict[str, Any]:
    board = load_board(str(REPO / "boards" / name))
    link = board["link"]
    link["endpoints"] = [
        {"name": "cloud", "role": "primary", "host": "127.0.0.1", "port": dead_port, "tls": False, "addresses": []},
        {"name": "home", "role": "lan", "host": "127.0.0.1", "port": broker_port, "tls": False, "addresses": []},
    ]
    link.update(client="paho", connect_timeout_ms=2000, keepalive_s=10, backoff_base_ms=200, backoff_cap_ms=2000)
    board["lan"]["ha"].update(enabled=True, prefix=prefix, state_every_s=5)
    return board


async def _run_until(clock: VirtualClock, predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> bool:
    return await until_sim(clock, predicate, timeout_s)


async def _wait_real(predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> bool:
    """Real-time wait (no device clock in this process), bounded in time and in count."""
    deadline = time.monotonic() + timeout_s
    for _ in range(100_000):
        if predicate() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return bool(predicate())


async def _start(board: dict[str, Any], apps: list[str], device_id: str) -> Device:
    env, world = build_env(board, SPEED, with_link=True)
    device = Device(env, configure_apps(board, apps), world)
    device.attach_link(device_id)
    await device.start()
    return device


async def test_thermostat_discovery_availability_and_commands_with_the_cloud_dead(
    broker: Mosquitto, unique_id: str
) -> None:
    prefix = "ha-" + unique_id
    avail = f"bp-lan/{unique_id}/availability"
    state = f"bp-lan/{unique_id}/thermostat/state"
    ha = HomeAssistant(broker.port, "ha1-" + unique_id, [prefix + "/#", f"bp-lan/{unique_id}/#"])
    late: HomeAssistant | None = None
    device = await _start(_board("host_ha_sim.json", broker.port, free_port(), prefix), ["thermostat"], unique_id)
    clock = device.env.clock
    assert isinstance(clock, VirtualClock)
    try:
        assert await _run_until(clock, lambda: ha.last(avail) == b"online" and ha.last(state) is not None)
        # The cloud is refused all along; the LAN side does not care.
        assert device.link is not None and device.link.state.state not in ("online", "degraded")
        # Retained: a client subscribing now still gets every config, flagged as retained.
        late = HomeAssistant(broker.port, "ha2-" + unique_id, [prefix + "/#", avail])
        assert await _run_until(clock, lambda: len(late.configs(prefix)) == 1 and late.last(avail) is not None)
        ((topic, (config, retained)),) = late.configs(prefix).items()
        assert retained
        assert topic == f"{prefix}/climate/{unique_id.replace('.', '_')}/thermostat/config"
        check_config("climate", config)
        assert late.messages[avail][-1] == (b"online", True)

        # A command from HA: the setpoint changes; the state follows (after the next control tick).
        assert ha.last_json(state)["mode"] == "heat"
        ha.publish(config["temperature_command_topic"], "23.5")
        assert await _run_until(clock, lambda: ha.last_json(state)["target_c"] == 23.5), ha.last_json(state)
        entry = await device.env.store.get_state("thermostat.setpoint_c")
        assert entry is not None and entry.value == 23.5 and entry.origin == "lan"
        ha.publish(config["mode_command_topic"], "cool")
        assert await _run_until(clock, lambda: ha.last_json(state)["mode"] == "cool")
        assert device.apps[0].status()["mode"] == "cool"
        ha.publish(config["mode_command_topic"], "dry")  # not one of ours: refused, nothing changes
        assert await _run_until(clock, lambda: device.ha_bridge.counters["commands_rejected"] == 1)  # type: ignore[attr-defined]
        assert device.apps[0].status()["mode"] == "cool"
        # HA restarts (birth message): the configs come again.
        sent = device.ha_bridge.counters["discovery_sent"]  # type: ignore[attr-defined]
        ha.publish(prefix + "/status", "online")
        assert await _run_until(clock, lambda: device.ha_bridge.counters["discovery_sent"] > sent)  # type: ignore[attr-defined]
        assert device.link.state.state not in ("online", "degraded")
    finally:
        await device.stop()
        ha.close()
        if late is not None:
            late.close()
    # A clean stop says "offline" itself.
    check = HomeAssistant(broker.port, "ha3-" + unique_id, [avail])
    try:
        await _wait_real(lambda: check.last(avail) is not None)
        assert check.last(avail) == b"offline"
    finally:
        check.close()


async def test_bed_commands_go_through_the_envelope(broker: Mosquitto, unique_id: str) -> None:
    prefix = "ha-" + unique_id
    base = f"bp-lan/{unique_id}/bed"
    ha = HomeAssistant(broker.port, "ha1-" + unique_id, [base + "/#"])
    late: HomeAssistant | None = None
    board = _board("host_bed_sim.json", broker.port, free_port(), prefix)
    board["apps"]["bed"].update(left_schedule=[], right_schedule=[])
    device = await _start(board, ["bed"], unique_id)
    clock = device.env.clock
    assert isinstance(clock, VirtualClock)
    try:
        assert await _run_until(clock, lambda: ha.last(base + "/left/state"))
        late = HomeAssistant(broker.port, "ha2-" + unique_id, [prefix + "/#"])  # after the fact: retained
        assert await _run_until(clock, lambda: len(late.configs(prefix)) == 4)
        configs = late.configs(prefix)
        kinds = sorted(t.split("/")[1] for t in configs)
        assert kinds == ["climate", "climate", "cover", "cover"]
        for topic, (config, retained) in configs.items():
            assert retained
            check_config(topic.split("/")[1], config)
        max_c = device.apps[0].settings["max_c"]
        ha.publish(base + "/left/temperature/set", "60")  # out of range: clamped by the envelope
        assert await _run_until(clock, lambda: ha.last_json(base + "/left/state")["setpoint_c"] == max_c)
        assert device.ha_bridge.counters["commands_limited"] == 1  # type: ignore[attr-defined]
        ha.publish(base + "/head/position/set", "40")
        assert await _run_until(clock, lambda: (ha.last_json(base + "/head/state")["position"] or 0) >= 20)
        ha.publish(base + "/head/set", "STOP")
        assert await _run_until(clock, lambda: device.ha_bridge.counters["commands"] == 3)  # type: ignore[attr-defined]
        target = device.apps[0].targets["head"]
        assert 20 <= target < 40  # stopped where it was, not at the asked 40
    finally:
        await device.stop()
        ha.close()
        if late is not None:
            late.close()


async def test_camera_motion_and_snapshot(broker: Mosquitto, unique_id: str) -> None:
    prefix = "ha-" + unique_id
    base = f"bp-lan/{unique_id}/camera"
    ha = HomeAssistant(broker.port, "ha1-" + unique_id, [base + "/#"])
    late: HomeAssistant | None = None
    board = _board("host_camera_sim.json", broker.port, free_port(), prefix)
    board["link"]["client"] = "portable"  # its send buffer is sized for the snapshot
    device = await _start(board, ["camera"], unique_id)
    clock = device.env.clock
    assert isinstance(clock, VirtualClock)
    try:
        assert await _run_until(clock, lambda: ha.last(base + "/snapshot"))
        late = HomeAssistant(broker.port, "ha2-" + unique_id, [prefix + "/#"])  # after the fact: retained
        assert await _run_until(clock, lambda: len(late.configs(prefix)) == 2)
        for topic, (config, retained) in late.configs(prefix).items():
            assert retained
            check_config(topic.split("/")[1], config)
        snap = ha.last(base + "/snapshot")
        assert snap is not None and snap[:2] == b"BM" and len(snap) == 1078 + 48 * 32
        assert await _run_until(clock, lambda: ha.last(base + "/motion") == b"ON")  # people walk by
    finally:
        await device.stop()
        ha.close()
        if late is not None:
            late.close()


_DEVICE_SCRIPT = """
import asyncio, json, sys
from device.board import load_board
from device.boot import run_device
from device.config import configure_apps
board = load_board(sys.argv[1])
asyncio.run(run_device(board, configure_apps(board, ["thermostat"]), 3600 * 1000, speed=1.0, device_id=sys.argv[2]))
"""


async def test_killed_device_goes_offline_by_its_will(broker: Mosquitto, unique_id: str, tmp_path: Path) -> None:
    prefix = "ha-" + unique_id
    avail = f"bp-lan/{unique_id}/availability"
    board = _board("host_ha_sim.json", broker.port, free_port(), prefix)
    child = {"extends": str(REPO / "boards/host_ha_sim.json"), "link": board["link"], "lan": {"ha": board["lan"]["ha"]}}
    (tmp_path / "board.json").write_text(json.dumps(child))
    ha = HomeAssistant(broker.port, "ha1-" + unique_id, [avail])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _DEVICE_SCRIPT,
        str(tmp_path / "board.json"),
        unique_id,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_real(lambda: ha.last(avail) == b"online" or proc.returncode is not None)
        assert ha.last(avail) == b"online", f"device exited with {proc.returncode}"
        proc.send_signal(signal.SIGKILL)  # no DISCONNECT, no last words
        await asyncio.wait_for(proc.wait(), WAIT_S)
        assert await _wait_real(lambda: ha.last(avail) == b"offline")  # the broker published the will
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), WAIT_S)
        ha.close()


async def test_bridge_comes_back_after_the_lan_broker_restarts(private_broker: Mosquitto, unique_id: str) -> None:
    prefix = "ha-" + unique_id
    avail = f"bp-lan/{unique_id}/availability"
    device = await _start(
        _board("host_ha_sim.json", private_broker.port, free_port(), prefix), ["thermostat"], unique_id
    )
    clock = device.env.clock
    assert isinstance(clock, VirtualClock)
    bridge = device.ha_bridge  # type: ignore[attr-defined]
    app = device.apps[0]
    ha: HomeAssistant | None = None
    try:
        assert await _run_until(clock, lambda: bridge.counters["connects"] == 1 and bridge.counters["states_sent"] > 0)
        private_broker.kill()  # the LAN broker vanishes; its retained configs with it (no persistence)
        assert await _run_until(clock, lambda: bridge.counters["losses"] + bridge.counters["connect_failures"] >= 2)
        ticks = app.ticks
        assert await _run_until(clock, lambda: app.ticks >= ticks + 10)  # control goes on meanwhile
        private_broker.start()
        assert await _run_until(clock, lambda: bridge.counters["connects"] == 2)
        ha = late = HomeAssistant(private_broker.port, "ha1-" + unique_id, [prefix + "/#", avail])
        assert await _run_until(clock, lambda: len(late.configs(prefix)) == 1 and late.last(avail) == b"online")
        ((_topic, (config, retained)),) = late.configs(prefix).items()
        assert retained
        check_config("climate", config)
    finally:
        await device.stop()
        if ha is not None:
            ha.close()
