"""A full medium (ENOSPC): a clear error and a counter, a store that stays consistent, a device that keeps controlling.

* log backend on ``CutFiles`` with a byte capacity (writes tear at the last
  byte that fits, as a real full filesystem does): appends raise
  ``StoreWriteError`` (errno 28) and ``write_errors`` counts each; what was
  confirmed before is intact, in RAM and after a reopen; once space is freed
  the store works again and nothing written meanwhile is lost later.
* both backends on a real, small tmpfs (needs root: mounting is skipped
  loudly without it), so the ENOSPC comes from the kernel.
* the thermostat app on a full medium: ticks continue, the heater still
  switches, store errors show in its health and summary; after a reboot onto
  a full medium the device still boots and controls.
"""

import errno
import os
import random
import subprocess
from pathlib import Path

import pytest

from device.errors import StoreWriteError
from device.store.fileio import Files
from tests.store.cutfiles import CutFiles
from tests.store.ledger import Ledger, check
from tests.store.workload import Workload

LOG_PARAMS = {
    "budget_bytes": 4096,
    "fsync": True,
    "segment_bytes": 512,
    "erase_block_bytes": 512,
    "erase_cycles": 100000,
}


def make_log(files, **over):  # type: ignore[no-untyped-def]
    from device.store.log import LogStore

    params = dict(LOG_PARAMS)
    params.update(over)
    return LogStore(files, **params)


async def test_log_append_on_a_full_medium_raises_counts_and_recovers():
    files = CutFiles()
    store = make_log(files)
    await store.open()
    confirmed = [await store.append("event", {"n": i, "pad": "e" * 30}, i) for i in range(10)]
    before = await store.read_outbox(100)
    files.capacity = files.used_bytes() + 100  # a record or two more, then full
    refused = 0
    for i in range(10, 40):
        try:
            confirmed.append(await store.append("event", {"n": i, "pad": "e" * 30}, i))
        except StoreWriteError as exc:
            refused += 1
            assert exc.errno == errno.ENOSPC, exc.errno
            assert "28" in str(exc) or "space" in str(exc).lower(), str(exc)
    assert refused >= 25
    assert store.counters["write_errors"] == refused
    # What was confirmed is all there, in order; nothing refused slipped in.
    records = await store.read_outbox(1000)
    assert [r.seq for r in records] == confirmed
    assert records[: len(before)] == before
    assert store.depth()[0] == len(confirmed)
    with pytest.raises(StoreWriteError):
        await store.put_state("k", 1)
    assert await store.get_state("k") is None
    assert store.counters["write_errors"] == refused + 1
    # Space freed: appends and puts work again, above every seq handed out.
    files.capacity = None
    seq = await store.append("event", {"n": "after"}, 99)
    assert seq > confirmed[-1]
    confirmed.append(seq)
    await store.put_state("k", 2)
    await store.close()
    # A reopen finds every confirmed record: the torn bytes a refused write left did not hide later ones.
    again = make_log(files)
    await again.open()
    assert [r.seq for r in await again.read_outbox(1000)] == confirmed
    assert (await again.get_state("k")).value == 2
    assert again.next_seq() > seq
    await again.close()


@pytest.mark.parametrize("partial", [True, False], ids=["torn-writes", "all-or-nothing"])
async def test_log_random_workload_with_the_medium_filling_and_freeing(partial):  # type: ignore[no-untyped-def]
    """Seeded workloads; the medium fills up and frees again every few steps. Promises hold throughout."""
    problems: list = []
    errors_seen = 0
    for seed in range(40):
        rng = random.Random(seed)
        files = CutFiles(partial_enospc=partial)
        workload = Workload(make_log, Ledger(), random.Random(seed))
        workload.tolerate_write_errors = True
        await workload.open(files)
        for _ in range(6):
            await workload.run(rng.randrange(5, 20))
            files.capacity = files.used_bytes() + rng.randrange(0, 200)
            await workload.run(rng.randrange(5, 30))
            # In-process: what the live store says must match its promises too.
            problems.extend(
                "seed %d (full, live): %s" % (seed, p)
                for p in await check(workload.store, workload.ledger, fresh=False)
            )
            # Every refusal counted once (since this open: on a full medium a reboot may lose the count).
            counted = workload.store.counters["write_errors"] - workload.session_base
            if counted != workload.session_errors:
                problems.append(
                    "seed %d: %d StoreWriteErrors raised since open, write_errors rose by %d"
                    % (seed, workload.session_errors, counted)
                )
            files.capacity = None
        errors_seen += workload.write_errors
        await workload.close()
        store = make_log(files)
        await store.open()
        problems.extend("seed %d (reopened): %s" % (seed, p) for p in await check(store, workload.ledger))
        await store.close()
        if len(problems) > 20:
            break
    assert errors_seen > 100, "the medium hardly ever filled up: the test tested little"
    assert not problems, "\n".join(problems[:20])


async def test_log_open_on_a_full_medium_still_gives_a_working_store():
    """A device rebooting with its flash full must come up (and keep its records), not fail to boot."""
    files = CutFiles()
    store = make_log(files)
    await store.open()
    seqs = [await store.append("event", {"n": i}, i) for i in range(5)]
    await store.put_state("mode", "heat")
    await store.close()
    files.capacity = files.used_bytes()
    again = make_log(files)
    await again.open()
    assert [r.seq for r in await again.read_outbox(100)] == seqs
    assert (await again.get_state("mode")).value == "heat"
    with pytest.raises(StoreWriteError):
        await again.append("event", {"n": "full"}, 9)
    files.capacity = None
    assert await again.append("event", {"n": "room"}, 10) > seqs[-1]
    await again.close()


async def test_sqlite_full_database_refuses_counts_and_recovers(tmp_path):  # type: ignore[no-untyped-def]
    """SQLITE_FULL without root: a page limit on the store's own connection (private hook, no public one)."""
    from device.store.sqlite import SqliteStore

    path = str(tmp_path / "store.db")
    store = SqliteStore(path, budget_bytes=1 << 22, fsync=True)
    await store.open()
    confirmed = [await store.append("event", {"n": i, "pad": "q" * 200}, i) for i in range(20)]

    def limit(db, extra: int) -> None:  # type: ignore[no-untyped-def]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute("PRAGMA max_page_count = %d" % (pages + extra))

    await store._run(limit, 2)
    more, error = await _fill_until_refused(store, 2000)
    confirmed += more
    assert error is not None and error.errno == errno.ENOSPC, error
    refused = 1
    for i in range(3):
        with pytest.raises(StoreWriteError):
            await store.append("event", {"still": i, "pad": "q" * 4000}, i)
        refused += 1
    assert store.counters["write_errors"] == refused
    assert [r.seq for r in await store.read_outbox(100000)] == confirmed
    await store._run(limit, 1000)
    seq = await store.append("event", {"n": "after"}, 1)
    assert seq > confirmed[-1]
    confirmed.append(seq)
    await store.close()
    again = SqliteStore(path, budget_bytes=1 << 22, fsync=True)
    await again.open()
    assert [r.seq for r in await again.read_outbox(100000)] == confirmed
    await again.close()


# -- a real full filesystem ------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):  # type: ignore[no-untyped-def]
    """An 8 MiB tmpfs at tmp_path/disk (``_fill`` takes what a test does not want free)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.skip("real ENOSPC NOT RUN: cannot mount a small tmpfs (%s)" % result.stderr.strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def _fill(mount: Path, leave: int = 96 * 1024) -> Path:
    """Take the disk with a file, leaving ``leave`` bytes free (SQLite needs 32 KiB for its -shm file alone)."""
    filler = mount / "filler"
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def _disk_store(mount: Path, backend: str):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        from device.store.sqlite import SqliteStore

        return SqliteStore(str(mount / "store.db"), budget_bytes=1 << 20, fsync=True)
    return make_log(Files(str(mount / "log")), budget_bytes=1 << 20, segment_bytes=4096, erase_block_bytes=4096)


async def _fill_until_refused(store, limit: int = 5000) -> tuple:  # type: ignore[no-untyped-def]
    confirmed = []
    error = None
    for i in range(limit):
        try:
            confirmed.append(await store.append("event", {"n": i, "pad": "z" * 80}, i))
        except StoreWriteError as exc:
            error = exc
            break
    return confirmed, error


@pytest.mark.parametrize("backend", ["sqlite", "log"])
async def test_real_enospc_on_a_small_tmpfs(small_disk, backend):  # type: ignore[no-untyped-def]
    filler = _fill(small_disk)
    store = _disk_store(small_disk, backend)
    await store.open()
    confirmed, error = await _fill_until_refused(store)
    assert error is not None, "96 KiB took %d records without ENOSPC" % len(confirmed)
    assert error.errno == errno.ENOSPC, (error.errno, str(error))
    assert store.counters["write_errors"] >= 1
    again_refused = 0
    for i in range(3):
        try:
            confirmed.append(await store.append("event", {"again": i}, i))
        except StoreWriteError:
            again_refused += 1
    assert store.counters["write_errors"] >= 1 + again_refused
    read = [r.seq for r in await store.read_outbox(100000)]
    assert read == confirmed, "live store lost or invented records after ENOSPC"
    filler.unlink()  # space freed
    seq = await store.append("event", {"n": "after"}, 1)
    assert seq > max(confirmed)
    confirmed.append(seq)
    await store.close()
    reopened = _disk_store(small_disk, backend)
    await reopened.open()
    assert [r.seq for r in await reopened.read_outbox(100000)] == confirmed
    await reopened.close()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "sqlite",
            marks=pytest.mark.xfail(
                strict=True,
                raises=StoreWriteError,
                reason="known gap: SqliteStore counts a boot in the database at open, which a disk with no "
                "room refuses (StoreWriteError ENOSPC); the log backend counts boots with empty files",
            ),
        ),
        "log",
    ],
)
async def test_a_store_on_a_full_disk_still_opens_and_serves_what_it_holds(small_disk, backend):  # type: ignore[no-untyped-def]
    """A device rebooting onto a full disk: its store opens, reads work, writes say ENOSPC, and recover."""
    store = _disk_store(small_disk, backend)
    await store.open()
    seqs = [await store.append("event", {"n": i}, i) for i in range(50)]
    await store.put_state("mode", "heat")
    await store.close()
    filler = _fill(small_disk, leave=0)
    store = _disk_store(small_disk, backend)
    await store.open()
    try:
        assert [r.seq for r in await store.read_outbox(1000)] == seqs
        assert (await store.get_state("mode")).value == "heat"
        # The last block of a file may still have room: the disk refuses the first write that needs a new one.
        more, error = await _fill_until_refused(store, 500)
        assert error is not None and error.errno == errno.ENOSPC, error
        seqs += more
        filler.unlink()
        assert await store.append("event", {"n": "room"}, 100) > seqs[-1]
    finally:
        await store.close()


# -- the device keeps controlling --------------------------------------------------

HOUR_MS = 3600000


def _thermostat_device(store):  # type: ignore[no-untyped-def]
    from device import config
    from device.boot import Device, build_env

    board, _ = config.load(str(Path(__file__).resolve().parents[2] / "boards" / "host_sim.json"), ["thermostat"])
    settings = config.configure_apps(board, ["thermostat"])
    env, world = build_env(board)
    env.store = store
    return Device(env, settings, world), env


async def test_thermostat_keeps_controlling_on_a_full_log_medium():
    files = CutFiles()
    store = make_log(files)
    device, env = _thermostat_device(store)
    await device.start()
    await env.clock.advance(HOUR_MS)
    app = device.apps[0]
    ticks_before, switches_before = app.ticks, app.heater_watch.switches
    assert app.store_errors == 0
    files.capacity = files.used_bytes()  # the flash is full from here on
    await env.clock.advance(6 * HOUR_MS)
    assert app.ticks - ticks_before >= 6 * 3600 * 1000 // app.settings["tick_ms"] - 1
    assert app.heater_watch.switches > switches_before, "the heater stopped switching"
    assert app.store_errors > 0
    assert store.counters["write_errors"] > 0
    assert device.status()["thermostat"]["health"] == "degraded:store"
    assert device.summary()["thermostat"]["store_errors"] == app.store_errors
    # Space comes back: telemetry is recorded again.
    files.capacity = None
    appended, errors = store.counters["appended"], app.store_errors
    await env.clock.advance(HOUR_MS)
    assert store.counters["appended"] > appended
    assert app.store_errors == errors
    await device.stop()


async def test_thermostat_boots_and_controls_when_the_flash_was_full_before_the_reboot():
    files = CutFiles()
    store = make_log(files)
    device, env = _thermostat_device(store)
    await device.start()
    await env.clock.advance(HOUR_MS)
    await device.stop()
    files.capacity = files.used_bytes()
    device2, env2 = _thermostat_device(make_log(files))
    await device2.start()
    await env2.clock.advance(2 * HOUR_MS)
    app = device2.apps[0]
    assert app.ticks >= 2 * 3600 * 1000 // app.settings["tick_ms"]
    assert app.heater_watch.switches > 0
    assert app.store_errors > 0
    await device2.stop()
