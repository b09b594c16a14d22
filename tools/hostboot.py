"""``brickproof boot --root DIR -- <brickproof run args>``: the host build's bootloader.

The host stand-in for a board's reset loop (``boards/mp/main.py``):

1. ``device.ota.bootsel.select`` on ``DIR`` (the device root: ``ota/boot.json``,
   ``ota/a``, ``ota/b``) picks the slot, with the cause of the last reset:
   ``power`` for the first boot, ``reset`` after exit code ``EXIT_RESET`` (75:
   the OTA agent's switch or rollback), ``crash`` after any other non-zero exit
   (a traceback, a kill): a crash of a trial boot rolls it back.
2. ``python -P -m tools.cli run <args>`` runs as a child with ``PYTHONPATH`` =
   the slot's directory, then the repository (factory: the repository's code
   alone; ``-P`` keeps the working directory off ``sys.path``, so ``device``
   and ``hw`` come from the slot) and ``BRICKPROOF_OTA_ROOT=DIR``.
3. Exit 0 ends the loop (the run finished); so does ``--max-boots`` (then the
   exit code is the last child's, or 1).

Each boot prints ``ota boot=N slot=S cause=C note=...`` on stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from device.ota.agent import EXIT_RESET, ROOT_ENV
from device.ota.bootsel import select
from device.ota.otafs import OtaFiles

REPO = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 10.0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("boot", help="host bootloader: run `brickproof run` from the slot bootsel picks, reboot on exit")
    p.add_argument("--root", required=True, help="the device root holding ota/ (created if missing)")
    p.add_argument("--max-boots", type=int, default=10, metavar="N", help="stop after N boots (default 10)")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then the arguments of `brickproof run`")
    p.set_defaults(handler=handle)


def child_env(root: Path, slot_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(root / slot_dir)] if slot_dir else []
    paths.append(str(REPO))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[ROOT_ENV] = str(root)
    return env


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def boot_once(root: Path, cause: str, run_args: list[str], n: int = 1) -> tuple[str, int]:
    """One boot: select, run the child to its end; ``(slot, exit code)``."""
    slot, slot_dir, note = select(OtaFiles(str(root)), cause)
    _say(f"ota boot={n} slot={slot} cause={cause} note={note}")
    cmd = [sys.executable, "-P", "-m", "tools.cli", "run", *run_args]
    child = subprocess.Popen(cmd, env=child_env(root, slot_dir))
    try:
        return slot, child.wait()
    finally:
        if child.poll() is None:  # we were interrupted: the device goes down with us
            child.terminate()
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def boot_loop(root: Path, run_args: list[str], max_boots: int) -> int:
    root.mkdir(parents=True, exist_ok=True)
    cause = "power"
    code = 1
    for n in range(1, max_boots + 1):
        _slot, code = boot_once(root, cause, run_args, n)
        if code == 0:
            return 0
        cause = "reset" if code == EXIT_RESET else "crash"
    _say(f"ota boot: stopped after {max_boots} boots (last exit code {code})")
    return code or 1


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds boot_once, which stops the child


def handle(args: argparse.Namespace) -> int:
    run_args = list(args.run_args)
    if run_args and run_args[0] == "--":
        run_args = run_args[1:]
    if not run_args:
        from tools.cli import UsageError

        raise UsageError("boot: give the `brickproof run` arguments after --")
    if args.max_boots < 1:
        from tools.cli import UsageError

        raise UsageError("boot: --max-boots must be >= 1")
    signal.signal(signal.SIGTERM, _terminate)
    return boot_loop(Path(args.root).resolve(), run_args, args.max_boots)
