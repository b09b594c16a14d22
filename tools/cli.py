"""The ``brickproof`` command line.

Bad arguments and bad files end with one line on stderr naming what is
wrong and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or file: reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _build_parser() -> argparse.ArgumentParser:
    from tools import bench, provision, run, store_cmd

    parser = _Parser(prog="brickproof", description="Brickproof: firmware runtime that survives cloud outages.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    from tools import sim

    run.add_parser(sub)
    sim.add_parser(sub)
    bench.add_parser(sub)
    store_cmd.add_parser(sub)
    provision.add_parser(sub)
    from tools import flash, hil, vboard

    flash.add_parser(sub)
    hil.add_parser(sub)
    vboard.add_parser(sub)
    from tools import boardcheck

    boardcheck.add_parser(sub)
    from tools import token

    token.add_parser(sub)
    from tools import torture

    torture.add_parser(sub)
    from tools import hostboot

    hostboot.add_parser(sub)
    from tools import bundle

    bundle.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from device.errors import BrickproofError

    try:
        args = _build_parser().parse_args(argv)
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrickproofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
