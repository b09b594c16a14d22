"""Benchmarks: ``brickproof bench --list`` / ``brickproof bench NAME [--json]``.

Each benchmark module has ``NAME``, ``SUMMARY`` and ``run(runs) -> Result``
(a module holding several names them ``"module:ATTR"``, an object with the same three).
A result is ``{"name", "figures": {...}, "ratio"}`` where ``ratio`` compares
the project against the raw library doing the same work in the same run, or
is None when no such baseline exists. Figures are printed, never asserted:
these machines are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# name -> module under tools.bench (or "module:ATTR"); imported only when run.
BENCHMARKS = {
    "boot": "tools.bench.boot",
    "tick": "tools.bench.tick",
    "outbox-append": "tools.bench.outbox:APPEND",
    "outbox-ack": "tools.bench.outbox:ACK",
    "flash-wear": "tools.bench.flash_wear",
    "drain": "tools.bench.drain",
    "resume": "tools.bench.resume",
    "mpy-mqtt": "tools.bench.mpy_mqtt",
    "fleet": "tools.bench.fleet",
    "fault-tick": "tools.bench.fault_tick",
    "camera-fps": "tools.bench.camera",
    "lan-fuzz": "tools.bench.lan_fuzz",
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="performance figures (with ratios against raw libraries)")
    p.add_argument("name", nargs="?", help="benchmark to run (see --list)")
    p.add_argument("--list", action="store_true", help="name the benchmarks")
    p.add_argument("--json", action="store_true", help='print one JSON object {"name", "figures", "ratio"}')
    p.add_argument("--runs", type=int, default=None, help="repetitions where the benchmark takes a median")
    p.set_defaults(handler=handle)


def load(name: str) -> Any:
    module, _, attr = BENCHMARKS[name].partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attr) if attr else loaded


def handle(args: argparse.Namespace) -> int:
    from tools.cli import UsageError

    if args.list:
        for name in sorted(BENCHMARKS):
            print(f"{name:14} {load(name).SUMMARY}")
        return 0
    if not args.name:
        raise UsageError("bench: name a benchmark (see --list)")
    if args.name not in BENCHMARKS:
        raise UsageError(f"bench: unknown benchmark {args.name!r} (known: {', '.join(sorted(BENCHMARKS))})")
    if args.runs is not None and args.runs < 1:
        raise UsageError("bench: --runs must be >= 1")
    module = load(args.name)
    result: dict[str, Any] = module.run(args.runs, progress=None if args.json else sys.stderr)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"{result['name']}:")
        for key, value in result["figures"].items():
            print(f"  {key:36} {value}")
        print(f"  {'ratio':36} {result['ratio']}")
    return 0
