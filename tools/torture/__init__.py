"""Reliability harnesses: ``brickproof torture --list`` / ``brickproof torture NAME [--size ci|long] [--json]``.

Each harness module has ``NAME``, ``SUMMARY`` and ``run(size, seed, progress) -> Result``
where ``size`` is ``"ci"`` (small: runs in CI) or ``"long"`` (the figures recorded in
docs/RELIABILITY.md). Every harness is bounded in count and in time at both sizes.

A result is ``{"name", "size", "seed", "figures": {...}, "goals": {figure: [op, value]}}``;
``goals`` name the figures that must hold (op ``"=="``, ``"<="`` or ``">="``). The command
exits 1 when any goal fails and says which. Timing figures are printed, never goals: these
machines are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# name -> module under tools.torture; imported only when run.
HARNESSES: dict[str, str] = {
    "store-powercut": "tools.torture.store_powercut",
    "outage-matrix": "tools.torture.outage_matrix",
    "reconnect-storm": "tools.torture.reconnect_storm",
    "mqtt-conformance": "tools.torture.mqtt_conformance",
    "mqtt-malformed": "tools.torture.mqtt_malformed",
    "tokens": "tools.torture.tokens",
    "model-based": "tools.torture.model_based",
    "ota": "tools.torture.ota",
}

SIZES = ("ci", "long")
_OPS = {"==": lambda a, b: a == b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("torture", help="reliability harnesses (crash sweeps, fault matrices, fuzzing)")
    p.add_argument("name", nargs="?", help="harness to run (see --list)")
    p.add_argument("--list", action="store_true", help="name the harnesses")
    p.add_argument("--size", choices=SIZES, default="ci", help="ci: small, for CI; long: the recorded figures")
    p.add_argument("--seed", type=int, default=1, help="seed for the random parts (same seed, same run)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=handle)


def load(name: str) -> Any:
    return importlib.import_module(HARNESSES[name])


def failed_goals(result: dict[str, Any]) -> list[str]:
    """The goals a result misses, as ``"figure: got X, goal op Y"`` lines."""
    misses = []
    figures = result["figures"]
    for figure, (op, want) in sorted(result["goals"].items()):
        got = figures.get(figure)
        if got is None or not _OPS[op](got, want):
            misses.append(f"{figure}: got {got!r}, goal {op} {want!r}")
    return misses


def handle(args: argparse.Namespace) -> int:
    from tools.cli import UsageError

    if args.list:
        for name in sorted(HARNESSES):
            print(f"{name:18} {load(name).SUMMARY}")
        return 0
    if not args.name:
        raise UsageError("torture: name a harness (see --list)")
    if args.name not in HARNESSES:
        known = ", ".join(sorted(HARNESSES)) or "none"
        raise UsageError(f"torture: unknown harness {args.name!r} (known: {known})")
    result: dict[str, Any] = load(args.name).run(args.size, args.seed, None if args.json else sys.stderr)
    misses = failed_goals(result)
    if args.json:
        print(json.dumps(dict(result, failed=misses), sort_keys=True))
    else:
        print(f"{result['name']} (size {result['size']}, seed {result['seed']}):")
        for key, value in result["figures"].items():
            goal = result["goals"].get(key)
            mark = f"   goal {goal[0]} {goal[1]}" if goal else ""
            print(f"  {key:36} {value}{mark}")
        print("  verdict".ljust(39) + ("FAIL" if misses else "PASS"))
        for miss in misses:
            print(f"  missed: {miss}", file=sys.stderr)
    return 1 if misses else 0
