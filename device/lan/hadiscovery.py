"""Home Assistant MQTT discovery for the device's apps (pure: no I/O, no clock).

Home Assistant reads one retained JSON config per entity at
``<prefix>/<component>/<node_id>/<object_id>/config`` and then follows the
state and command topics the config names. Ours live under
``bp-lan/<device_id>/``; every entity shares the device block and the
availability topic (``online``, or ``offline`` from the MQTT will).

* thermostat -> ``climate`` (modes, target/low/high temperature, current
  temperature and action from one JSON state message);
* bed -> a ``climate`` per side (target temperature) and a ``cover`` per
  base section (position 0 flat .. 100, OPEN / CLOSE / STOP);
* camera -> ``binary_sensor`` (motion) and ``image`` (the latest frame, bytes).

``decode_command`` turns what Home Assistant publishes on a command topic
into either a state-cache write (``("put", key, value)``, how the thermostat
takes requests) or an app command call (``("call", name, args)``: the bed's
go through its safety envelope). The bridge (``device.lan.habridge``) does
the I/O.
"""

import json

MANUFACTURER = "Brickproof"
SW_VERSION = "0.1.0"
ONLINE = b"online"
OFFLINE = b"offline"
SIDES = ("left", "right")  # device.core.bed.SIDES / SECTIONS (not imported: a thermostat never loads the bed)
SECTIONS = ("head", "foot")
# Home Assistant's climate modes <-> the thermostat's ("auto" keeps heat and cool setpoints: HA's heat_cool).
TO_HA_MODE = {"off": "off", "heat": "heat", "cool": "cool", "auto": "heat_cool"}
FROM_HA_MODE = {"off": "off", "heat": "heat", "cool": "cool", "heat_cool": "auto"}
COVER_OPEN_PCT = 100.0  # the envelope limits it to the board's base_max_pct


def base_topic(device_id: str) -> str:
    return "bp-lan/" + device_id


def availability_topic(device_id: str) -> str:
    return base_topic(device_id) + "/availability"


def config_topic(prefix: str, component: str, device_id: str, object_id: str) -> str:
    return "%s/%s/%s/%s/config" % (prefix, component, node_id(device_id), object_id)


def node_id(device_id: str) -> str:
    # HA allows only [a-zA-Z0-9_-] in node and object ids.
    out = ""
    for c in device_id:
        out += c if (c.isalpha() or c.isdigit() or c in "_-") and ord(c) < 128 else "_"
    return out


def device_block(device_id: str, name: str, model: str, sw_version: str = SW_VERSION) -> dict:
    return {
        "identifiers": ["brickproof_" + node_id(device_id)],
        "name": name,
        "model": model,
        "manufacturer": MANUFACTURER,
        "sw_version": sw_version,
    }


def _entity(device_id: str, device: dict, object_id: str, name: str) -> dict:
    return {
        "name": name,
        "unique_id": node_id(device_id) + "_" + object_id,
        "device": device,
        "availability_topic": availability_topic(device_id),
        "payload_available": ONLINE.decode(),
        "payload_not_available": OFFLINE.decode(),
    }


def _tmpl(field: str) -> str:
    return "{{ value_json.%s }}" % field


def thermostat_config(device_id: str, device: dict, settings: dict) -> tuple:
    """``("climate", object_id, config)`` for the thermostat app with these settings."""
    base = base_topic(device_id) + "/thermostat"
    state = base + "/state"
    c = _entity(device_id, device, "thermostat", "Thermostat")
    modes = ["off"]
    if settings.get("has_heater", True):
        modes.append("heat")
    if settings.get("has_cooler", False):
        modes.append("cool")
        if settings.get("has_heater", True):
            modes.append("heat_cool")
    c.update(
        {
            "modes": modes,
            "mode_command_topic": base + "/mode/set",
            "mode_state_topic": state,
            "mode_state_template": _tmpl("mode"),
            "temperature_command_topic": base + "/temperature/set",
            "temperature_state_topic": state,
            "temperature_state_template": _tmpl("target_c"),
            "current_temperature_topic": state,
            "current_temperature_template": _tmpl("temp_c"),
            "action_topic": state,
            "action_template": _tmpl("action"),
            "min_temp": settings.get("setpoint_min_c", 5.0),
            "max_temp": settings.get("setpoint_max_c", 32.0),
            "temp_step": 0.5,
            "precision": 0.1,
            "temperature_unit": "C",
        }
    )
    if "heat_cool" in modes:
        c.update(
            {
                "temperature_low_command_topic": base + "/temperature_low/set",
                "temperature_low_state_topic": state,
                "temperature_low_state_template": _tmpl("low_c"),
                "temperature_high_command_topic": base + "/temperature_high/set",
                "temperature_high_state_topic": state,
                "temperature_high_state_template": _tmpl("high_c"),
            }
        )
    return "climate", "thermostat", c


def bed_configs(device_id: str, device: dict, settings: dict) -> list:
    """A climate per side and a cover per base section."""
    out = []
    for side in SIDES:
        base = base_topic(device_id) + "/bed/" + side
        c = _entity(device_id, device, "bed_" + side, "Bed " + side)
        c.update(
            {
                "modes": ["auto"],  # the pad heats or cools to the target by itself
                "temperature_command_topic": base + "/temperature/set",
                "temperature_state_topic": base + "/state",
                "temperature_state_template": _tmpl("setpoint_c"),
                "current_temperature_topic": base + "/state",
                "current_temperature_template": _tmpl("temp_c"),
                "action_topic": base + "/state",
                "action_template": _tmpl("action"),
                "min_temp": settings.get("min_c", 13.0),
                "max_temp": settings.get("max_c", 43.0),
                "temp_step": 0.5,
                "precision": 0.1,
                "temperature_unit": "C",
            }
        )
        out.append(("climate", "bed_" + side, c))
    for section in SECTIONS:
        base = base_topic(device_id) + "/bed/" + section
        c = _entity(device_id, device, "bed_" + section, "Bed " + section)
        c.update(
            {
                "command_topic": base + "/set",
                "payload_open": "OPEN",
                "payload_close": "CLOSE",
                "payload_stop": "STOP",
                "set_position_topic": base + "/position/set",
                "position_topic": base + "/state",
                "position_template": _tmpl("position"),
                "position_open": 100,
                "position_closed": 0,
            }
        )
        out.append(("cover", "bed_" + section, c))
    return out


def camera_configs(device_id: str, device: dict) -> list:
    base = base_topic(device_id) + "/camera"
    motion = _entity(device_id, device, "camera_motion", "Motion")
    motion.update({"state_topic": base + "/motion", "device_class": "motion", "payload_on": "ON", "payload_off": "OFF"})
    image = _entity(device_id, device, "camera_snapshot", "Snapshot")
    image.update({"image_topic": base + "/snapshot", "content_type": "image/bmp"})
    return [("binary_sensor", "camera_motion", motion), ("image", "camera_snapshot", image)]


def discovery(prefix: str, device_id: str, device: dict, apps: dict) -> list:
    """``[(config topic, config dict)]`` for ``apps`` (``{app name: its settings}``)."""
    entities = []
    if "thermostat" in apps:
        entities.append(thermostat_config(device_id, device, apps["thermostat"]))
    if "bed" in apps:
        entities.extend(bed_configs(device_id, device, apps["bed"]))
    if "camera" in apps:
        entities.extend(camera_configs(device_id, device))
    return [(config_topic(prefix, comp, device_id, obj), c) for comp, obj, c in entities]


def command_routes(configs: list) -> dict:
    """``{command topic: route}`` from the discovery configs; a route names what the topic sets."""
    routes = {}
    base_len = len("bp-lan/")
    for _topic, c in configs:
        for field in c:
            if field.endswith("command_topic") or field in ("command_topic", "set_position_topic"):
                topic = c[field]
                # bp-lan/<dev>/<app>/<what...>/set -> "<app>/<what...>"
                rest = topic[base_len:]
                rest = rest[rest.index("/") + 1 : -len("/set")]
                routes[topic] = rest
    return routes


def _number(text: str) -> float:
    value = float(text)  # ValueError for anything else
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number: %r" % (text,))
    return value


def decode_command(route: str, payload: bytes, thermostat_mode: object = None) -> tuple:
    """What a command means: ``("put", state key, value)`` or ``("call", command name, args)``.

    Raises ValueError for a payload that means nothing here (the bridge counts it).
    ``thermostat_mode``: the thermostat's current mode (a single target sets the
    cool setpoint in ``cool`` mode, the heat setpoint otherwise).
    """
    try:
        text = payload.decode().strip()
    except UnicodeError:
        raise ValueError("payload is not text") from None
    parts = route.split("/")
    if parts[0] == "thermostat" and len(parts) == 2:
        what = parts[1]
        if what == "mode":
            mode = FROM_HA_MODE.get(text)
            if mode is None:
                raise ValueError("unknown mode %r" % (text,))
            return "put", "thermostat.mode", mode
        value = _number(text)
        if what == "temperature":
            key = "cool_setpoint_c" if thermostat_mode == "cool" else "setpoint_c"
        elif what == "temperature_low":
            key = "setpoint_c"
        elif what == "temperature_high":
            key = "cool_setpoint_c"
        else:
            raise ValueError("unknown thermostat command %r" % (what,))
        return "put", "thermostat." + key, value
    if parts[0] == "bed" and len(parts) >= 2:
        name = parts[1]
        if name in SIDES and parts[2:] == ["temperature"]:
            return "call", "bed.set_temp", {"side": name, "setpoint_c": _number(text)}
        if name in SECTIONS and parts[2:] == ["position"]:
            return "call", "bed.set_base", {"section": name, "position_pct": _number(text)}
        if name in SECTIONS and len(parts) == 2:
            if text == "STOP":
                return "call", "bed.stop", {}
            if text in ("OPEN", "CLOSE"):
                pct = COVER_OPEN_PCT if text == "OPEN" else 0.0
                return "call", "bed.set_base", {"section": name, "position_pct": pct}
            raise ValueError("unknown cover command %r" % (text,))
    raise ValueError("unknown command route %r" % (route,))


def _action(heat: object, cool: object, off: bool) -> str:
    if heat:
        return "heating"
    if cool:
        return "cooling"
    return "off" if off else "idle"


def state_messages(device_id: str, statuses: dict) -> list:
    """``[(topic, payload bytes)]`` for the apps' ``status()`` dicts (``{app name: status}``)."""
    base = base_topic(device_id)
    out = []
    t = statuses.get("thermostat")
    if t is not None:
        mode = t.get("mode")
        target = t.get("cool_setpoint_c") if mode == "cool" else t.get("setpoint_c")
        state = {
            "mode": TO_HA_MODE.get(mode, "off"),
            "temp_c": t.get("temp_c"),
            "target_c": target,
            "low_c": t.get("setpoint_c"),
            "high_c": t.get("cool_setpoint_c"),
            "action": _action(t.get("heater_on"), t.get("cooler_on"), mode == "off"),
        }
        out.append((base + "/thermostat/state", json.dumps(state).encode()))
    b = statuses.get("bed")
    if b is not None:
        for side in SIDES:
            s = b.get(side) or {}
            state = {
                "temp_c": s.get("temp_c"),
                "setpoint_c": s.get("setpoint_c"),
                "action": _action(s.get("heat"), s.get("cool"), False),
            }
            out.append((base + "/bed/" + side + "/state", json.dumps(state).encode()))
        for section in SECTIONS:
            s = b.get(section) or {}
            out.append((base + "/bed/" + section + "/state", json.dumps({"position": s.get("position_pct")}).encode()))
    c = statuses.get("camera")
    if c is not None:
        out.append((base + "/camera/motion", b"ON" if c.get("moving") else b"OFF"))
    return out


def snapshot_topic(device_id: str) -> str:
    return base_topic(device_id) + "/camera/snapshot"
