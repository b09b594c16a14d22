"""``SqliteStore``: the store in one SQLite database (CPython only: Raspberry Pi, host).

Opened through aiosqlite, in WAL mode, with an explicit durability setting:
``fsync=True`` -> ``PRAGMA synchronous=FULL`` (a commit is on disk when it
returns), ``False`` -> ``NORMAL`` (a power cut may lose the last commits,
never consistency). Every write is one transaction. The tables and the
functions that run in aiosqlite's worker thread are in
``device.store.sqlite_db``.

``meta.next_seq`` keeps seqs unique across reboots even when every record was
acked and deleted. ``appended``, ``acked``, ``compacted`` and ``inbox_evicted``
are persisted in the same transaction as the rows they count, so they match
the tables after any reopen or crash. ``full_rejections`` and ``write_errors``
count this run only: a write that failed cannot record itself.
``corrupt_skipped`` counts rows of a damaged file that could not be used:
state and inbox rows at open, outbox records when a read meets them (each
once per run; they stay until acked). A file that is not a store, or whose
meta row is damaged, is refused at ``open`` with ``StoreError``.

**Group commit.** ``append`` encodes the payload, takes the next seq, puts
the row in the pending batch and waits. One committer task writes the whole
batch (insert rows, bump meta, commit) in a single call to aiosqlite's
worker thread once the batch is ``group_commit_ms`` old or holds
``max_batch_rows`` rows, then wakes every waiter: a caller learns its seq
only after its commit. While one batch is being written the next one fills.
If the commit fails (SQLITE_FULL, an I/O error) every waiter of that batch
gets ``StoreWriteError``, ``write_errors`` goes up by one and the batch's seqs
are skipped, never reused. A caller cancelled while it waits does not stop
its record: it is committed with the batch. State puts and inbox writes are
transactions of their own, durable when they return.

Each await on aiosqlite is a thread hop (~0.1 ms), so every operation (a
batch, an ack, a fold pass, the whole of ``open``) is one function run in
aiosqlite's worker thread through ``Connection._execute``: aiosqlite has no
public "run this in the worker" call. Only small bookkeeping lives in RAM:
records and bytes per lane, the seq range and the next seq. Use a store from
the event loop that opened it.

Retention (``device.store.retention``): an append that would pass the
high-water mark first folds runs of telemetry, oldest first, down to the
low-water mark, in one transaction: the aggregate is written into the run's
first row (keeping its seq, boot and created_ms) and the other rows are
deleted. Bytes of rows still waiting in a batch count against the budget
(``budget_bytes`` is read at ``open``).

``open(readonly=True)`` (``brickproof store``) writes nothing: no boot is
counted, and a database closed cleanly (no ``-wal`` file) is opened
``immutable`` so SQLite does not even create its shared-memory file.
"""

import asyncio
import os

from device.errors import StoreError, StoreFullError, StoreWriteError
from device.store import retention
from device.store.base import LANES, StateEntry, Store, check_lane, lane_mask
from device.store.sqlite_db import (
    add_inbox,
    delete_seqs,
    drop_inbox,
    fold_oldest,
    insert_rows,
    open_db,
    payload_text,
    put_state,
    read_rows,
    transaction,
)

try:  # CPython only: device.store.open_store imports this module only for a CPython board
    import sqlite3  # type: ignore[import-not-found,unused-ignore]

    import aiosqlite  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    raise ImportError("the sqlite store needs CPython with aiosqlite: MicroPython boards use 'log'") from None

MAX_BATCH_ROWS = 256  # a batch is written at once when it holds this many rows
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_EIO = 5  # errno values (Linux), for StoreWriteError
_ENOSPC = 28
_LANE_INDEX = {LANES[i]: i for i in range(len(LANES))}
_LANE_COUNT = len(LANES)
_ALL_LANES = (1 << _LANE_COUNT) - 1
# What the medium or a damaged file can raise from the worker thread.
_DB_ERRORS = (sqlite3.Error, OSError)


def _write_error(what: str, exc: BaseException) -> StoreWriteError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        number = _ENOSPC
    elif code == _SQLITE_IOERR:
        number = _EIO
    else:
        number = getattr(exc, "errno", 0) or 0
    return StoreWriteError("%s failed: %s" % (what, exc), number)


# -- the store, on the event loop --------------------------------------------------


def _database_target(path: str, readonly: bool) -> str:
    """What to hand ``sqlite3.connect``: the path (its folder made), or a read-only URI."""
    if not readonly:
        parent = path.rpartition("/")[0]
        if parent:
            os.makedirs(parent, exist_ok=True)
        return path
    if not _exists(path):
        raise StoreError("no sqlite store at %r" % path)
    # immutable makes no -shm file; only safe when no -wal holds commits not yet checkpointed.
    flags = "mode=ro" if _exists(path + "-wal") else "immutable=1"
    return "file:%s?%s" % (path.replace("%", "%25").replace("?", "%3f").replace("#", "%23"), flags)


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


class _Batch:
    """Rows waiting for one commit, and the futures of the appends that wrote them."""

    __slots__ = ("opened", "rows", "size", "waiters")

    def __init__(self, opened: float) -> None:
        self.opened = opened  # loop time of its first row
        self.rows: list = []
        self.waiters: list = []
        self.size = 0


class SqliteStore(Store):
    backend = "sqlite"

    def __init__(self, path: str, budget_bytes: int = 262144, fsync: bool = True, group_commit_ms: int = 2) -> None:
        super().__init__(budget_bytes)
        self.path = path
        self.fsync = fsync
        self.group_commit_ms = group_commit_ms
        self.readonly = False
        self.group_commits = 0  # append batches committed (tests and benchmarks read it)
        self.largest_group = 0
        self._db: aiosqlite.Connection | None = None
        self._closing = False
        self._next_seq = 1
        self._lane_records = [0] * len(LANES)
        self._lane_bytes = [0] * len(LANES)
        self._first_seq: int | None = None
        self._last_seq: int | None = None
        # Batches waiting for the committer, oldest first; only the last one may
        # still take rows (until it holds max_batch_rows).
        self._batches: list = []
        self._in_flight = 0  # calls now in aiosqlite's worker thread (see busy)
        self.max_batch_rows = MAX_BATCH_ROWS
        self._held = 0  # payload bytes in the outbox plus those waiting in batches: what the budget counts
        self._high_water = 0  # retention.high_water(budget_bytes), set at open
        self._accepting = False  # open, writable and not closing: append's one check
        self._loop: asyncio.AbstractEventLoop | None = None
        self._committer: asyncio.Task | None = None  # the task writing batches, while there are any
        self._wakeup: asyncio.Event | None = None  # what the committer sleeps on while its batch fills
        self._room: asyncio.Lock | None = None  # one fold at a time (made at open, in the loop that uses it)
        self._damaged: set = set()  # seqs of damaged outbox rows already counted

    # -- lifecycle -------------------------------------------------------------

    async def open(self, readonly: bool = False) -> None:
        if self._db is not None:
            raise StoreError("the sqlite store %r is already open" % self.path)
        if not hasattr(aiosqlite.Connection, "_execute"):
            raise StoreError("this aiosqlite has no Connection._execute: install aiosqlite 0.17 to 0.22")
        try:
            await self._connect(readonly, False)
        except StoreError:
            if readonly:
                raise
            # A full disk cannot create WAL's shared-memory file (SQLITE_IOERR_SHMSIZE):
            # exclusive locking needs none, so the device still gets what its store holds.
            await self._connect(readonly, True)

    async def _connect(self, readonly: bool, exclusive: bool) -> None:
        try:
            target = _database_target(self.path, readonly)
            self._db = await aiosqlite.connect(target, uri=readonly, isolation_level=None)
            loaded = await self._run(open_db, readonly, "FULL" if self.fsync else "NORMAL", exclusive)
            self._loaded(loaded, readonly)
        except _DB_ERRORS as exc:
            await self._drop_connection()
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_FULL:
                # Counting the boot is a write: a disk with no room at all refuses it.
                raise _write_error("opening the sqlite store %r (counting a boot)" % self.path, exc) from None
            raise StoreError("cannot open the sqlite store %r: %s" % (self.path, exc)) from None
        except BaseException:
            await self._drop_connection()
            raise

    def _loaded(self, loaded: dict, readonly: bool) -> None:
        self.readonly = readonly
        self._closing = False
        self._accepting = not readonly
        self._loop = asyncio.get_event_loop()  # the running one: called from a coroutine
        self._room = asyncio.Lock()
        self._damaged = set()
        self._high_water = retention.high_water(self.budget_bytes)
        next_seq, boot_id, appended, acked, compacted, evicted = loaded["meta"]
        self.boot_id = boot_id
        counters = self.counters
        counters["appended"] = appended
        counters["acked"] = acked
        counters["compacted"] = compacted
        counters["inbox_evicted"] = evicted
        counters["corrupt_skipped"] = loaded["corrupt"]
        lanes = loaded["lanes"]
        self._lane_records = lanes[:_LANE_COUNT]
        self._lane_bytes = lanes[_LANE_COUNT:]
        self._held = sum(self._lane_bytes)
        self._first_seq, self._last_seq = loaded["range"]
        last = self._last_seq
        self._next_seq = next_seq if last is None or last < next_seq else last + 1
        self._restore_state(loaded["state"])
        self._restore_inbox(loaded["inbox"])

    async def close(self) -> None:
        if self._db is None or self._closing:
            return
        self._closing = True
        self._accepting = False
        try:
            committer = self._committer
            if committer is not None:
                if self._wakeup is not None:
                    self._wakeup.set()
                await committer
        finally:
            await self._drop_connection()

    async def _drop_connection(self) -> None:
        db = self._db
        self._db = None
        self._accepting = False
        if db is not None:
            try:
                await db.close()  # stops aiosqlite's thread even when closing fails
            except _DB_ERRORS as exc:
                raise StoreError("closing the sqlite store %r failed: %s" % (self.path, exc)) from None

    async def _run(self, work, *args):  # type: ignore[no-untyped-def]
        """``work(connection, *args)`` in aiosqlite's worker thread: a whole operation, one hop."""
        db = self._db
        if db is None:
            raise StoreError("the sqlite store %r is not open" % self.path)
        self._in_flight += 1
        try:
            return await db._execute(work, db._conn, *args)
        finally:
            self._in_flight -= 1

    def busy(self) -> bool:
        """True while a write waits for its group commit or any call is in the worker thread.

        A simulation's ``VirtualClock`` holds simulated time still meanwhile.
        """
        return self._in_flight > 0 or bool(self._batches)

    async def _write(self, what: str, work, *args):  # type: ignore[no-untyped-def]
        """Run a write transaction; a failure of the medium is counted and raised as ``StoreWriteError``."""
        self._writable()
        try:
            return await self._run(transaction, work, *args)
        except _DB_ERRORS as exc:
            self.counters["write_errors"] += 1
            raise _write_error(what, exc) from None

    def _writable(self) -> None:
        if self._db is None or self._closing:
            raise StoreError("the sqlite store %r is not open" % self.path)
        if self.readonly:
            raise StoreError("the store was opened read-only (inspection): it takes no writes")

    # -- state and inbox -------------------------------------------------------

    async def _save_state(self, entry: StateEntry, value_json: bytes) -> None:
        row = (entry.key, value_json.decode(), entry.version, entry.origin, entry.stamp)
        await self._write("saving state %r" % entry.key, put_state, row)

    async def _save_inbox(self, command_id: str, expires_ms: int, evict: str | None) -> None:
        await self._write("saving inbox id %r" % command_id, add_inbox, command_id, expires_ms, evict)

    async def _drop_inbox(self, command_ids: list) -> None:
        await self._write("expiring inbox ids", drop_inbox, command_ids)

    # -- outbox: append and group commit ---------------------------------------

    async def append(self, lane: str, payload: dict, now_ms: int = 0) -> int:
        # The hot path of a busy device (and of the outbox-append benchmark): kept flat.
        lane_index = _LANE_INDEX.get(lane)
        if lane_index is None:
            lane_index = check_lane(lane)  # raises the contract's StoreError
        text, size = payload_text(payload)
        if not self._accepting:
            self._writable()  # raises, saying why
        if self._held + size > self._high_water:
            await self._make_room(lane, size)
        seq = self._next_seq
        self._next_seq = seq + 1
        self._held += size
        loop = self._loop
        batches = self._batches
        if not batches or len(batches[-1].rows) >= self.max_batch_rows:
            batches.append(_Batch(loop.time()))  # type: ignore[union-attr]
            if self._committer is None:
                self._committer = loop.create_task(self._commit_batches())  # type: ignore[union-attr]
        batch = batches[-1]
        rows = batch.rows
        rows.append((seq, lane_index, self.boot_id, now_ms, text, size))
        batch.size += size
        waiter = loop.create_future()  # type: ignore[union-attr]
        batch.waiters.append(waiter)
        if len(rows) >= self.max_batch_rows and self._wakeup is not None:
            self._wakeup.set()  # full: no reason to wait for the window
        await waiter  # raises StoreWriteError when the batch's commit failed
        return seq

    async def _commit_batches(self) -> None:
        """Write batches while there are any: each once it is old or big enough (or the store closes)."""
        loop = self._loop
        window_s = self.group_commit_ms / 1000
        try:
            batches = self._batches
            while batches:
                batch = batches[0]
                delay = batch.opened + window_s - loop.time()  # type: ignore[union-attr]
                if delay > 0 and len(batch.rows) < self.max_batch_rows and not self._closing:
                    wakeup = self._wakeup = asyncio.Event()
                    timer = loop.call_later(delay, wakeup.set)  # type: ignore[union-attr]
                    try:
                        await wakeup.wait()
                    finally:
                        timer.cancel()
                        self._wakeup = None
                del batches[0]  # closed: appends from now on start the next batch
                await self._commit(batch)
        finally:
            self._committer = None

    async def _commit(self, batch: _Batch) -> None:
        rows = batch.rows
        try:
            first, last = await self._run(transaction, insert_rows, rows)
        except BaseException as exc:
            self._held -= batch.size  # the batch's seqs are skipped, never reused
            if isinstance(exc, Exception):
                self.counters["write_errors"] += 1
                for waiter in batch.waiters:
                    if not waiter.done():  # a caller cancelled meanwhile has nothing to hear
                        waiter.set_exception(_write_error("committing %d outbox records" % len(rows), exc))
                return
            for waiter in batch.waiters:
                waiter.cancel()
            raise
        records = self._lane_records
        sizes = self._lane_bytes
        for row in rows:
            records[row[1]] += 1
            sizes[row[1]] += row[5]
        self._first_seq, self._last_seq = first, last
        self.counters["appended"] += len(rows)
        self.group_commits += 1
        if len(rows) > self.largest_group:
            self.largest_group = len(rows)
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- outbox: read and ack ----------------------------------------------------

    async def read_outbox(self, limit: int, after_seq: int = 0, lanes=None) -> list:  # type: ignore[no-untyped-def]
        if self._db is None:
            raise StoreError("the sqlite store %r is not open" % self.path)
        mask = lane_mask(lanes)
        last = self._last_seq
        if limit <= 0 or last is None or after_seq >= last:
            return []  # nothing committed after after_seq: no thread hop
        wanted = None
        if mask != _ALL_LANES:
            wanted = [lane for lane in range(_LANE_COUNT) if mask & (1 << lane) and self._lane_records[lane]]
            if not wanted:
                return []  # the lanes asked for hold nothing: no thread hop
        try:
            records, damaged = await self._run(read_rows, limit, after_seq, wanted)
        except _DB_ERRORS as exc:
            raise StoreError("reading the outbox of %r failed: %s" % (self.path, exc)) from None
        for seq in damaged:
            if seq not in self._damaged:
                self._damaged.add(seq)
                self.counters["corrupt_skipped"] += 1
        return records

    async def ack(self, upto_seq: int) -> int:
        if self._first_seq is None or upto_seq < self._first_seq:
            self._writable()
            return 0
        return await self._delete("acking up to seq %d" % upto_seq, upto_seq, None)

    async def ack_seqs(self, seqs: list) -> int:
        if not seqs or self._first_seq is None:
            self._writable()
            return 0
        return await self._delete("acking %d seqs" % len(seqs), 0, sorted(set(seqs)))

    async def _delete(self, what: str, upto: int, seqs: list | None) -> int:
        count, tally, seq_range = await self._write(what, delete_seqs, upto, seqs)
        records = self._lane_records
        sizes = self._lane_bytes
        for lane in range(_LANE_COUNT):
            records[lane] -= tally[lane]
            sizes[lane] -= tally[_LANE_COUNT + lane]
            self._held -= tally[_LANE_COUNT + lane]
        self._first_seq, self._last_seq = seq_range
        self.counters["acked"] += count
        return count

    # -- retention -----------------------------------------------------------------

    async def _make_room(self, lane: str, size: int) -> None:
        budget = self.budget_bytes
        async with self._room:  # type: ignore[union-attr]
            if retention.over_high_water(self._held, size, budget):
                await self._fold_down(retention.low_water(budget) - size)
            held = self._held
            if held + size > budget:
                self.counters["full_rejections"] += 1
                raise StoreFullError(
                    "outbox full: a %d-byte %s record does not fit in the %d-byte budget "
                    "(%d bytes held after folding telemetry); ack records or raise storage.budget_bytes"
                    % (size, lane, budget, held)
                )

    async def _fold_down(self, target: int) -> int:
        """Fold until the held bytes are <= ``target`` (or nothing folds); the records folded away."""
        need = self._held - target
        if need <= 0 or self._lane_records[retention.TELEMETRY] < 2:
            return 0
        saved, folded, seq_range = await self._write("folding telemetry", fold_oldest, need)
        if folded:
            self._lane_records[retention.TELEMETRY] -= folded
            self._lane_bytes[retention.TELEMETRY] -= saved
            self._held -= saved
            self._first_seq, self._last_seq = seq_range
            self.counters["compacted"] += folded
        return folded

    async def compact(self) -> int:
        self._writable()
        budget = self.budget_bytes
        async with self._room:  # type: ignore[union-attr]
            if not retention.over_high_water(self._held, 0, budget):
                return 0
            return await self._fold_down(retention.low_water(budget))

    # -- inspection ------------------------------------------------------------------

    def depth(self) -> tuple:
        records = self._lane_records
        sizes = self._lane_bytes
        return (records[0] + records[1] + records[2], sizes[0] + sizes[1] + sizes[2])

    def seq_range(self) -> tuple:
        return (self._first_seq, self._last_seq)

    def next_seq(self) -> int:
        return self._next_seq

    def _more_stats(self, out: dict) -> None:
        out["sqlite"] = {
            "path": self.path,
            "synchronous": "FULL" if self.fsync else "NORMAL",
            "group_commit_ms": self.group_commit_ms,
            "group_commits": self.group_commits,
            "largest_group": self.largest_group,
        }
