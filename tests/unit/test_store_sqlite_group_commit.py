"""Group commit in the sqlite store: appends share transactions, and nobody hears "durable" early.

What the conformance suite cannot see: how many transactions the appends
took (``SqliteStore.group_commits``), and whether a seq is handed out before
its row is committed. The second is checked from outside, through a separate
``sqlite3`` connection to the same file, the way another process would see it.
No sleeps: the worker thread is held with a ``threading.Event`` where a
test needs the commit to be "in flight", and the event loop is only spun.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from device.errors import StoreError
from device.store.sqlite import SqliteStore

HANG_GUARD_S = 30  # only a broken store waits this long; a working one answers at once
MINUTE_MS = 60_000  # a group-commit window no test waits out


@contextlib.asynccontextmanager
async def opened(path: Path, **options: int) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(path), budget_bytes=1 << 24, fsync=True, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def outside(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file: sees only what was committed."""
    db = sqlite3.connect(str(path))
    try:
        yield db
    finally:
        db.close()


def committed_seqs(path: Path) -> list[int]:
    with outside(path) as db:
        return [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]


async def spin_until(condition, limit: int = 10_000) -> None:  # type: ignore[no-untyped-def]
    """Let other tasks run (no sleeping) until ``condition()`` holds."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


@contextlib.asynccontextmanager
async def worker_held(store: SqliteStore) -> AsyncIterator[None]:
    """Block aiosqlite's worker thread: every operation queued meanwhile waits behind it."""
    release = threading.Event()
    entered = threading.Event()

    def hold(db: sqlite3.Connection) -> None:
        entered.set()
        release.wait(HANG_GUARD_S)

    blocker = asyncio.ensure_future(store._run(hold))
    await asyncio.to_thread(entered.wait, HANG_GUARD_S)
    try:
        yield
    finally:
        release.set()
        await blocker


async def test_concurrent_appends_share_one_commit(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.sqlite") as store:
        seqs = await asyncio.gather(*[store.append("telemetry", {"i": i}, i) for i in range(100)])
        assert sorted(seqs) == list(range(1, 101))
        assert store.group_commits == 1
        assert store.largest_group == 100
        assert store.depth()[0] == 100


async def test_a_batch_holds_at_most_max_batch_rows(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.sqlite") as store:
        store.max_batch_rows = 10
        seqs = await asyncio.gather(*[store.append("event", {"i": i}) for i in range(25)])
        assert sorted(seqs) == list(range(1, 26))
        assert store.group_commits == 3
        assert store.largest_group == 10


async def test_appends_from_one_task_after_another_each_commit(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.sqlite", group_commit_ms=1) as store:
        for i in range(5):
            assert await store.append("event", {"i": i}) == i + 1
        assert store.group_commits == 5


async def test_a_full_batch_does_not_wait_for_the_window(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.sqlite", group_commit_ms=MINUTE_MS) as store:
        store.max_batch_rows = 8
        appends = asyncio.gather(*[store.append("event", {"i": i}) for i in range(8)])
        assert sorted(await asyncio.wait_for(appends, HANG_GUARD_S)) == list(range(1, 9))
        assert store.group_commits == 1


async def test_the_window_lets_a_later_append_join_the_batch(tmp_path: Path) -> None:
    async with opened(tmp_path / "s.sqlite", group_commit_ms=MINUTE_MS) as store:
        store.max_batch_rows = 2
        first = asyncio.ensure_future(store.append("event", {"i": 0}))
        await spin_until(lambda: store._batches and len(store._batches[0].rows) == 1)
        for _ in range(100):
            await asyncio.sleep(0)  # the loop goes round; the first append keeps waiting for company
        assert not first.done()
        second = await asyncio.wait_for(store.append("event", {"i": 1}), HANG_GUARD_S)
        assert (await first, second) == (1, 2)
        assert store.group_commits == 1


async def test_no_caller_hears_its_seq_before_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with opened(path) as store:
        store.max_batch_rows = 50
        async with worker_held(store):
            tasks = [asyncio.ensure_future(store.append("event", {"i": i})) for i in range(50)]
            # The batch is full: the committer takes it and queues its commit behind the held worker.
            await spin_until(lambda: not store._batches and store._committer is not None)
            for _ in range(100):
                await asyncio.sleep(0)
            assert not any(t.done() for t in tasks)
            assert store.depth() == (0, 0)
            assert committed_seqs(path) == []
        seqs = await asyncio.wait_for(asyncio.gather(*tasks), HANG_GUARD_S)
        assert sorted(seqs) == list(range(1, 51))
        assert committed_seqs(path) == list(range(1, 51))


async def test_each_seq_is_committed_when_its_append_returns(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    seen_missing: list[int] = []
    async with opened(path) as store:
        with outside(path) as db:

            async def producer(k: int) -> None:
                for i in range(10):
                    seq = await store.append("telemetry", {"k": k, "i": i}, i)
                    if db.execute("SELECT count(*) FROM outbox WHERE seq = ?", (seq,)).fetchone()[0] != 1:
                        seen_missing.append(seq)

            await asyncio.gather(*[producer(k) for k in range(20)])
        assert seen_missing == []
        assert store.depth()[0] == 200
        assert store.group_commits < 200  # they shared transactions


async def test_close_flushes_waiting_appends_and_refuses_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SqliteStore(str(path), budget_bytes=1 << 20, group_commit_ms=MINUTE_MS)
    await store.open()
    tasks = [asyncio.ensure_future(store.append("event", {"i": i})) for i in range(3)]
    await spin_until(lambda: store._batches and len(store._batches[0].rows) == 3)
    await asyncio.wait_for(store.close(), HANG_GUARD_S)
    assert [t.result() for t in tasks] == [1, 2, 3]
    assert committed_seqs(path) == [1, 2, 3]
    with pytest.raises(StoreError, match="not open"):
        await store.append("event", {"late": True})
    await store.close()  # twice is fine


async def test_a_cancelled_caller_does_not_disturb_the_others(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with opened(path) as store:
        store.max_batch_rows = 4
        async with worker_held(store):
            tasks = [asyncio.ensure_future(store.append("event", {"i": i})) for i in range(4)]
            await spin_until(lambda: not store._batches and store._committer is not None)
            tasks[1].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert [results[0], results[2], results[3]] == [1, 3, 4]
        # The cancelled caller's record was committed with its batch; it simply never heard its seq.
        assert committed_seqs(path) == [1, 2, 3, 4]
