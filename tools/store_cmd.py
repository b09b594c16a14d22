"""``brickproof store``: inspect a device's store after the fact (an outage, a bug report).

    brickproof store --board boards/host_sim.json stats
    brickproof store --board boards/host_sim.json dump --limit 20

``stats`` prints one JSON object: counters, outbox depth and seq range, boot
id, and the backend's own figures (flash wear for ``log``). ``dump`` prints
the oldest outbox records, one JSON object per line.

Inspection never changes the device's files: the store is opened read-only
(no boot is counted, no segment is started, damage is reported, not repaired).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from device.board import load_board
from device.errors import ConfigError
from device.store import open_store
from tools.argtypes import positive_int

FILE_BACKENDS = ("sqlite", "log")


def add_store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="PATH",
        help="where the store lives (sqlite: the database file, log: its directory); default: the board's storage.path",
    )


def storage_config(board: dict[str, Any], store_path: str | None) -> dict[str, Any]:
    """The board's storage section, with ``--store`` applied."""
    storage = dict(board["storage"])
    if store_path is not None:
        if storage["backend"] not in FILE_BACKENDS:
            raise ConfigError(
                "storage.backend",
                f"--store needs a file backend ({', '.join(FILE_BACKENDS)}), "
                f"this board keeps its store in {storage['backend']!r}",
            )
        storage["path"] = store_path
    return storage


def add_parser(sub: Any) -> None:
    p = sub.add_parser("store", help="inspect a device's store: counters, outbox depth, records")
    p.add_argument("--board", required=True, help="board profile naming the storage backend and path")
    add_store_option(p)
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    actions.add_parser("stats", help="counters, outbox depth and seq range as one JSON object")
    dump = actions.add_parser("dump", help="outbox records, oldest first, one JSON object per line")
    dump.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N records")
    p.set_defaults(handler=handle)


DUMP_PAGE = 500


async def _inspect(storage: dict[str, Any], action: str, limit: int | None) -> int:
    store = open_store(storage)
    await store.open(readonly=True)
    out = sys.stdout
    try:
        if action == "stats":
            out.write(json.dumps(store.stats(), sort_keys=True) + "\n")
            return 0
        after = 0
        left = limit
        while left is None or left > 0:
            page = await store.read_outbox(DUMP_PAGE if left is None else min(left, DUMP_PAGE), after)
            if not page:
                break
            for record in page:
                out.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
            after = page[-1].seq
            if left is not None:
                left -= len(page)
        return 0
    finally:
        await store.close()


def handle(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    storage = storage_config(board, args.store)
    if storage["backend"] not in FILE_BACKENDS:
        raise ConfigError(
            "storage.backend",
            f"backend {storage['backend']!r} keeps nothing after the device stops: there is no store to inspect",
        )
    if not os.path.exists(storage["path"]):
        raise ConfigError("storage.path", f"no store at {storage['path']!r} (has this device run here yet?)")
    return asyncio.run(_inspect(storage, args.action, getattr(args, "limit", None)))
