"""Board profiles: load a JSON board file, resolve ``extends``, validate, resolve pins.

A board file may name parents with ``"extends": "base.json"`` (or a list,
merged left to right), paths relative to the file. Parents are merged
depth-first: dicts merge key by key, the child wins, lists and scalars are
replaced whole. The merged result is validated once against ``BOARD_SPEC``
and then cross-checked (pin aliases, fault parts, endpoint names). The
loaded board also carries ``_source``, the file (or label) it came from.
"""

import json

from device.compat import path_dirname, path_join
from device.errors import ConfigError
from device.schema import copy_data, join_path, show, type_name, validate

CHIPS = ("host", "esp32", "esp32s3", "rp2040", "rp2350", "bcm2711", "bcm2712")
RUNTIMES = ("cpython", "micropython", "any")
STORAGE_BACKENDS = ("memory", "sqlite", "log")
ENDPOINT_ROLES = ("primary", "secondary", "lan")
FAULT_KINDS = ("stuck", "nan", "out_of_range", "disconnected", "stuck_off", "stuck_on")
# Backends that keep data in a file need to know where.
_FILE_BACKENDS = ("sqlite", "log")
_ENOENT = 2

_PIN = {"type": ["int", "str"], "min": 0, "max": 255}

_STORAGE = {
    "type": "dict",
    "default": {},
    "fields": {
        "backend": {"type": "str", "choices": list(STORAGE_BACKENDS), "default": "memory"},
        "path": {"type": "str", "default": "", "doc": "sqlite: the database file; log: its directory"},
        "budget_bytes": {"type": "int", "min": 4096, "max": 2**40, "default": 1048576},
        "fsync": {"type": "bool", "default": True, "doc": "durable on return (sqlite FULL / fsync per commit)"},
        "group_commit_ms": {
            "type": "int",
            "min": 1,
            "max": 1000,
            "default": 2,
            "doc": "sqlite: appends share a commit",
        },
        "segment_bytes": {"type": "int", "min": 512, "max": 2**24, "default": 4096, "doc": "log: one segment file"},
        "erase_block_bytes": {"type": "int", "min": 256, "max": 2**20, "default": 4096, "doc": "log: flash sector"},
        "erase_cycles": {"type": "int", "min": 1, "max": 10**9, "default": 100000, "doc": "log: rated endurance"},
    },
}

_HW_PART = {
    "type": "dict",
    "fields": {
        "driver": {"type": "str", "required": True, "doc": "checked by hw/build.py"},
        # No default: a part without a pin stays without one (drivers reject options they do not take).
        "pin": {"type": ["int", "str"], "min": 0, "max": 255, "nullable": True},
    },
    # Free driver options; the driver validates their meaning.
    "values": {"type": ["str", "int", "float", "bool"], "nullable": True},
}

_ENDPOINT = {
    "type": "dict",
    "fields": {
        "name": {"type": "str", "required": True},
        "role": {"type": "str", "choices": list(ENDPOINT_ROLES), "default": "primary"},
        "host": {"type": "str", "required": True, "doc": "DNS name (kept for TLS SNI and checks) or an IP"},
        "port": {"type": "int", "min": 1, "max": 65535, "default": 8883},
        "tls": {"type": "bool", "default": True},
        "addresses": {
            "type": "list",
            "items": {"type": "str"},
            "default": [],
            "doc": "seed addresses used until DNS has answered once (then the last-known-good set)",
        },
    },
}

_LINK_TLS = {
    "type": "dict",
    "default": {},
    "fields": {
        "ca": {"type": "str", "nullable": True, "default": None, "doc": "CA certificate (PEM) for the broker"},
        "cert": {"type": "str", "nullable": True, "default": None, "doc": "device certificate (PEM), mutual TLS"},
        "key": {"type": "str", "nullable": True, "default": None, "doc": "device private key (PEM)"},
    },
}

LINK_SPEC = {
    "type": "dict",
    "default": {},
    "fields": {
        "endpoints": {"type": "list", "items": _ENDPOINT, "default": []},
        "client_id": {"type": "str", "nullable": True, "default": None, "doc": "device id; default: the board name"},
        "client": {
            "type": "str",
            "choices": ["auto", "paho", "portable"],
            "default": "auto",
            "doc": "auto: paho on CPython, the portable client on MicroPython",
        },
        "tls": _LINK_TLS,
        "keepalive_s": {"type": "int", "min": 5, "max": 3600, "default": 60},
        "connect_timeout_ms": {"type": "int", "min": 100, "max": 120000, "default": 10000},
        "window": {"type": "int", "min": 1, "max": 1000, "default": 20, "doc": "QoS 1 publishes in flight"},
        "queue_len": {"type": "int", "min": 1, "max": 1000, "default": 32, "doc": "incoming messages held"},
        "dns_servers": {
            "type": "list",
            "items": {"type": "str"},
            "default": [],
            "doc": "UDP resolvers (ip or ip:port); empty: the system resolver (CPython only)",
        },
        "dns_budget_ms": {"type": "int", "min": 50, "max": 60000, "default": 3000},
        "dns_recheck_ms": {
            "type": "int",
            "min": 0,
            "max": 86400000,
            "default": 60000,
            "doc": "degraded on the primary's fallback address: ask DNS again this often; 0: never",
        },
        "backoff_base_ms": {"type": "int", "min": 1, "max": 600000, "default": 1000},
        "backoff_cap_ms": {"type": "int", "min": 1, "max": 3600000, "default": 300000},
        "healthy_ms": {
            "type": "int",
            "min": 0,
            "max": 3600000,
            "default": 60000,
            "doc": "a connection must last this long before backoff resets",
        },
        "long_outage_ms": {
            "type": "int",
            "min": 0,
            "max": 10**9,
            "default": 600000,
            "doc": "after an outage this long, attempts move to the per-device slots of spread_ms",
        },
        "spread_ms": {
            "type": "int",
            "min": 0,
            "max": 3600000,
            "default": 300000,
            "doc": "after a long outage one attempt per spread_ms, on the device's phase (hash of its id)",
        },
        "ack_timeout_ms": {
            "type": "int",
            "min": 100,
            "max": 3600000,
            "default": 30000,
            "doc": "no PUBACK this long with records in flight: drop the connection and resend",
        },
        "drain_per_s": {
            "type": "int",
            "min": 0,
            "max": 10**6,
            "default": 5000,
            "doc": "outbox records per second after an outage; 0: unlimited",
        },
    },
}

LAN_SPEC = {
    "type": "dict",
    "default": {},
    "doc": "the owner's LAN: HTTP API (device/lan/server.py), token key, Home Assistant over a 'lan' endpoint",
    "fields": {
        "http": {
            "type": "dict",
            "default": {},
            "fields": {
                "enabled": {"type": "bool", "default": False},
                "bind": {"type": "str", "default": "0.0.0.0"},
                "port": {"type": "int", "min": 0, "max": 65535, "default": 8080, "doc": "0: any free port"},
                "max_conns": {"type": "int", "min": 1, "max": 64, "default": 4},
                "max_line_bytes": {"type": "int", "min": 64, "max": 8192, "default": 512},
                "max_header_bytes": {"type": "int", "min": 256, "max": 65536, "default": 2048},
                "max_body_bytes": {"type": "int", "min": 0, "max": 1048576, "default": 4096},
                "read_timeout_ms": {"type": "int", "min": 100, "max": 600000, "default": 5000},
            },
        },
        "key_file": {
            "type": "str",
            "nullable": True,
            "default": None,
            "doc": "the device's token key (hex, from brickproof provision); null: control is refused",
        },
        "replay_window_ms": {"type": "int", "min": 1000, "max": 3600000, "default": 300000},
        "ha": {
            "type": "dict",
            "default": {},
            "fields": {
                "enabled": {"type": "bool", "default": False, "doc": "needs a link endpoint with role 'lan'"},
                "prefix": {"type": "str", "default": "homeassistant"},
                "state_every_s": {"type": "int", "min": 1, "max": 3600, "default": 30},
            },
        },
    },
}

_FAULT = {
    "type": "dict",
    "fields": {
        "at_s": {"type": "float", "min": 0, "required": True},
        "for_s": {"type": "float", "gt": 0, "nullable": True, "default": None},
        "part": {"type": "str", "required": True, "doc": "a part in hw"},
        "kind": {"type": "str", "choices": list(FAULT_KINDS), "required": True},
        "value": {"type": "float", "nullable": True, "default": None},
    },
}

_SIM = {
    "type": "dict",
    "nullable": True,
    "default": None,
    "doc": "host simulation; null on real hardware",
    "fields": {
        "seed": {"type": "int", "default": 1},
        "start_day_s": {"type": "int", "min": 0, "max": 86399, "default": 0},
        "start_wall_s": {"type": "int", "min": 0, "nullable": True, "default": None},
        "outside": {
            "type": "dict",
            "default": {},
            "fields": {
                "mean_c": {"type": "float", "default": 5.0},
                "amplitude_c": {"type": "float", "min": 0, "default": 5.0},
                "coldest_hour": {"type": "float", "min": 0, "max": 24, "default": 5.0},
                "weather_noise_c": {"type": "float", "min": 0, "default": 1.0},
            },
        },
        "room": {
            "type": "dict",
            "default": {},
            "fields": {
                "initial_c": {"type": "float", "default": 18.0},
                "thermal_mass_j_per_k": {"type": "float", "gt": 0, "default": 2000000.0},
                "loss_w_per_k": {"type": "float", "gt": 0, "default": 100.0},
                "internal_gain_w": {"type": "float", "default": 100.0},
            },
        },
        "loads": {
            "type": "dict",
            "values": {"type": "dict", "fields": {"power_w": {"type": "float", "required": True}}},
            "default": {"heater": {"power_w": 5000.0}, "cooler": {"power_w": -3000.0}},
        },
        "faults": {"type": "list", "items": _FAULT, "default": []},
    },
}

OTA_SPEC = {
    "type": "dict",
    "default": {},
    "doc": "over-the-air updates (device/ota/agent.py): signed bundles in chunks over MQTT, A/B slots",
    "fields": {
        "enabled": {"type": "bool", "default": False},
        "pubkey_file": {
            "type": "str",
            "nullable": True,
            "default": None,
            "doc": "ota_pub.json (from brickproof provision); required when enabled",
        },
        "root": {"type": "str", "default": "", "doc": "the device root holding ota/; '': the working dir"},
        "chunk_bytes": {"type": "int", "min": 256, "max": 65536, "default": 4096},
        "max_bundle_bytes": {"type": "int", "min": 1024, "max": 2**31, "default": 1048576},
        "backlog_max": {
            "type": "int",
            "min": 0,
            "default": 200,
            "doc": "outbox records above which no download or switch starts (outage catch-up first)",
        },
        "health_ms": {"type": "int", "min": 1000, "max": 3600000, "default": 60000, "doc": "trial boot health gate"},
        "check_every_ms": {"type": "int", "min": 100, "max": 600000, "default": 1000},
        "max_trial_boots": {"type": "int", "min": 1, "max": 10, "default": 3},
        "require_link": {
            "type": "bool",
            "default": True,
            "doc": "a trial must reach ONLINE within health_ms when the device has a link",
        },
        "request_timeout_ms": {"type": "int", "min": 100, "max": 600000, "default": 10000},
    },
}

BOARD_SPEC = {
    "type": "dict",
    "fields": {
        "name": {"type": "str", "required": True},
        "description": {"type": "str", "default": ""},
        "chip": {"type": "str", "choices": list(CHIPS), "default": "host"},
        "runtime": {"type": "str", "choices": list(RUNTIMES), "default": "any"},
        "pins": {"type": "dict", "values": _PIN, "default": {}, "doc": "alias -> pin number or another alias"},
        "storage": _STORAGE,
        "heap_budget_bytes": {"type": "int", "min": 1024, "nullable": True, "default": None},
        "hw": {"type": "dict", "values": _HW_PART, "default": {}},
        "apps": {"type": "dict", "values": {"type": "dict"}, "default": {}, "doc": "each app checks its own"},
        "link": LINK_SPEC,
        "lan": LAN_SPEC,
        "ota": OTA_SPEC,
        "sim": _SIM,
    },
}


def load_board(path: str) -> dict:
    """Read, merge and validate the board file at ``path``; raises ConfigError."""
    merged = _load_merged(path, [])
    return _finish(merged, path)


def load_board_dict(data: dict, source: str = "<dict>", base_dir: str = "") -> dict:
    """Like ``load_board`` for data already in memory; ``extends`` resolves from ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("", "expected a JSON object, got " + type_name(data), source)
    merged = _merge_parents(data, source, base_dir, [source])
    return _finish(merged, source)


def deep_merge(base: dict, over: dict) -> dict:
    """A new dict: ``over`` on top of ``base``; nested dicts merge, everything else is replaced."""
    out = copy_data(base)
    for key, theirs in over.items():
        mine = out.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            out[key] = deep_merge(mine, theirs)
        else:
            out[key] = copy_data(theirs)
    return out


def resolve_pin(board: dict, value: object, path: str = "pins") -> int:
    """A pin number from an int or an alias in ``board["pins"]`` (aliases may chain)."""
    pins = board.get("pins") or {}
    seen: list = []
    while not isinstance(value, int) or isinstance(value, bool):
        if not isinstance(value, str):
            raise ConfigError(path, "expected a pin number or alias, got " + type_name(value))
        if value in seen:
            raise ConfigError(path, "pin alias cycle: " + " -> ".join(seen + [value]))
        if value not in pins:
            known = ", ".join(sorted(pins)) or "none"
            raise ConfigError(path, "unknown pin " + show(value) + " (known: " + known + ")")
        seen.append(value)
        value = pins[value]
    if value < 0 or value > 255:
        raise ConfigError(path, "pin number must be 0..255, got " + str(value))
    return value


# -- loading -----------------------------------------------------------------


def _normpath(path: str) -> str:
    """Collapse ``.`` and ``..`` so the cycle check sees one name per file."""
    parts: list = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    text = "/".join(parts)
    if path.startswith("/"):
        return "/" + text
    return text or "."


def _read_json(path: str, referrer: str) -> dict:
    """Parse one file. ``referrer`` is the child file naming it via ``extends`` ("" at the top)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        reason = "no such file" if exc.args and exc.args[0] == _ENOENT else str(exc)
        if referrer:
            raise ConfigError("extends", "cannot read parent board file " + path + ": " + reason, referrer) from None
        raise ConfigError("", "cannot read board file: " + reason, path) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError("", "not valid JSON: " + str(exc), path) from None
    if not isinstance(data, dict):
        raise ConfigError("", "expected a JSON object at the top, got " + type_name(data), path)
    return data


def _load_merged(path: str, chain: list, referrer: str = "") -> dict:
    key = _normpath(path)
    if key in chain:
        names = chain[chain.index(key) :] + [key]
        raise ConfigError("extends", "extends cycle: " + " -> ".join(names), referrer or path)
    data = _read_json(path, referrer)
    return _merge_parents(data, path, path_dirname(path), chain + [key])


def _merge_parents(data: dict, source: str, base_dir: str, chain: list) -> dict:
    parents = data.get("extends")
    if parents is None:
        return _copy_without(data, "extends")
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not parents:
        raise ConfigError("extends", "expected a file name or a non-empty list of them", source)
    for i in range(len(parents)):
        name = parents[i]
        if not isinstance(name, str) or not name:
            where = "extends[" + str(i) + "]"
            raise ConfigError(where, "expected a file name, got " + type_name(name), source)
    merged: dict = {}
    for name in parents:
        merged = deep_merge(merged, _load_merged(path_join(base_dir, name), chain, source))
    return deep_merge(merged, _copy_without(data, "extends"))


# -- checks after validation --------------------------------------------------


def _finish(merged: dict, source: str) -> dict:
    board = validate(BOARD_SPEC, merged, "", source)
    try:
        _cross_check(board)
    except ConfigError as exc:
        raise ConfigError(exc.path, exc.message, source) from None
    # Where the board came from, so later checks (apps, drivers) can name the file.
    board["_source"] = source
    return board


def _cross_check(board: dict) -> None:
    pins = board["pins"]
    for alias in sorted(pins):
        resolve_pin(board, alias, "pins." + alias)
    hw = board["hw"]
    for part in sorted(hw):
        options = hw[part]
        for key in sorted(options):
            if key == "pin" or key.endswith("_pin"):
                value = options[key]
                if value is not None:
                    resolve_pin(board, value, "hw." + part + "." + key)
    storage = board["storage"]
    if storage["backend"] in _FILE_BACKENDS and not storage["path"]:
        raise ConfigError("storage.path", "required for backend '" + storage["backend"] + "'")
    endpoints = board["link"]["endpoints"]
    seen: list = []
    for i in range(len(endpoints)):
        name = endpoints[i]["name"]
        if name in seen:
            raise ConfigError("link.endpoints[" + str(i) + "].name", "duplicate endpoint name " + show(name))
        seen.append(name)
    ota = board["ota"]
    if ota["enabled"] and not ota["pubkey_file"]:
        raise ConfigError("ota.pubkey_file", "required when ota.enabled (the ota_pub.json from brickproof provision)")
    sim = board["sim"]
    if sim is not None:
        faults = sim["faults"]
        for i in range(len(faults)):
            part = faults[i]["part"]
            if part not in hw:
                known = ", ".join(sorted(hw)) or "none"
                where = join_path("sim.faults[" + str(i) + "]", "part")
                raise ConfigError(where, "unknown part " + show(part) + " (known: " + known + ")")


def _copy_without(data: dict, skip: object) -> dict:
    out = {}
    for key, value in data.items():
        if key != skip:
            out[key] = copy_data(value)
    return out
