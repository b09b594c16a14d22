"""What the virtual board's simulated hardware needs to know of a board profile.

``wiring_for(board)`` reads the thermostat's parts from the validated board:
output pins that switch a heater (positive watts) or a cooler (negative),
and which of them drive an active-low relay.
Every temperature sensor part (the thermostat's and others, such as a floor
sensor) reads the one simulated room: ADC pins with an NTC thermistor (its
divider options), 1-Wire pins with a DS18B20. Every other part gets plain
simulated pins. The result is JSON for the VM's ``simmachine``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from device.board import resolve_pin

HEATER_W = 2000.0
COOLER_W = -1500.0
# A small, fast room: heat shows within seconds, so a HIL run of ~10 s sees control work.
ROOM = {"initial_c": 17.0, "outside_c": 5.0, "mass_j_per_k": 20000.0, "loss_w_per_k": 100.0}
_SWITCH_DRIVERS = ("relay", "pwm_heater", "digital_out")
_THERMISTOR_KEYS = ("beta", "r0_ohm", "t0_c", "series_ohm", "thermistor_low")


def wiring_for(board: dict[str, Any], room_path: str = "") -> dict[str, Any]:
    hw = board.get("hw", {})
    apps = board.get("apps", {})
    thermostat = apps.get("thermostat", {}) if isinstance(apps.get("thermostat"), dict) else {}
    loads: dict[str, float] = {}
    thermistors: dict[str, dict[str, Any]] = {}
    onewire: list[str] = []
    active_low: list[str] = []  # load pins whose relay is on when the line is low
    roles = {
        "heater": thermostat.get("heater", "heater"),
        "cooler": thermostat.get("cooler"),
    }
    for role in ("heater", "cooler"):
        part = hw.get(roles[role] or "")
        if part and part.get("driver") in _SWITCH_DRIVERS and part.get("pin") is not None:
            pin = resolve_pin(board, part["pin"], "hw.%s.pin" % roles[role])
            loads[str(pin)] = HEATER_W if role == "heater" else COOLER_W
            if part.get("active_low"):
                active_low.append(str(pin))
    for part_name in sorted(hw):
        sensor = hw[part_name]
        if not isinstance(sensor, dict) or sensor.get("pin") is None:
            continue
        if sensor.get("driver") not in ("thermistor_adc", "ds18b20"):
            continue
        pin = resolve_pin(board, sensor["pin"], "hw.%s.pin" % part_name)
        if sensor["driver"] == "thermistor_adc":
            thermistors[str(pin)] = {k: sensor[k] for k in _THERMISTOR_KEYS if k in sensor}
        else:
            onewire.append(str(pin))
    name = str(board.get("name", "vboard"))
    return {
        "name": name,
        "chip": str(board.get("chip", "host")),
        "uid": hashlib.sha256(name.encode()).hexdigest()[:12],
        "loads": loads,
        "active_low": active_low,
        "thermistors": thermistors,
        "onewire": onewire,
        "room": dict(ROOM),
        "room_path": room_path,
    }
