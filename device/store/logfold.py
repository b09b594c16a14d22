"""The log store's retention: fold telemetry runs into aggregates (``LogStore._fold_down``).

Loaded at the first fold, with ``device.store.retention`` (the pure rules):
a device whose outbox never passes its high-water mark never loads either.
"""

from device.compat import const
from device.store import retention
from device.store.base import encode_payload
from device.store.logformat import RECORD

_TELEMETRY = const(0)  # retention.TELEMETRY: the lane index of "telemetry"


def _lanes(store) -> bytearray:  # type: ignore[no-untyped-def]
    index = store._ring.index
    lanes = bytearray(index.count)
    for i in range(index.count):
        lanes[i] = index.lane_at(i)
    return lanes


def fold_down(store, target: int) -> int:  # type: ignore[no-untyped-def]
    """Fold telemetry runs, oldest first, until the payload bytes are <= ``target``; samples folded away."""
    index = store._ring.index
    lanes = _lanes(store)
    folded = 0
    start = 0
    progress = False
    while index.bytes > target:
        # A bytearray of lane indexes (a byte per record) serves as find_run's list.
        i, j = retention.find_run(lanes, start)  # type: ignore[arg-type]
        if i < 0:
            if not progress:
                break
            start = 0  # another pass from the oldest: aggregates fold further
            progress = False
            continue
        gone = _fold(store, i, j)
        if gone < 0:  # records were dropped as corrupt meanwhile: positions moved
            lanes = _lanes(store)
            start = 0
            continue
        if gone:
            lanes[i + 1 : j] = b""
            folded += gone
            progress = True
            start = i + 1
        else:
            start = j
    store._ring.free_dead_tails()
    return folded


def _fold(store, i: int, j: int) -> int:  # type: ignore[no-untyped-def]
    """Replace entries ``i .. j-1`` by their aggregate if smaller: records folded away, or -1 (index changed)."""
    ring = store._ring
    index = ring.index
    records = []
    for k in range(i, j):
        record = store._record(k)
        if record is None:
            store._drop_corrupt(k)
            return -1
        records.append(record)
    data = encode_payload(retention.fold(records))
    run_bytes = 0
    for record in records:
        run_bytes += record.size
    if not retention.worth_folding(run_bytes, len(data)):
        return 0
    first = records[0]
    last = records[-1].seq
    count = index.count
    slot, offset = ring.write(RECORD, _TELEMETRY, first.seq, last, first.boot, first.created_ms, data)
    moved = index.count != count  # copying a segment forward dropped a corrupt record
    if moved:
        i = index.position(first.seq)
        j = index.find(last + 1)
    index.replace(i, _TELEMETRY, slot, offset, len(data))
    index.delete(i + 1, j - i - 1)
    store.counters["compacted"] += j - i - 1
    return -1 if moved else j - i - 1
