"""Run one device offline from a board file: the portable entry point for hosts and the MicroPython unix port.

    micropython device/offline.py BOARD [--app thermostat] [--for SECONDS] [--speed X]
                                        [--status-every SECONDS] [--store PATH]
                                        [--latency] [--first-decision]

Prints ``boot heap_used=N`` once the device has started (``gc.mem_alloc()``
on MicroPython), a status line every ``--status-every`` simulated seconds, and
the summary as one JSON line prefixed ``summary``. ``--store`` puts a file
backend's store at PATH instead of the board's ``storage.path``. ``--first-decision`` stops
at the first actuator decision and prints how long boot took.
"""

import sys

if __name__ == "__main__":
    # Run as a script: the repo root (the parent of device/) goes first on the path.
    sys.path.insert(0, (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".") + "/..")

import asyncio
import json

from device import compat

# Before anything else is imported: collecting early keeps the heap unfragmented (see compat.tune_gc).
compat.tune_gc()

_USAGE = (
    "usage: offline.py BOARD [--app NAME] [--for SECONDS] [--speed X] [--status-every SECONDS]"
    " [--store PATH] [--latency] [--first-decision]"
)


def _parse(argv: list) -> dict:
    opts = {
        "board": None,
        "app": "thermostat",
        "for_s": 21600.0,
        "speed": 0.0,
        "status_s": 3600.0,
        "latency": False,
        "first_decision": False,
        "store": None,
    }
    names = {"--app": "app", "--for": "for_s", "--speed": "speed", "--status-every": "status_s", "--store": "store"}
    text_options = ("--app", "--store")
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in names:
            if i + 1 >= len(argv):
                raise ValueError(arg + " needs a value")
            value = argv[i + 1]
            opts[names[arg]] = value if arg in text_options else float(value)
            i += 2
        elif arg == "--latency":
            opts["latency"] = True
            i += 1
        elif arg == "--first-decision":
            opts["first_decision"] = True
            i += 1
        elif arg.startswith("-") or opts["board"] is not None:
            raise ValueError("unexpected argument " + arg)
        else:
            opts["board"] = arg
            i += 1
    if opts["board"] is None:
        raise ValueError("missing BOARD")
    return opts


def _percentile(sorted_values: list, fraction: float) -> int:
    if not sorted_values:
        return 0
    index = int(fraction * (len(sorted_values) - 1) + 0.5)
    return sorted_values[index]


async def _first_decision(board: dict, app_settings: dict, started_ms: int) -> None:
    from device.boot import Device, build_env

    env, world = build_env(board)
    device = Device(env, app_settings, world)
    await device.start()
    while device.apps[0].first_decision_ms is None:
        await env.clock.advance(1)
    print("first_decision_ms %d" % (compat.monotonic_ms() - started_ms))
    await device.stop()


def main(argv: list) -> int:
    started_ms = compat.monotonic_ms()
    from device import config
    from device.errors import BrickproofError

    try:
        opts = _parse(argv)
        board, app_settings = config.load(opts["board"], [opts["app"]])
        if opts["store"] is not None:
            if board["storage"]["backend"] == "memory":
                raise ValueError("--store needs a board whose storage backend keeps files (sqlite, log)")
            board["storage"]["path"] = opts["store"]
            app_settings = config.configure_apps(board, [opts["app"]])  # settings derived from the path follow it
    except (ValueError, BrickproofError, OSError) as exc:
        print("error: %s" % exc)
        print(_USAGE)
        return 2
    config.release()
    del config
    from device.boot import run_device

    if opts["first_decision"]:
        asyncio.run(_first_decision(board, app_settings, started_ms))
        return 0
    latencies: list | None = [] if opts["latency"] else None

    def on_boot(device: object) -> None:
        compat.collect_garbage()
        print("boot heap_used=%d" % compat.heap_used())
        if latencies is not None:
            device.apps[0].latencies_us = latencies  # type: ignore[attr-defined]

    def on_status(device: object, status: dict) -> None:
        app = status.get(opts["app"], {})
        temp = app.get("temp_c")
        print(
            "t=%ds room=%s set=%s heat=%s cool=%s health=%s"
            % (
                status["t_ms"] // 1000,
                "%.2f" % temp if temp is not None else "-",
                app.get("setpoint_c"),
                app.get("heater_on"),
                app.get("cooler_on"),
                app.get("health"),
            )
        )

    run = run_device(
        board,
        app_settings,
        int(opts["for_s"] * 1000),
        opts["speed"],
        on_status,
        int(opts["status_s"] * 1000),
        on_boot,
    )
    del board  # run_device drops its own reference after boot
    summary = asyncio.run(run)
    if latencies is not None:
        latencies.sort()
        summary["tick_us_p50"] = _percentile(latencies, 0.5)
        summary["tick_us_p99"] = _percentile(latencies, 0.99)
    compat.collect_garbage()
    summary["heap_used_end"] = compat.heap_used()
    print("summary " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
