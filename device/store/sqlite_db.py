"""The sqlite store's side in aiosqlite's worker thread: schema, and one function per transaction.

CPython only, like ``device.store.sqlite`` (the store on the event loop,
which runs these through one thread hop each). Every function takes the
``sqlite3.Connection`` first; the connection is in autocommit mode, so
``transaction`` brackets the writes with BEGIN IMMEDIATE / COMMIT.

Tables::

    meta    one row: next_seq, boot_id, and the counters that change with the rows
    outbox  seq INTEGER PRIMARY KEY, lane (index in LANES), boot, created_ms, payload (JSON text), size
    state   key PRIMARY KEY, value (JSON text), version, origin, stamp
    inbox   id PRIMARY KEY, expires_ms

A damaged file can hold anything in any column (SQLite has no page
checksums): rows read back are checked, and what does not make sense (an
unknown lane, a payload that is not a JSON object, a state value that does
not parse) is skipped and reported, never passed on.
"""

import json

from device.errors import StoreError
from device.store import retention
from device.store.base import LANES, ORIGINS, Record, StateEntry, encode_payload

try:  # CPython only: device.store.open_store imports the sqlite store only for a CPython board
    import sqlite3  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    raise ImportError("the sqlite store needs CPython (sqlite3): MicroPython boards use 'log'") from None

SCHEMA_VERSION = 1
SCAN_ROWS = 1024  # retention reads the outbox's (seq, lane) this many rows at a time
IN_CHUNK = 500  # seqs per `IN (...)` list (SQLite allows 32766 parameters)

_SCHEMA = (
    "CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 0), next_seq INTEGER NOT NULL,"
    " boot_id INTEGER NOT NULL, appended INTEGER NOT NULL, acked INTEGER NOT NULL,"
    " compacted INTEGER NOT NULL, inbox_evicted INTEGER NOT NULL)",
    "INSERT INTO meta VALUES (0, 1, 0, 0, 0, 0, 0)",
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, lane INTEGER NOT NULL, boot INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, payload TEXT NOT NULL, size INTEGER NOT NULL)",
    "CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL,"
    " origin TEXT NOT NULL, stamp INTEGER NOT NULL)",
    "CREATE TABLE inbox (id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL)",
)
_INSERT_ROW = "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?)"
_SELECT_ROWS = "SELECT seq, lane, boot, created_ms, payload, size FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?"
_SELECT_LANE_ROWS = (
    "SELECT seq, lane, boot, created_ms, payload, size FROM outbox WHERE seq > ? AND lane IN (%s) ORDER BY seq LIMIT ?"
)
_LANE_COUNT = len(LANES)


def compact_json_encoder():  # type: ignore[no-untyped-def]
    """A function giving the contract's compact JSON text (``base.encode_json``, before UTF-8).

    ``json.dumps`` with options builds a new encoder on every call: ~3 us of a
    ~5 us append. CPython's C encoder, made once, does the same in ~1.7 us. It
    is made without circular-reference markers (state the event loop and the
    worker thread would share): a payload that contains itself then ends in
    ``RecursionError`` rather than ``ValueError``, and is refused all the same.
    """
    module = getattr(json, "encoder", None)
    make = getattr(module, "c_make_encoder", None)
    if make is not None:

        def refuse(value):  # type: ignore[no-untyped-def]
            raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)

        try:
            chunks = make(None, refuse, module.encode_basestring, None, ":", ",", False, False, False)  # type: ignore[union-attr]
        except TypeError:
            chunks = None  # another signature: take the portable way below
        if chunks is not None:
            return lambda value: "".join(chunks(value, 0))
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


_ENCODE = compact_json_encoder()


def payload_text(payload) -> tuple:  # type: ignore[no-untyped-def]
    """``(json_text, utf8_size)`` of an outbox payload, exactly as ``encode_payload`` would give it."""
    if not isinstance(payload, dict):
        encode_payload(payload)  # raises the contract's StoreError
    try:
        text = _ENCODE(payload)
    except (TypeError, ValueError, RecursionError):
        encode_payload(payload)  # raises the contract's StoreError, naming the problem
        raise
    return text, len(text) if text.isascii() else len(text.encode())


def _decoded(text):  # type: ignore[no-untyped-def]
    """A stored payload as a dict, or None when the stored text is not a JSON object."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _state_entry(key, text, version, origin, stamp):  # type: ignore[no-untyped-def]
    """The ``StateEntry`` a state row holds, or None when the row is damaged."""
    if not (isinstance(key, str) and isinstance(text, str) and isinstance(version, int) and isinstance(stamp, int)):
        return None
    if origin not in ORIGINS:
        return None
    try:
        value = json.loads(text)  # any JSON, null included
    except ValueError:
        return None
    return StateEntry(key, value, version, origin, stamp)


def _known_lane(lane) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(lane, int) and 0 <= lane < _LANE_COUNT


# -- transactions ---------------------------------------------------------------------


def transaction(db, work, *args):  # type: ignore[no-untyped-def]
    """``work(db, *args)`` between BEGIN IMMEDIATE and COMMIT; rolled back if anything fails."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db, *args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLITE_FULL and I/O errors may have rolled back already
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection gives the transaction up anyway
        raise
    return result


def seq_range(db) -> tuple:  # type: ignore[no-untyped-def]
    # Two subqueries: SQLite answers a lone min() or max() from the index, but min(), max() together by a scan.
    return db.execute("SELECT (SELECT min(seq) FROM outbox), (SELECT max(seq) FROM outbox)").fetchone()


def _create_schema(db) -> None:  # type: ignore[no-untyped-def]
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)


def _count_boot(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("UPDATE meta SET boot_id = boot_id + 1")


def open_db(db, readonly: bool, synchronous: str, exclusive: bool = False) -> dict:  # type: ignore[no-untyped-def]
    """Set the connection up, create or check the schema, count a boot; read what RAM keeps.

    ``exclusive``: WAL without the shared-memory ``-shm`` file (one connection only),
    the fallback when the disk is too full to create that file.
    """
    if exclusive:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
    if not readonly:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError("the database refused WAL mode (journal_mode is %r)" % (mode,))
    db.execute("PRAGMA synchronous = " + synchronous)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError("the store has schema version %d; this runtime knows up to %d" % (version, SCHEMA_VERSION))
    if version == 0:
        if db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError("the database holds other tables: it is not a brickproof store")
        if readonly:
            raise StoreError("the database is empty: this device has not run here yet")
        transaction(db, _create_schema)
    # Later schema versions migrate here, one step at a time.
    if not readonly:
        transaction(db, _count_boot)
    meta = db.execute("SELECT next_seq, boot_id, appended, acked, compacted, inbox_evicted FROM meta").fetchone()
    if meta is None or not all(isinstance(x, int) for x in meta):
        raise StoreError("the store's meta row is damaged (%r): seqs could repeat, so it is not used" % (meta,))
    corrupt = 0
    state = []
    for row in db.execute("SELECT key, value, version, origin, stamp FROM state"):
        entry = _state_entry(*row)
        if entry is None:
            corrupt += 1
        else:
            state.append(entry)
    inbox = []
    for command_id, expires_ms in db.execute("SELECT id, expires_ms FROM inbox"):
        if isinstance(command_id, str) and isinstance(expires_ms, int):
            inbox.append((command_id, expires_ms))
        else:
            corrupt += 1
    lanes = [0] * (2 * _LANE_COUNT)  # records and bytes per lane
    for lane, records, size in db.execute("SELECT lane, count(*), total(size) FROM outbox GROUP BY lane"):
        if _known_lane(lane):  # rows of an unknown lane are reported when a read meets them
            lanes[lane] = records
            lanes[_LANE_COUNT + lane] = int(size)
    return {"meta": meta, "lanes": lanes, "range": seq_range(db), "state": state, "inbox": inbox, "corrupt": corrupt}


# -- outbox -----------------------------------------------------------------------------


def insert_rows(db, rows: list) -> tuple:  # type: ignore[no-untyped-def]
    """One group commit's rows (seq, lane, boot, created_ms, payload, size); returns the seq range after."""
    db.executemany(_INSERT_ROW, rows)
    db.execute("UPDATE meta SET next_seq = max(next_seq, ?), appended = appended + ?", (rows[-1][0] + 1, len(rows)))
    return seq_range(db)


def read_rows(db, limit: int, after_seq: int, lanes=None) -> tuple:  # type: ignore[no-untyped-def]
    """``(records, damaged seqs)``: up to ``limit`` good records after ``after_seq``, reading past damaged rows.

    ``lanes``: lane indexes to read (None: all). The query walks the primary key
    from ``after_seq`` on (acked rows are deleted, so none is walked) and skips
    rows of other lanes as it goes.
    """
    records: list = []
    damaged: list = []
    if lanes is None:
        sql = _SELECT_ROWS
        extra: tuple = ()
    else:
        sql = _SELECT_LANE_ROWS % ",".join("?" * len(lanes))
        extra = tuple(lanes)
    while len(records) < limit:
        want = limit - len(records)
        rows = db.execute(sql, (after_seq,) + extra + (want,)).fetchall()
        good = len(records)
        for seq, lane, boot, created_ms, text, size in rows:
            payload = _decoded(text)
            if payload is None or not _known_lane(lane):
                damaged.append(seq)
            else:
                records.append(Record(seq, LANES[lane], boot, created_ms, payload, size))
        if len(rows) < want or len(records) - good == len(rows):
            break  # the outbox ends here, or the page was whole
        after_seq = rows[-1][0]
    return records, damaged


def _tally(removed: list) -> list:
    """Records and bytes per lane of the removed ``(lane, size)`` rows (damaged rows were never counted)."""
    tally = [0] * (2 * _LANE_COUNT)
    for lane, size in removed:
        if _known_lane(lane) and isinstance(size, int):
            tally[lane] += 1
            tally[_LANE_COUNT + lane] += size
    return tally


def delete_seqs(db, upto: int, seqs) -> tuple:  # type: ignore[no-untyped-def]
    """Delete ``seq <= upto`` (``seqs`` None) or the listed seqs: ``(count, tally, range)``."""
    if seqs is None:
        removed = db.execute("DELETE FROM outbox WHERE seq <= ? RETURNING lane, size", (upto,)).fetchall()
    else:
        removed = []
        for i in range(0, len(seqs), IN_CHUNK):
            chunk = seqs[i : i + IN_CHUNK]
            sql = "DELETE FROM outbox WHERE seq IN (%s) RETURNING lane, size" % ",".join("?" * len(chunk))
            removed += db.execute(sql, chunk).fetchall()
    if removed:
        db.execute("UPDATE meta SET acked = acked + ?", (len(removed),))
    return len(removed), _tally(removed), seq_range(db)


def _fold_run(db, first: int, last: int) -> tuple:  # type: ignore[no-untyped-def]
    """Fold the telemetry rows ``first..last`` into the first one: ``(bytes saved, rows gone)``, or (0, 0)."""
    records = []
    for seq, boot, created_ms, text, size in db.execute(
        "SELECT seq, boot, created_ms, payload, size FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq",
        (first, last),
    ):
        payload = _decoded(text)
        if payload is None or not isinstance(size, int):
            return 0, 0  # a damaged row: leave the run as it is
        records.append(Record(seq, "telemetry", boot, created_ms, payload, size))
    run_bytes = sum(r.size for r in records)
    text, size = payload_text(retention.fold(records))
    if not retention.worth_folding(run_bytes, size):
        return 0, 0
    db.execute("UPDATE outbox SET payload = ?, size = ? WHERE seq = ?", (text, size, first))
    db.execute("DELETE FROM outbox WHERE seq > ? AND seq <= ?", (first, last))
    return run_bytes - size, len(records) - 1


def fold_oldest(db, need: int) -> tuple:  # type: ignore[no-untyped-def]
    """Fold telemetry runs oldest first until ``need`` bytes are saved or nothing folds.

    Returns ``(bytes saved, records folded away, range)``. A pass that folded
    something is followed by another from the oldest row: aggregates fold again.
    """
    saved = folded = 0
    progress = True
    while saved < need and progress:
        progress = False
        after = 0
        while saved < need:
            scan = db.execute(
                "SELECT seq, lane FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (after, SCAN_ROWS)
            ).fetchall()
            if not scan:
                break
            lanes = [lane for _, lane in scan]
            after = scan[-1][0]
            start = 0
            while saved < need:
                i, j = retention.find_run(lanes, start)
                if i < 0:
                    break
                if j == len(scan) == SCAN_ROWS and j - i < retention.FOLD_GROUP and i > 0:
                    after = scan[i][0] - 1  # the run may go on past this scan: start the next one with it
                    break
                gained, gone = _fold_run(db, scan[i][0], scan[j - 1][0])
                if gone:
                    saved += gained
                    folded += gone
                    progress = True
                start = j
    if folded:
        db.execute("UPDATE meta SET compacted = compacted + ?", (folded,))
    return saved, folded, seq_range(db)


# -- state and inbox ---------------------------------------------------------------------


def put_state(db, row: tuple) -> None:  # type: ignore[no-untyped-def]
    db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", row)


def add_inbox(db, command_id: str, expires_ms: int, evict) -> None:  # type: ignore[no-untyped-def]
    db.execute("INSERT OR REPLACE INTO inbox VALUES (?, ?)", (command_id, expires_ms))
    if evict is not None:
        db.execute("DELETE FROM inbox WHERE id = ?", (evict,))
        db.execute("UPDATE meta SET inbox_evicted = inbox_evicted + 1")


def drop_inbox(db, command_ids: list) -> None:  # type: ignore[no-untyped-def]
    db.executemany("DELETE FROM inbox WHERE id = ?", [(cid,) for cid in command_ids])
