"""``brickproof run``: one device on the host, offline, in simulated time."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from device.board import load_board
from device.boot import run_device
from device.config import APP_NAMES, configure_apps
from device.errors import ConfigError
from device.link.build import parse_broker_url
from hw.sim.faults import ALL_FAULTS
from tools.store_cmd import FILE_BACKENDS, add_store_option, storage_config

FAULT_KINDS = ALL_FAULTS  # a part's own kinds are checked when the board is built


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run one device on the host (simulated time), offline or synced with a broker")
    p.add_argument("--board", required=True, help="board profile, e.g. boards/host_sim.json")
    p.add_argument(
        "--app", default=None, choices=APP_NAMES, help="app to run (default: the board's app, else thermostat)"
    )
    p.add_argument(
        "--for", dest="for_s", required=True, type=_positive_seconds, metavar="SECONDS", help="simulated seconds to run"
    )
    p.add_argument(
        "--speed",
        default=1.0,
        type=_speed,
        metavar="X",
        help="simulated time runs X times faster than real time; 'max' for as fast as possible (default 1)",
    )
    p.add_argument(
        "--status-every",
        dest="status_s",
        default=60.0,
        type=_positive_seconds,
        metavar="SECONDS",
        help="simulated seconds between status lines (default 60)",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="PART:KIND@T[+D]",
        help="inject a fault at T simulated seconds for D seconds, e.g. room_sensor:nan@3600+600 "
        f"(kinds: {', '.join(FAULT_KINDS)})",
    )
    add_store_option(p)
    p.add_argument(
        "--broker",
        metavar="URL",
        help="sync with this broker: mqtt://HOST:PORT or mqtts://HOST:PORT (replaces the board's cloud endpoints)",
    )
    p.add_argument("--device-id", help="MQTT client and topic id (default: the board's link.client_id, else its name)")
    p.add_argument("--ca", help="CA certificate (PEM) that signed the broker's certificate (mqtts)")
    p.add_argument("--cert", help="device certificate (PEM) for mutual TLS")
    p.add_argument("--key", help="device private key (PEM) for mutual TLS")
    p.add_argument("--client", choices=("auto", "paho", "portable"), help="MQTT client (default: the board's)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no status lines, only the summary")
    p.set_defaults(handler=handle)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _speed(text: str) -> float:
    if text == "max":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 (or 'max'), got {text!r}")
    return value


def _fault(text: str) -> dict[str, Any]:
    try:
        target, when = text.split("@", 1)
        part, kind = target.split(":", 1)
        at_text, _, for_text = when.partition("+")
        at_s = float(at_text)
        for_s = float(for_text) if for_text else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected PART:KIND@SECONDS[+SECONDS], got {text!r}") from None
    if kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"unknown fault kind {kind!r} (kinds: {', '.join(FAULT_KINDS)})")
    if at_s < 0 or (for_s is not None and for_s <= 0):
        raise argparse.ArgumentTypeError(f"fault times must be positive, got {text!r}")
    return {"at_s": at_s, "for_s": for_s, "part": part, "kind": kind, "value": None}


def _clock_text(t_ms: int, wall_ms: int | None) -> str:
    seconds = t_ms // 1000
    elapsed = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if wall_ms is None:
        return f"{elapsed} --:--"
    day_s = wall_ms // 1000 % 86400
    return f"{elapsed} {day_s // 3600:02d}:{day_s // 60 % 60:02d}"


def _temp(value: float | None) -> str:
    return "  --  " if value is None else f"{value:5.2f}C"


def status_line(status: dict[str, Any], app: str) -> str:
    a = status.get(app, {})
    when = _clock_text(status["t_ms"], status["wall_ms"])
    if app == "bed":
        return f"{when}  {_bed_status(a)}"
    if app == "camera":
        return f"{when}  {_camera_status(a)}"
    sp = a.get("setpoint_c")
    if sp is None:
        return f"{when}  starting"
    heat = "ON " if a.get("heater_on") else "off"
    cool = "ON " if a.get("cooler_on") else "off"
    return (
        f"{when}  room {_temp(a.get('temp_c'))}  set {sp:4.1f}C  heat {heat}  cool {cool}  "
        f"mode {a.get('mode')!s:4}  health {a.get('health')}"
    )


def _bed_status(a: dict[str, Any]) -> str:
    if "left" not in a:
        return "starting"
    sides = []
    for side in ("left", "right"):
        st = a[side]
        drive = "heat" if st.get("heat") else "cool" if st.get("cool") else "idle"
        capped = " capped" if st.get("capped") else ""
        sides.append(f"{side} {_temp(st.get('temp_c'))} set {st.get('effective_c', 0):4.1f}C {drive:4}{capped}")
    base = []
    for section in ("head", "foot"):
        sec = a.get(section, {})
        pos = sec.get("position_pct")
        where = "--" if pos is None else format(pos, "3.0f")
        fault = f" {sec['fault'].upper()}" if sec.get("fault") else ""
        base.append(f"{section} {where}%->{sec.get('target_pct', 0):3.0f}%{fault}")
    flatten = f"  flatten {a['flatten']}" if a.get("flatten") else ""
    return f"{'  '.join(sides)}  {'  '.join(base)}{flatten}  health {a.get('health')}"


def _camera_status(a: dict[str, Any]) -> str:
    if "events" not in a:
        return "starting"
    moving = "MOTION" if a.get("moving") else "still "
    return (
        f"{moving} ({a.get('changed_permille', 0):3d} per mille changed)  events {a['events']}  "
        f"clips {a.get('clips')} ({a.get('clip_bytes', 0) / 1024:.1f} KiB)  health {a.get('health')}"
    )


def _add_faults(board: dict[str, Any], faults: list[dict[str, Any]]) -> None:
    if not faults:
        return
    if not board.get("sim"):
        raise ConfigError("sim", "--fault needs a simulated board (this board has no 'sim' section)")
    for fault in faults:
        if fault["part"] not in board.get("hw", {}):
            known = ", ".join(sorted(board.get("hw", {})))
            raise ConfigError("hw", f"--fault names no part {fault['part']!r} (parts: {known})")
        board["sim"]["faults"].append(fault)


def _thermostat_lines(summary: dict[str, Any], a: dict[str, Any]) -> list[str]:
    lines = []
    world = summary.get("world")
    if world:
        lines.append(
            f"  room (true)        min {world['room_min_c']:.2f}C  max {world['room_max_c']:.2f}C  "
            f"end {world['room_c']:.2f}C;  outside at the end {world['outside_c']:.1f}C"
        )
        energy = ", ".join(
            f"{name} {load['energy_j'] / 3.6e6:.2f} kWh" for name, load in sorted(world["loads"].items())
        )
        lines.append(f"  energy             {energy}")
    if summary.get("comfort_pct") is not None:
        lines.append(f"  within 1C of set   {summary['comfort_pct']:.1f}% of status samples")
    if summary["sim_ms"]:
        heat_pct = 100 * a.get("heater_on_ms", 0) / summary["sim_ms"]
        cool_pct = 100 * a.get("cooler_on_ms", 0) / summary["sim_ms"]
        lines.append(
            f"  heater             on {heat_pct:.1f}% of the time, {a.get('heater_switches')} switches;  "
            f"cooler on {cool_pct:.1f}%, {a.get('cooler_switches')} switches"
        )
    lines.append(
        f"  min on/off         {a.get('min_on_violations')} / {a.get('min_off_violations')} violations;  "
        f"{a.get('safety_cutoffs')} safety cut-offs"
    )
    return lines


def _app_lines(summary: dict[str, Any], app: str, a: dict[str, Any]) -> list[str]:
    if app == "bed":
        return [
            f"  requests           {a.get('presses')} button presses; {a.get('requests_limited')} limited, "
            f"{a.get('requests_rejected')} rejected by the envelope;  health at the end {a.get('health')}"
        ]
    if app == "camera":
        ring = a.get("ring") or {}
        return [
            f"  motion             {a.get('motion_events')} events ({a.get('suppressed_by_cooldown')} suppressed by "
            f"the cool-down), {a.get('frames')} frames",
            f"  clips              {ring.get('clips')} kept ({ring.get('used_bytes')} of {ring.get('budget_bytes')} "
            f"bytes), {ring.get('evicted')} evicted by the budget",
        ]
    return []


def format_summary(summary: dict[str, Any], app: str, real_s: float) -> list[str]:
    a = summary.get(app, {})
    sim_s = summary["sim_ms"] / 1000
    lines = [
        f"summary: {sim_s / 3600:.2f} simulated hours in {real_s:.2f} s real ({sim_s / max(real_s, 1e-9):.0f}x)",
        f"  control ticks      {a.get('ticks')}  (mean {a.get('tick_us_mean')} us, max {a.get('tick_us_max')} us)",
    ]
    if app == "thermostat":
        lines += _thermostat_lines(summary, a)
    else:
        lines += _app_lines(summary, app, a)
    lines += [
        f"  faults             sensor errors {a.get('sensor_errors')}, store errors {a.get('store_errors')}, "
        f"task crashes {summary['task_crashes']}",
        f"  outbox             {summary['outbox_records']} records, {summary['outbox_bytes']} bytes queued for the "
        f"cloud; counters {json.dumps(summary['store_counters'], sort_keys=True)}",
    ]
    link = summary.get("link")
    if link:
        lines.append(
            f"  link               {link['state']}, {link['outages']} outage(s) ended, "
            f"{link['counters']['sessions']} session(s); causes {json.dumps(link['causes'], sort_keys=True)}"
        )
        sync = summary.get("sync") or {}
        shown = {k: v for k, v in sorted(sync.items()) if isinstance(v, int)}
        lines.append(f"  sync               {json.dumps(shown, sort_keys=True)}")
    return lines


def _link_options(board: dict[str, Any], args: argparse.Namespace) -> str | None:
    """Apply --broker and friends to the board's link section; return the device id, None for offline."""
    link = board["link"]
    if args.broker:
        # The cloud endpoints give way; a LAN broker (role "lan", Home Assistant) stays.
        lan = [ep for ep in link["endpoints"] if ep["role"] == "lan"]
        link["endpoints"] = [parse_broker_url(args.broker), *lan]
    for name in ("ca", "cert", "key"):
        path = getattr(args, name)
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"--{name}", f"no such file: {path}")
            link["tls"][name] = path
    if args.client:
        link["client"] = args.client
    if not args.broker:
        if args.ca or args.cert or args.key or args.client or args.device_id:
            raise ConfigError("--broker", "--ca/--cert/--key/--client/--device-id need --broker")
        return None
    if (args.cert is None) != (args.key is None):
        raise ConfigError("--cert", "mutual TLS needs both --cert and --key")
    if link["endpoints"][0]["tls"] and not link["tls"]["ca"]:
        raise ConfigError("--ca", "mqtts:// needs --ca (the CA that signed the broker's certificate)")
    return str(args.device_id or link["client_id"] or board["name"])


def _in_ota_root(board: dict[str, Any]) -> None:
    """Under ``brickproof boot`` (``$BRICKPROOF_OTA_ROOT``) a relative store path lives in the device root,
    beside its OTA slots and key, not wherever the boot loader was started."""
    import os

    from device.ota.agent import ROOT_ENV

    root = os.environ.get(ROOT_ENV)
    storage = board["storage"]
    path = storage.get("path")
    if root and path and storage["backend"] in FILE_BACKENDS and not os.path.isabs(path):
        storage["path"] = os.path.join(root, path)


def handle(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    board["storage"] = storage_config(board, args.store)
    _in_ota_root(board)
    device_id = _link_options(board, args)
    _add_faults(board, args.fault)
    if args.app is None:  # the one app the board configures (host_bed_sim: bed), else the thermostat
        configured = [name for name in APP_NAMES if name in board.get("apps", {})]
        args.app = configured[0] if len(configured) == 1 else "thermostat"
    app_settings = configure_apps(board, [args.app])
    out = sys.stdout

    def on_status(_device: object, status: dict[str, Any]) -> None:
        if not args.quiet:
            out.write(status_line(status, args.app) + "\n")
            out.flush()

    started = time.monotonic()
    summary = asyncio.run(
        run_device(
            board,
            app_settings,
            int(args.for_s * 1000),
            args.speed,
            on_status,
            int(args.status_s * 1000),
            device_id=device_id,
        )
    )
    real_s = time.monotonic() - started
    if args.json:
        summary["real_s"] = round(real_s, 3)
        out.write(json.dumps(summary, sort_keys=True) + "\n")
    else:
        out.write("\n".join(format_summary(summary, args.app, real_s)) + "\n")
    return 0
