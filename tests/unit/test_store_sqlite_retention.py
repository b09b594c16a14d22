"""Retention and bookkeeping in the sqlite store, beyond the conformance suite.

* Folding reads the outbox in scans of ``SCAN_ROWS``; a run that reaches a
  scan's end is taken up again by the next scan (shrunk here to 5 rows).
* A fold pass is one transaction: if the medium fails halfway, nothing of
  it is kept, in the file or in the RAM bookkeeping.
* The RAM bookkeeping (depth, seq range, next seq, counters) always equals
  what a reopen reads back from the file, whatever mix of appends, acks,
  folds and refused writes came before.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest

from device.errors import StoreFullError, StoreWriteError
from device.store import sqlite_db
from device.store.retention import FOLD_GROUP, samples_in
from device.store.sqlite import SqliteStore
from tests.pure._store_check import telemetry_accounted


def sample(i: int) -> dict:
    return {"temp_c": 18 + (i * 7 % 50) / 10, "heat": i % 3 == 0, "mode": "heat"}


def rows_of(path: Path) -> list[tuple]:
    db = sqlite3.connect(str(path))
    try:
        return db.execute("SELECT * FROM outbox ORDER BY seq").fetchall()
    finally:
        db.close()


def bookkeeping(store: SqliteStore) -> tuple:
    counters = {k: store.counters[k] for k in ("appended", "acked", "compacted", "inbox_evicted")}
    return store.depth(), store.seq_range(), store.next_seq(), counters


async def test_runs_are_folded_across_scan_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_db, "SCAN_ROWS", 5)
    store = SqliteStore(str(tmp_path / "s.sqlite"), budget_bytes=3000, fsync=False)
    await store.open()
    try:
        telemetry = {}
        for i in range(300):
            payload = sample(i)
            telemetry[await store.append("telemetry", payload, i * 1000)] = (payload, i * 1000)
            assert store.depth()[1] <= 3000
        records = await store.read_outbox(10_000)
        telemetry_accounted(records, telemetry, set())
        assert sum(samples_in(r.payload) for r in records) == 300
        # Runs were not cut at the 5-row scans: first folds took whole groups.
        assert max(r.payload["agg"]["n"] for r in records if "agg" in r.payload) >= FOLD_GROUP
        assert store.counters["compacted"] == 300 - len(records)
    finally:
        await store.close()


async def test_a_fold_that_fails_halfway_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(str(path), budget_bytes=4000, fsync=False)  # high water 3200, low water 2400
    await store.open()
    try:
        for i in range(60):
            await store.append("telemetry", sample(i), i)
        before_rows = rows_of(path)
        before = bookkeeping(store)
        assert store.counters["compacted"] == 0 and 2300 < store.depth()[1] < 2600

        real_fold_run = sqlite_db._fold_run
        folds: list[int] = []

        def fold_then_fail(db: sqlite3.Connection, first: int, last: int) -> tuple:
            if folds:
                raise sqlite3.OperationalError("disk I/O error")
            folds.append(first)
            return real_fold_run(db, first, last)

        monkeypatch.setattr(sqlite_db, "_fold_run", fold_then_fail)
        append_seq = store.next_seq()
        with pytest.raises(StoreWriteError, match="folding telemetry"):
            # A big sample pushes past the high water; making room takes more than one run:
            # the first run is folded, then the medium fails.
            await store.append("telemetry", dict(sample(99), note="n" * 800), 99)
        assert folds  # the first run was folded inside the transaction ...
        assert rows_of(path) == before_rows  # ... and rolled back with it
        assert bookkeeping(store) == before
        assert store.next_seq() == append_seq  # the refused append took no seq
        assert store.counters["write_errors"] == 1

        monkeypatch.setattr(sqlite_db, "_fold_run", real_fold_run)
        assert await store.append("telemetry", sample(100), 100) == append_seq
    finally:
        await store.close()


async def test_bookkeeping_always_matches_what_a_reopen_reads(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    rng = random.Random(3)
    budget = 4000
    store = SqliteStore(str(path), budget_bytes=budget, fsync=False)
    await store.open()
    issued: list[int] = []  # every seq handed out, burst after burst
    try:
        for step in range(400):
            op = rng.random()
            if op < 0.55:
                lane = "telemetry" if rng.random() < 0.8 else rng.choice(["event", "result"])
                burst = rng.randint(1, 12)  # concurrent appends: one group commit
                payloads = [dict(sample(step), pad="p" * rng.randint(0, 40)) for _ in range(burst)]
                results = await asyncio.gather(*[store.append(lane, p, step) for p in payloads], return_exceptions=True)
                seqs = sorted(r for r in results if isinstance(r, int))
                assert all(isinstance(r, int | StoreFullError) for r in results), results
                # Within a burst a small record may pass one that waits for a fold: order by seq.
                assert not issued or not seqs or seqs[0] > issued[-1]
                issued += seqs
            elif op < 0.7:
                first, last = store.seq_range()
                if first is not None:
                    await store.ack(rng.randint(first, last))
            elif op < 0.8:
                held = [r.seq for r in await store.read_outbox(50)]
                await store.ack_seqs(rng.sample(held, min(len(held), rng.randint(0, 5))))
            elif op < 0.85:
                await store.compact()
            elif op < 0.9:
                await store.inbox_add("cmd-%d" % step, step)
            else:
                state = bookkeeping(store)
                await store.close()
                store = SqliteStore(str(path), budget_bytes=budget, fsync=False)
                await store.open()
                assert bookkeeping(store) == state, step
            assert store.depth()[1] <= budget
            rows = rows_of(path)
            assert store.depth() == (len(rows), sum(row[5] for row in rows))
            assert store.seq_range() == ((rows[0][0], rows[-1][0]) if rows else (None, None))
        assert issued == sorted(set(issued))  # every seq handed out once
        c = store.counters
        assert c["appended"] == c["acked"] + c["compacted"] + store.depth()[0]
    finally:
        await store.close()
