"""``brickproof sim``: a fleet of devices living through an outage scenario, with a verdict.

Exit codes: 0 every invariant held, 1 one broke (the summary says which),
2 a bad argument or scenario file (one line naming the field).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tools.argtypes import positive_int

EXIT_BROKEN = 1


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0, got %r" % text)
    return value


def _apps(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("expected distinct app names separated by commas, got %r" % text)
    return names


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sim",
        help="simulate a fleet through an outage scenario (spawns its own mosquitto)",
        description="Run N devices through a scenario (built-in name or a .json/.toml file) against a private "
        "mosquitto behind DNS and TCP faults; print a summary and write a report.",
    )
    p.add_argument("--scenario", default="us-east-1-2025", help="built-in name or file (default us-east-1-2025)")
    p.add_argument("--devices", type=positive_int, default=None, help="fleet size (default: the scenario's)")
    p.add_argument("--speed", type=_speed, default=None, help="simulated seconds per real second (default: scenario)")
    p.add_argument(
        "--recovery-speed",
        type=_speed,
        default=None,
        help="pace after the last fault ends (default 60, at most --speed)",
    )
    p.add_argument(
        "--apps",
        type=_apps,
        default=None,
        metavar="APP,APP",
        help="split the fleet evenly over these apps, e.g. thermostat,bed,camera (default: the scenario's mix)",
    )
    p.add_argument(
        "--shards",
        type=positive_int,
        default=1,
        metavar="N",
        help="run the fleet in N processes against one broker and merge the verdict (default 1: one process)",
    )
    p.add_argument("--seed", type=int, default=1, help="the fault timeline and the homes follow from it (default 1)")
    p.add_argument("--report", type=Path, default=None, help="write metrics.json, series.json and index.html here")
    p.add_argument("--list", action="store_true", help="name the built-in scenarios")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from cloud_shim.broker import BrokerError, mosquitto_path
    from cloud_shim.report import summary_table
    from cloud_shim.scenario import ScenarioError, builtin_names, load_scenario, with_apps
    from cloud_shim.sim.runner import DEFAULT_RECOVERY_SPEED, simulate
    from cloud_shim.sim.shards import check_shardable, simulate_sharded
    from tools.cli import UsageError

    if args.list:
        for name in builtin_names():
            sys.stdout.write("%-16s %s\n" % (name, load_scenario(name)["description"]))
        return 0
    try:
        scenario = load_scenario(args.scenario)
        if args.apps:
            scenario = with_apps(scenario, args.apps)
        check_shardable(scenario, args.shards)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    try:
        mosquitto_path()
    except BrokerError as exc:
        raise UsageError(str(exc)) from None
    raise_fd_limit()
    recovery = args.recovery_speed if args.recovery_speed is not None else DEFAULT_RECOVERY_SPEED
    progress = None if args.quiet else sys.stderr
    if args.shards > 1:
        metrics, _ = simulate_sharded(
            scenario, args.devices, args.shards, args.speed, args.seed, args.report, recovery, progress
        )
    else:
        metrics, _ = simulate(scenario, args.devices, args.speed, args.seed, args.report, recovery, progress)
    sys.stdout.write(summary_table(metrics) + "\n")
    if args.report is not None:
        sys.stdout.write("report: %s\n" % (args.report / "index.html"))
    return 0 if metrics["ok"] else EXIT_BROKEN


def raise_fd_limit() -> None:
    """Each device holds a socket (and mosquitto, started from here, inherits the limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
