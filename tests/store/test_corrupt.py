"""Damaged files: open recovers what it can, says what it skipped, and never crashes.

Log backend (on ``CutFiles``, so every byte is under the test's hand): a
garbage segment, a truncated record header, a flipped CRC or payload byte, a
zero-length segment, a garbage or truncated state snapshot, unknown extra
files. Recovery stops at the first bad record of a segment (the records
after it in that segment are skipped, by design), reads the other segments,
counts what it skipped in ``counters["corrupt_skipped"]``, keeps working,
and what is written after the recovery survives the next reopen. Where each
record sits is found by watching which file grows on each append, so the
damage lands exactly where intended.

SQLite backend: a file that is not a database, or one damaged inside, gives
a ``StoreError`` from the store's calls, never a raw ``sqlite3`` exception.
"""

import json
import random
import sqlite3
from pathlib import Path

import pytest

from device.errors import StoreError
from tests.store.cutfiles import CutFiles

LOG_PARAMS = {
    "budget_bytes": 1 << 20,
    "fsync": True,
    "segment_bytes": 256,
    "erase_block_bytes": 256,
    "erase_cycles": 100000,
}
RECORDS = 14


def make_log(files):  # type: ignore[no-untyped-def]
    from device.store.log import LogStore

    return LogStore(files, **LOG_PARAMS)


def _payload(i: int) -> dict:
    return {"n": i, "pad": "r" * (10 + i % 7)}


def _body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class Laid:
    """A log store's files after ``RECORDS`` appends and a state put, with where each record sits."""

    def __init__(self, files: CutFiles, spots: list, state_files: list) -> None:
        self.files = files
        self.spots = spots  # (seq, file name, record start, record end), in seq order
        self.state_files = state_files

    def segments(self) -> list:
        """Segment names in the order their records were written, with their spots."""
        order: list = []
        for spot in self.spots:
            if spot[1] not in order:
                order.append(spot[1])
        return order

    def in_segment(self, name: str) -> list:
        return [spot for spot in self.spots if spot[1] == name]

    def seqs(self) -> list:
        return [spot[0] for spot in self.spots]


async def lay_out() -> Laid:
    from device.store.logformat import REC_HEADER_SIZE

    files = CutFiles()
    store = make_log(files)
    await store.open()
    await store.put_state("mode", "heat")
    spots = []
    for i in range(RECORDS):
        before = files.image()
        payload = _payload(i)
        seq = await store.append("event", payload, 1000 + i)
        after = files.image()
        body = _body(payload)
        grown = [n for n in after if after[n] != before.get(n) and after[n].endswith(body)]
        assert len(grown) == 1, "cannot tell which file took record %d: %r" % (seq, grown)
        end = len(after[grown[0]])
        spots.append((seq, grown[0], end - len(body) - REC_HEADER_SIZE, end))
    before = files.image()
    await store.put_state("mode", "cool")
    after = files.image()
    state_files = [n for n in after if after[n] != before.get(n) and not n.endswith(".tmp")]
    await store.close()
    laid = Laid(files, spots, state_files)
    assert len(laid.segments()) >= 4, "want several segments, got %r" % laid.segments()
    return laid


async def reopen(files):  # type: ignore[no-untyped-def]
    store = make_log(files)
    await store.open()
    records = await store.read_outbox(1000)
    return store, [r.seq for r in records], records


async def still_works(files, kept: list) -> None:  # type: ignore[no-untyped-def]
    """After recovery: new appends go above every seq, and they and the kept records survive a reopen."""
    store, seqs, _ = await reopen(files)
    assert seqs == kept
    new = [await store.append("event", {"after": i}, 5000 + i) for i in range(5)]
    assert new[0] > max([*kept, 0])
    await store.put_state("after", True)
    await store.close()
    store, seqs, _ = await reopen(files)
    assert seqs == kept + new, "recovery left a log that loses what is written next: %r" % seqs
    assert (await store.get_state("after")).value is True
    await store.close()


def _damage(files: CutFiles, name: str, data: bytes) -> None:
    files.poke(name, data)


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x5A
    return bytes(out)


@pytest.mark.parametrize("where", ["payload", "crc", "length"])
async def test_a_flipped_byte_skips_the_rest_of_its_segment_and_nothing_else(where):  # type: ignore[no-untyped-def]
    laid = await lay_out()
    victim_segment = next(name for name in laid.segments() if len(laid.in_segment(name)) >= 2)
    in_it = laid.in_segment(victim_segment)
    victim = in_it[0] if where == "length" else in_it[-2] if len(in_it) > 2 else in_it[0]
    seq, name, start, end = victim
    offset = {"payload": end - 3, "crc": start + 26, "length": start + 2}[where]
    _damage(laid.files, name, _flip(laid.files.read(name), offset))
    lost = [s[0] for s in in_it if s[0] >= seq]
    kept = [s for s in laid.seqs() if s not in lost]
    store, seqs, _ = await reopen(laid.files)
    stats = store.stats()
    await store.close()
    assert seqs == kept, "flipped %s byte of seq %d in %s: expected %r, read %r" % (where, seq, name, kept, seqs)
    assert stats["counters"]["corrupt_skipped"] >= 1, stats
    assert any(name in note for note in stats["log"]["recovery"]), stats["log"]["recovery"]
    assert store.next_seq() > max(laid.seqs())
    await still_works(laid.files, kept)


async def test_a_truncated_record_header_loses_that_record_only():
    laid = await lay_out()
    seq, name, start, _ = laid.spots[-1]
    _damage(laid.files, name, laid.files.read(name)[: start + 10])
    kept = laid.seqs()[:-1]
    store, seqs, _ = await reopen(laid.files)
    stats = store.stats()
    await store.close()
    assert seqs == kept
    print(
        "truncated header: corrupt_skipped =",
        stats["counters"]["corrupt_skipped"],
        "next_seq",
        store.next_seq(),
        "lost seq",
        seq,
    )
    await still_works(laid.files, kept)


@pytest.mark.parametrize("how", ["garbage", "zero-length"])
async def test_a_ruined_segment_loses_its_records_and_the_others_are_read(how):  # type: ignore[no-untyped-def]
    laid = await lay_out()
    segments = laid.segments()
    victim = segments[len(segments) // 2]
    size = len(laid.files.read(victim))
    data = bytes(random.Random(5).randrange(256) for _ in range(size)) if how == "garbage" else b""
    _damage(laid.files, victim, data)
    kept = [s[0] for s in laid.spots if s[1] != victim]
    store, seqs, _ = await reopen(laid.files)
    stats = store.stats()
    await store.close()
    assert seqs == kept
    if how == "garbage":
        assert stats["counters"]["corrupt_skipped"] >= 1, stats
        assert any(victim in note for note in stats["log"]["recovery"]), stats["log"]["recovery"]
    assert store.next_seq() > max(laid.seqs())
    await still_works(laid.files, kept)


async def test_extra_empty_and_garbage_segments_beyond_the_last_change_nothing():
    laid = await lay_out()
    _damage(laid.files, "seg900", b"")
    _damage(laid.files, "seg901", b"\xff" * 300)
    store, seqs, _ = await reopen(laid.files)
    await store.close()
    assert seqs == laid.seqs()
    assert store.next_seq() > max(laid.seqs())
    await still_works(laid.files, laid.seqs())


@pytest.mark.parametrize("how", ["garbage", "truncated", "zero-length"])
async def test_a_damaged_state_snapshot_does_not_stop_open(how):  # type: ignore[no-untyped-def]
    laid = await lay_out()
    assert laid.state_files, "no file changed on put_state"
    for name in laid.state_files:
        data = laid.files.read(name)
        damaged = {"garbage": b"\x00garbage{" + data[5:], "truncated": data[: len(data) // 2], "zero-length": b""}[how]
        _damage(laid.files, name, damaged)
    store, seqs, _ = await reopen(laid.files)
    entry = await store.get_state("mode")
    boot = store.boot_id
    stats = store.stats()
    await store.close()
    assert seqs == laid.seqs(), "a damaged state snapshot cost outbox records"
    assert entry is None or entry.value in ("heat", "cool"), entry
    # Reported: counted, and a note for people naming the file.
    assert stats["counters"]["corrupt_skipped"] >= 1, stats["counters"]
    assert any("state" in note for note in stats["log"]["recovery"]), stats["log"]["recovery"]
    assert boot == 2, "boot id %d after boot 1: the count did not survive the damaged snapshot" % boot
    print("state snapshot %s: mode=%r boot=%d counters=%r" % (how, entry and entry.value, boot, stats["counters"]))
    await still_works(laid.files, laid.seqs())


async def test_unknown_extra_files_are_left_alone_and_ignored():
    laid = await lay_out()
    extras = {
        "README.txt": b"hello",
        "seg": b"x",
        "segabc": b"\x01\x02",
        "seg001.tmp": b"half a segm",
        "state.tmp": b"{",
    }
    for name, data in extras.items():
        _damage(laid.files, name, data)
    store, seqs, _ = await reopen(laid.files)
    stats = store.stats()
    await store.close()
    assert seqs == laid.seqs()
    assert (await store.get_state("mode")).value == "cool"
    assert stats["counters"]["corrupt_skipped"] == 0, stats
    assert laid.files.read("README.txt") == b"hello"
    await still_works(laid.files, laid.seqs())


async def test_readonly_open_of_a_damaged_store_reports_and_writes_nothing():
    laid = await lay_out()
    seq, name, _, end = laid.spots[len(laid.spots) // 2]
    _damage(laid.files, name, _flip(laid.files.read(name), end - 2))
    image = laid.files.image()
    ticks = laid.files.ticks
    store = make_log(laid.files)
    await store.open(readonly=True)
    seqs = [r.seq for r in await store.read_outbox(1000)]
    assert store.stats()["counters"]["corrupt_skipped"] >= 1
    await store.close()
    assert laid.files.ticks == ticks and laid.files.image() == image, "a read-only open wrote to the medium"
    assert seq not in seqs
    again, _, _ = await reopen(laid.files)
    assert again.stats()["counters"]["corrupt_skipped"] >= 1, "the damage was repaired by a read-only open"
    await again.close()


# -- sqlite ------------------------------------------------------------------------


def _sqlite(path: str):  # type: ignore[no-untyped-def]
    from device.store.sqlite import SqliteStore

    return SqliteStore(path, budget_bytes=1 << 20, fsync=True)


async def _fill_sqlite(path: str) -> None:
    store = _sqlite(path)
    await store.open()
    for i in range(300):
        await store.append("event", {"n": i, "pad": "s" * 200}, i)
    await store.put_state("mode", "heat")
    await store.close()


async def _every_call(path: str) -> list:
    """Run open and the usual calls on a damaged database; return the exceptions that were not StoreError."""
    leaks = []
    store = _sqlite(path)
    try:
        await store.open()
    except StoreError:
        return []
    except Exception as exc:  # what leaks is the point
        await store.close()  # open failed half-way: release its connection
        return [("open", exc)]
    calls = (
        ("read_outbox", store.read_outbox, (1000,)),
        ("append", store.append, ("event", {"x": 1}, 1)),
        ("ack", store.ack, (150,)),
        ("put_state", store.put_state, ("mode", "cool")),
        ("compact", store.compact, ()),
        ("close", store.close, ()),
    )
    for name, call, args in calls:
        try:
            await call(*args)
        except StoreError:
            pass
        except Exception as exc:
            leaks.append((name, exc))
    try:
        await store.close()
    except Exception as exc:
        leaks.append(("close", exc))
    return leaks


async def test_sqlite_garbage_file_is_a_clear_store_error(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "store.db"
    path.write_bytes(bytes(random.Random(1).randrange(256) for _ in range(8192)))
    store = _sqlite(str(path))
    with pytest.raises(StoreError) as err:
        await store.open()
    assert str(path) in str(err.value), str(err.value)
    print("sqlite garbage file:", err.value)


async def test_sqlite_a_foreign_database_is_refused(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError):
        await _sqlite(str(path)).open()


async def test_sqlite_zero_length_file_is_a_new_store(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "store.db"
    path.write_bytes(b"")
    store = _sqlite(str(path))
    await store.open()
    assert store.boot_id == 1
    assert await store.append("event", {"x": 1}, 0) == 1
    await store.close()


async def test_sqlite_garbage_wal_is_ignored_and_data_kept(tmp_path):  # type: ignore[no-untyped-def]
    path = str(tmp_path / "store.db")
    await _fill_sqlite(path)
    _write(path + "-wal", bytes(random.Random(2).randrange(256) for _ in range(4096)))
    store = _sqlite(path)
    await store.open()
    assert len(await store.read_outbox(1000)) == 300
    await store.close()


@pytest.mark.parametrize("how", ["truncated", "flipped-pages", "zeroed-tail", "payload-text", "state-text"])
async def test_sqlite_damaged_inside_gives_store_errors_only(tmp_path, how):  # type: ignore[no-untyped-def]
    # SQLite has no page checksums: damage inside a TEXT value reads back as it is.
    path = str(tmp_path / "store.db")
    await _fill_sqlite(path)
    _write(path, _damaged(bytearray(_read(path)), how))
    leaks = await _every_call(path)
    assert not leaks, "non-StoreError exceptions escaped: %r" % [(n, type(e).__name__, str(e)) for n, e in leaks]


def _write(path: str, data: bytes) -> None:
    Path(path).write_bytes(data)


def _damaged(data: bytearray, how: str) -> bytes:
    if how == "truncated":
        data = data[: len(data) // 2 + 100]
    elif how == "flipped-pages":
        rng = random.Random(3)
        for _ in range(64):
            data[rng.randrange(4096, len(data))] ^= 0xFF
    elif how == "zeroed-tail":
        data[len(data) // 3 :] = bytes(len(data) - len(data) // 3)
    else:
        needle = b'{"n":17,' if how == "payload-text" else b'"heat"'
        at = data.find(needle)
        assert at > 0, "cannot find %r in the database file" % needle
        data[at] = ord("#")  # the stored JSON no longer parses
    return bytes(data)


def _read(path: str) -> bytes:
    return Path(path).read_bytes()
