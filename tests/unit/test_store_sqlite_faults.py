"""The sqlite store when the medium refuses writes: SQLITE_FULL from ``PRAGMA max_page_count``.

A database capped at its current size behaves like a full disk: the write
that needs a new page fails with SQLITE_FULL. The store must turn that into
``StoreWriteError`` (errno ENOSPC) for every caller of the failed batch,
count it once per failed transaction in ``write_errors``, keep its
bookkeeping as it was, skip (never reuse) the failed batch's seqs, and work
again once space is freed (records acked), in this run and after a reopen.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from device.errors import StoreWriteError
from device.store.sqlite import SqliteStore

BIG = 1 << 24
PAD = "x" * 900  # about a quarter of a 4 KiB page per record


async def cap_at_current_size(store: SqliteStore) -> int:
    """Make the database full as it stands: no page may be added."""
    db = store._db
    assert db is not None
    async with db.execute("PRAGMA page_count") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    async with db.execute("PRAGMA max_page_count = %d" % row[0]) as cursor:
        capped = await cursor.fetchone()
    assert capped is not None and capped[0] == row[0]
    return int(row[0])


async def append_many(store: SqliteStore, count: int, tag: str) -> list:
    return await asyncio.gather(
        *[store.append("event", {"tag": tag, "i": i, "pad": PAD}) for i in range(count)], return_exceptions=True
    )


async def test_a_full_database_fails_the_whole_batch_and_skips_its_seqs(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite")
    store = SqliteStore(path, budget_bytes=BIG, fsync=True)
    await store.open()
    try:
        kept = await append_many(store, 20, "kept")
        assert sorted(kept) == list(range(1, 21))
        depth = store.depth()
        await cap_at_current_size(store)

        first_refused = store.next_seq()
        refused = await append_many(store, 30, "refused")
        assert all(isinstance(r, StoreWriteError) for r in refused), refused
        assert {r.errno for r in refused} == {errno.ENOSPC}
        assert "full" in str(refused[0])
        assert store.counters["write_errors"] == 1  # one failed transaction
        assert store.counters["appended"] == 20
        assert store.depth() == depth
        assert store.seq_range() == (1, 20)
        assert store.next_seq() == first_refused + 30  # the failed batch's seqs are spent

        # Space comes back when the cloud acks: the store takes records again.
        assert await store.ack(10) == 10
        after = await store.append("event", {"tag": "after"})
        assert after == first_refused + 30
        records = await store.read_outbox(100)
        assert [r.seq for r in records] == [*range(11, 21), after]
        assert all(r.payload["tag"] != "refused" for r in records)
    finally:
        await store.close()

    store = SqliteStore(path, budget_bytes=BIG)
    await store.open()
    try:
        assert store.next_seq() == after + 1
        assert store.seq_range() == (11, after)
        assert store.counters["appended"] == 21
        assert store.counters["write_errors"] == 0  # this run's health, not history
        assert await store.append("event", {"tag": "reboot"}) == after + 1
    finally:
        await store.close()


async def test_a_refused_state_put_keeps_the_old_value(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite"), budget_bytes=BIG)
    await store.open()
    try:
        old = await store.put_state("schedule", {"note": "small"})
        for i in range(8):
            await store.append("event", {"i": i, "pad": PAD})
        await cap_at_current_size(store)
        with pytest.raises(StoreWriteError) as refused:
            await store.put_state("schedule", {"note": "y" * 20000})
        assert refused.value.errno == errno.ENOSPC
        assert store.counters["write_errors"] == 1
        assert await store.get_state("schedule") == old

        await store.ack(8)
        new = await store.put_state("schedule", {"note": "fits again"})
        assert new.version == 2
    finally:
        await store.close()


async def test_a_refused_inbox_write_is_not_remembered(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.sqlite"), budget_bytes=BIG)
    await store.open()
    try:
        await cap_at_current_size(store)
        with pytest.raises(StoreWriteError):
            await store.inbox_add("c" * 30000, 1000)  # a key bigger than the free room in its page
        assert not await store.inbox_seen("c" * 30000)
        assert store.counters["write_errors"] == 1
        assert await store.inbox_add("short", 1000)
    finally:
        await store.close()
