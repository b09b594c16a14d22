"""A fold under way in the sqlite worker thread holds the sync engine's store acks back.

The engine acks a batch only when no fold happened since it checked the batch and none
is under way (``Store.folding``): a fold that lands first could turn an acked seq into an
aggregate standing for records never delivered (tests/pure/test_sync_engine.py has the
fold-in-the-gap case on the memory store).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from device.store import sqlite as sqlite_module
from device.store.sqlite import SqliteStore
from tests.pure.test_sync_engine import FakeClient, engine_for, session, until


async def test_the_store_says_folding_while_the_fold_runs_in_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite"), budget_bytes=3000, fsync=False)
    await store.open()
    seen: list[bool] = []
    real = sqlite_module.fold_oldest

    def watched(*args: Any) -> Any:
        seen.append(store.folding)  # read in the worker thread, during the fold's transaction
        return real(*args)

    monkeypatch.setattr(sqlite_module, "fold_oldest", watched)
    try:
        for i in range(200):
            await store.append("telemetry", {"temp_c": 20 + i % 9, "pad": "x" * 20}, i)
        assert seen and all(seen) and store.counters["compacted"] > 0
        assert store.folding is False
    finally:
        await store.close()


async def test_acks_wait_while_a_fold_is_under_way(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite"), budget_bytes=1 << 20, fsync=False)
    await store.open()
    for i in range(8):
        await store.append("telemetry", {"temp_c": 20 + i}, i)
    client = FakeClient()
    engine = engine_for(store, window=4, ack_delay_ms=0)

    async def body() -> None:
        await until(lambda: len(client.records()) == 4, "window")
        store.folding = True  # as while a fold's transaction is in the worker thread
        client.ack_records()
        await until(lambda: engine.counters["acked"] == 4, "the PUBACKs taken")
        await asyncio.sleep(0.2)
        assert store.depth()[0] == 8 and engine.counters["store_acks"] == 0  # held back
        store.folding = False
        await until(lambda: engine.counters["store_acks"] >= 4, "the store acks once the fold is over")
        for _ in range(100):
            client.ack_records()
            if not store.depth()[0]:
                break
            await asyncio.sleep(0.01)

    try:
        await session(engine, client, body)
        assert store.depth()[0] == 0 and engine.counters["store_acks"] == 8
    finally:
        await store.close()
