"""What a sqlite store file carries across reboots, and how ``open`` treats files it did not write.

Reopen: seq (even with the outbox acked empty), boot id, state entries with
their versions and stamps, the inbox and the persisted counters. Read-only
open (``brickproof store``): counts no boot and leaves the files byte for
byte as they were. A file that is not a brickproof store is refused with
``StoreError``, never half-used; damaged rows inside a store are skipped,
counted in ``corrupt_skipped`` and never stop a drain.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from device.errors import StoreError
from device.store import open_store
from device.store.sqlite import SqliteStore

BIG = 1 << 24


async def open_at(path: Path, readonly: bool = False, **options: object) -> SqliteStore:
    store = SqliteStore(str(path), budget_bytes=BIG, **options)  # type: ignore[arg-type]
    await store.open(readonly=readonly)
    return store


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


async def test_everything_survives_a_reboot_even_an_empty_outbox(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "store.sqlite"  # the folders are made
    store = await open_at(path)
    assert store.boot_id == 1
    for i in range(5):
        await store.append("telemetry", {"temp_c": 20 + i}, 1000 * i)
    mode = await store.put_state("mode", "heat", origin="cloud", wall_ms=1_700_000_000_000)
    await store.put_state("mode", "cool", origin="lan")
    assert await store.inbox_add("cmd-1", 99_000)
    assert await store.ack(5) == 5
    before = store.stats()
    await store.close()

    store = await open_at(path)
    try:
        assert store.boot_id == 2
        assert store.seq_range() == (None, None)
        assert store.next_seq() == 6
        assert store.depth() == (0, 0)
        for name in ("appended", "acked", "compacted", "inbox_evicted"):
            assert store.counters[name] == before["counters"][name]
        entry = await store.get_state("mode")
        assert entry is not None
        assert (entry.value, entry.version, entry.origin) == ("cool", 2, "lan")
        assert entry.stamp > mode.stamp
        assert await store.inbox_seen("cmd-1")
        later = await store.put_state("mode", "off")
        assert later.stamp > entry.stamp  # the clock was restored from the stored stamps
        seq = await store.append("event", {"kind": "boot"}, 5)
        assert seq == 6
        (record,) = await store.read_outbox(10)
        assert (record.seq, record.boot, record.created_ms) == (6, 2, 5)
    finally:
        await store.close()


async def test_fsync_chooses_the_synchronous_setting(tmp_path: Path) -> None:
    for fsync, expected in ((True, 2), (False, 1)):  # FULL = 2, NORMAL = 1
        store = await open_at(tmp_path / ("s%d.sqlite" % fsync), fsync=fsync)
        try:
            assert store._db is not None
            async with store._db.execute("PRAGMA synchronous") as cursor:
                assert (await cursor.fetchone()) == (expected,)
            async with store._db.execute("PRAGMA journal_mode") as cursor:
                assert (await cursor.fetchone()) == ("wal",)
            assert store.stats()["sqlite"]["synchronous"] == ("FULL" if fsync else "NORMAL")
        finally:
            await store.close()


async def test_open_store_builds_it_from_a_board_section(tmp_path: Path) -> None:
    store = open_store(
        {"backend": "sqlite", "path": str(tmp_path / "s.sqlite"), "budget_bytes": 8192, "group_commit_ms": 5}
    )
    assert isinstance(store, SqliteStore)
    assert (store.budget_bytes, store.fsync, store.group_commit_ms) == (8192, True, 5)


async def test_readonly_counts_no_boot_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = await open_at(path)
    await store.append("event", {"kind": "x"})
    await store.put_state("mode", "heat")
    await store.close()
    before = files_of(tmp_path)
    assert list(before) == ["store.sqlite"]  # a clean close leaves no -wal or -shm

    for _ in range(2):
        store = await open_at(path, readonly=True)
        try:
            assert store.boot_id == 1
            assert [r.payload for r in await store.read_outbox(10)] == [{"kind": "x"}]
            with pytest.raises(StoreError, match="read-only"):
                await store.append("event", {"kind": "y"})
            with pytest.raises(StoreError, match="read-only"):
                await store.put_state("mode", "cool")
            with pytest.raises(StoreError, match="read-only"):
                await store.ack(1)
        finally:
            await store.close()
    assert files_of(tmp_path) == before


async def test_readonly_sees_commits_still_in_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    writer = await open_at(path)
    try:
        await writer.append("event", {"kind": "uncheckpointed"})
        assert (tmp_path / "store.sqlite-wal").exists()  # the device is still running
        reader = await open_at(path, readonly=True)
        try:
            assert [r.payload["kind"] for r in await reader.read_outbox(10)] == ["uncheckpointed"]
        finally:
            await reader.close()
    finally:
        await writer.close()


async def test_readonly_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no sqlite store"):
        await open_at(tmp_path / "missing.sqlite", readonly=True)
    assert files_of(tmp_path) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database at all, just bytes " * 200, "not a database"),
        (b"SQLite format 3\x00" + b"\xff" * 100, "cannot open"),
    ],
)
async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=message):
        await open_at(path)
    assert path.read_bytes() == content  # reported, not repaired


async def test_someone_elses_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not a brickproof store"):
        await open_at(path)


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = await open_at(path)
    await store.close()
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        await open_at(path)


async def test_damaged_rows_are_skipped_counted_once_and_acked_away(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    store = await open_at(path)
    for i in range(10):
        await store.append("event", {"i": i})
    await store.put_state("mode", "heat")
    await store.put_state("fan", True)
    await store.close()
    db = sqlite3.connect(str(path))
    db.execute("UPDATE outbox SET payload = '{broken' WHERE seq BETWEEN 3 AND 7")
    db.execute("UPDATE outbox SET lane = 9 WHERE seq = 8")
    db.execute("UPDATE state SET value = 'not json' WHERE key = 'fan'")
    db.commit()
    db.close()

    store = await open_at(path)
    try:
        assert store.counters["corrupt_skipped"] == 1  # the state row
        assert await store.get_state("fan") is None
        assert (await store.get_state("mode")).value == "heat"  # type: ignore[union-attr]
        # A page of 5 meets six damaged rows in a row: the read goes on past them.
        assert [r.seq for r in await store.read_outbox(5)] == [1, 2, 9, 10]
        assert [r.seq for r in await store.read_outbox(5, after_seq=2)] == [9, 10]
        assert store.counters["corrupt_skipped"] == 7  # each damaged record counted once
        assert await store.ack(10) == 10
        assert store.depth() == (0, 0) and store.seq_range() == (None, None)
        assert await store.append("event", {"after": True}) == 11
    finally:
        await store.close()


async def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"")
    store = await open_at(path)
    try:
        assert store.boot_id == 1
        assert await store.append("event", {}) == 1
    finally:
        await store.close()


async def test_open_twice_is_an_error_and_close_twice_is_not(tmp_path: Path) -> None:
    store = await open_at(tmp_path / "store.sqlite")
    with pytest.raises(StoreError, match="already open"):
        await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.read_outbox(1)
