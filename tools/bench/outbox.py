"""``outbox-append`` and ``outbox-ack``: what the durable outbox costs, beside raw ``sqlite3``.

``outbox-append``: 20,000 records of 100 bytes (compact JSON) appended durably
(``fsync`` on: sqlite ``synchronous=FULL``) by 256 concurrent producer tasks,
so the sqlite backend's group commit can share transactions; the same through
the ``log`` backend. Beside them, raw ``sqlite3`` (WAL, FULL) encodes the same
payloads (with the same JSON encoder) and inserts the same rows in batches of
100, one commit per batch; and again with the payloads encoded beforehand
(``sqlite_vs_raw_preencoded``: the store against bare inserts). Ratio: sqlite
backend / raw batched (the issue's goal: >= 0.5).

``outbox-ack``: the drain after an outage. An outbox filled with 20,000
records is read oldest first 100 at a time and each page acked, until empty;
raw ``sqlite3`` does the same with SELECT (decoding the payloads) + DELETE +
commit. Ratio: sqlite backend / raw.

Figures are records per second, medians of ``--runs`` (default 3); the
measurements take turns within each run, and a ratio is the median of the
per-run ratios, so load that drifts hits both sides alike. Temp directories
are removed afterwards. Every run writes real files with fsync: the
machine's disk (and its other load) decides the absolute numbers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import IO, Any

from device.store import Store, open_store
from device.store.sqlite_db import compact_json_encoder

RECORDS = 20000
PRODUCERS = 256
RAW_BATCH = 100
READ_PAGE = 100
PAYLOAD_BYTES = 100
BUDGET_BYTES = 1 << 30  # far above what a run holds: no retention folding in these figures
GROUP_COMMIT_MS = 2  # the host boards' setting

# The raw baseline encodes with the sqlite backend's own encoder (CPython's C JSON
# encoder made once): both pay the same for JSON, so the ratio measures the store.
_ENCODE: Callable[[Any], str] = compact_json_encoder()  # type: ignore[no-untyped-call]
_SCHEMA = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, lane INTEGER NOT NULL, boot INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, payload TEXT NOT NULL, size INTEGER NOT NULL)"
)


def payloads(count: int) -> list[dict[str, Any]]:
    """``count`` telemetry payloads whose compact JSON is exactly ``PAYLOAD_BYTES`` bytes."""
    out = []
    for i in range(count):
        p: dict[str, Any] = {"temp_c": 20 + (i % 50) / 10, "heat": i % 3 == 0, "mode": "heat", "id": "%08d" % i}
        p["pad"] = ""
        p["pad"] = "x" * (PAYLOAD_BYTES - len(_ENCODE(p)))
        out.append(p)
    assert all(len(_ENCODE(p)) == PAYLOAD_BYTES for p in out[:10])
    return out


# -- the backends ----------------------------------------------------------------


def backends() -> dict[str, dict[str, Any] | str]:
    """Storage sections to measure, or why a backend is skipped."""
    out: dict[str, dict[str, Any] | str] = {
        "sqlite": {"backend": "sqlite", "fsync": True, "group_commit_ms": GROUP_COMMIT_MS},
    }
    if importlib.util.find_spec("device.store.log") is None:  # a tree without it is measured without it
        out["log"] = "device/store/log.py is not there yet"
    else:
        out["log"] = {"backend": "log", "fsync": True}
    return out


async def _open(storage: dict[str, Any], root: str) -> Store:
    path = os.path.join(root, "store.sqlite" if storage["backend"] == "sqlite" else "store")
    store = open_store(dict(storage, path=path, budget_bytes=BUDGET_BYTES))
    await store.open()
    return store


async def _append_all(store: Store, records: list[dict[str, Any]], producers: int) -> None:
    """Append every record from ``producers`` tasks (interleaved, as a device's tasks would)."""

    async def produce(k: int) -> None:
        for i in range(k, len(records), producers):
            await store.append("telemetry", records[i], i)

    await asyncio.gather(*[produce(k) for k in range(producers)])


async def _store_append(storage: dict[str, Any], records: list[dict[str, Any]], root: str) -> tuple[float, int]:
    """``(records/s, commits)``; commits is 0 for a backend that does not count them."""
    store = await _open(storage, root)
    try:
        started = time.perf_counter()
        await _append_all(store, records, PRODUCERS)
        elapsed = time.perf_counter() - started
        assert store.depth()[0] == len(records)
        return len(records) / elapsed, getattr(store, "group_commits", 0)
    finally:
        await store.close()


async def _store_drain(storage: dict[str, Any], records: list[dict[str, Any]], root: str) -> tuple[float, int]:
    store = await _open(storage, root)
    try:
        await _append_all(store, records, PRODUCERS)
        drained = 0
        started = time.perf_counter()
        while True:
            page = await store.read_outbox(READ_PAGE)
            if not page:
                break
            drained += await store.ack(page[-1].seq)
        elapsed = time.perf_counter() - started
        assert drained == len(records) and store.depth() == (0, 0)
        return drained / elapsed, 0
    finally:
        await store.close()


# -- raw sqlite3, the baseline ----------------------------------------------------


def _raw_db(root: str) -> sqlite3.Connection:
    db = sqlite3.connect(os.path.join(root, "raw.sqlite"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute(_SCHEMA)
    return db


def _raw_insert(db: sqlite3.Connection, records: list[dict[str, Any]], encoded: list[str] | None) -> float:
    """Insert every record in batches of ``RAW_BATCH``, one commit each; records/s."""
    started = time.perf_counter()
    for start in range(0, len(records), RAW_BATCH):
        rows = []
        for seq in range(start + 1, min(start + RAW_BATCH, len(records)) + 1):
            text = encoded[seq - 1] if encoded is not None else _ENCODE(records[seq - 1])
            rows.append((seq, 0, 1, seq - 1, text, len(text)))
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    return len(records) / (time.perf_counter() - started)


def raw_append(records: list[dict[str, Any]], root: str, pre_encoded: bool) -> float:
    db = _raw_db(root)
    try:
        return _raw_insert(db, records, [_ENCODE(p) for p in records] if pre_encoded else None)
    finally:
        db.close()


def raw_drain(records: list[dict[str, Any]], root: str) -> float:
    db = _raw_db(root)
    try:
        _raw_insert(db, records, None)
        drained = 0
        started = time.perf_counter()
        while True:
            rows = db.execute(
                "SELECT seq, lane, boot, created_ms, payload, size FROM outbox ORDER BY seq LIMIT ?", (READ_PAGE,)
            ).fetchall()
            if not rows:
                break
            decoded = [(seq, lane, boot, ms, json.loads(text), size) for seq, lane, boot, ms, text, size in rows]
            db.execute("BEGIN IMMEDIATE")
            drained += db.execute("DELETE FROM outbox WHERE seq <= ?", (decoded[-1][0],)).rowcount
            db.execute("COMMIT")
        elapsed = time.perf_counter() - started
        assert drained == len(records)
        return drained / elapsed
    finally:
        db.close()


# -- running ----------------------------------------------------------------------


def _interleaved(
    runs: int, measures: dict[str, Callable[[str], float]], label: str, progress: IO[str] | None
) -> dict[str, list[float]]:
    """Each measure once per run, in turn, each in a fresh temp dir: load that drifts hits all alike."""
    values: dict[str, list[float]] = {name: [] for name in measures}
    for i in range(runs):
        if progress:
            progress.write("%s: run %d/%d (%s)...\n" % (label, i + 1, runs, ", ".join(measures)))
        for name, measure in measures.items():
            with tempfile.TemporaryDirectory(prefix="brickproof-bench-") as root:
                values[name].append(measure(root))
    return values


def _summary(values: dict[str, list[float]], figures: dict[str, Any], baseline: str) -> float:
    """Medians into ``figures``; returns the median over runs of sqlite / ``baseline`` (same run)."""
    for name, rates in values.items():
        figures[name + "_records_per_s"] = round(statistics.median(rates))
    ratios = [a / b for a, b in zip(values["sqlite"], values[baseline], strict=True)]
    return round(statistics.median(ratios), 3)


def _store_measures(
    records: list[dict[str, Any]], figures: dict[str, Any], work: Callable[..., Any]
) -> dict[str, Callable[[str], float]]:
    measures: dict[str, Callable[[str], float]] = {}
    for name, storage in backends().items():
        if isinstance(storage, str):
            figures[name + "_skipped"] = storage
            continue

        def measure(root: str, storage: dict[str, Any] = storage, name: str = name) -> float:
            rate, commits = asyncio.run(work(storage, records, root))
            if commits:
                figures[name + "_records_per_commit"] = round(len(records) / commits)
            return float(rate)

        measures[name] = measure
    return measures


def run_append(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    runs = runs or 3
    records = payloads(RECORDS)
    figures: dict[str, Any] = {"records": RECORDS, "payload_bytes": PAYLOAD_BYTES, "producers": PRODUCERS, "runs": runs}
    measures = _store_measures(records, figures, _store_append)
    measures["raw_sqlite3_batched"] = lambda root: raw_append(records, root, False)
    measures["raw_sqlite3_batched_preencoded"] = lambda root: raw_append(records, root, True)
    values = _interleaved(runs, measures, "outbox-append", progress)
    ratio = _summary(values, figures, "raw_sqlite3_batched")
    pre = [a / b for a, b in zip(values["sqlite"], values["raw_sqlite3_batched_preencoded"], strict=True)]
    figures["sqlite_vs_raw_preencoded"] = round(statistics.median(pre), 3)
    return {"name": "outbox-append", "figures": figures, "ratio": ratio}


def run_ack(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    runs = runs or 3
    records = payloads(RECORDS)
    figures: dict[str, Any] = {"records": RECORDS, "page": READ_PAGE, "runs": runs}
    measures = _store_measures(records, figures, _store_drain)
    measures["raw_sqlite3"] = lambda root: raw_drain(records, root)
    values = _interleaved(runs, measures, "outbox-ack", progress)
    return {"name": "outbox-ack", "figures": figures, "ratio": _summary(values, figures, "raw_sqlite3")}


class _Benchmark:
    """One registry entry (``tools.bench.BENCHMARKS``): ``NAME``, ``SUMMARY``, ``run(runs, progress)``."""

    def __init__(self, name: str, summary: str, run: Callable[[int | None, IO[str] | None], dict[str, Any]]) -> None:
        self.NAME = name
        self.SUMMARY = summary
        self._run = run

    def run(self, runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
        return self._run(runs, progress)


APPEND = _Benchmark(
    "outbox-append",
    "durable appends/s of 100-byte records per backend vs raw sqlite3 batches of 100 (ratio: sqlite/raw)",
    run_append,
)
ACK = _Benchmark(
    "outbox-ack",
    "drain after an outage: read 100 oldest + ack, records/s per backend vs raw sqlite3 (ratio: sqlite/raw)",
    run_ack,
)
