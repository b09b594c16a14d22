"""The store conformance suite (``tests/pure/store_conformance.py``) on ``SqliteStore`` (CPython only).

Each check gets its own databases under ``tmp_path``, built through ``open_store`` as a
board would (``fsync`` on, the default group commit); reopening one is a reboot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from device.store import open_store
from device.store.base import Store
from tests.pure import store_conformance as conformance

OpenFn = Callable[..., Awaitable[Store]]


def sqlite_maker(root: Path) -> Callable[[int], OpenFn]:
    made = [0]

    def make(budget_bytes: int) -> OpenFn:
        made[0] += 1
        path = str(root / ("store-%d.sqlite" % made[0]))

        async def open_fn(readonly: bool = False) -> Store:
            store = open_store({"backend": "sqlite", "path": path, "budget_bytes": budget_bytes, "fsync": True})
            await store.open(readonly=readonly)
            return store

        return open_fn

    return make


@pytest.mark.parametrize("check", conformance.CHECKS, ids=conformance.check_name)
def test_sqlite_store_conforms(check: Any, tmp_path: Path) -> None:
    conformance.run(check, sqlite_maker(tmp_path), durable=True)
