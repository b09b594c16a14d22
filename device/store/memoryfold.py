"""``MemoryStore``'s retention: fold runs of telemetry into aggregates, in place.

Part of ``device.store.memory`` (see its docstring for the chunk layout),
split off so it is imported on the first fold only: an outbox that is acked
in time never needs it, and a 128 KB heap keeps the room. The functions work
on the store's chunks directly.
"""

import struct

from device.store import retention
from device.store.base import encode_json
from device.store.memory import (
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    MemoryStore,
    decode_record,
    shift_down,
    write_record,
)


def fold_down(store: MemoryStore, target: int) -> int:
    """Fold telemetry runs, oldest first, until the payload bytes are <= ``target``.

    Stops when a whole pass folds nothing. Returns the samples folded away.
    """
    lanes = _lanes(store)
    folded = 0
    start = 0
    progress = False
    while store._bytes > target:
        i, j = retention.find_run(lanes, start)
        if i < 0:
            if not progress:
                break
            # Another pass from the oldest: the aggregates just made fold further.
            start = 0
            progress = False
            continue
        if _fold(store, i, j):
            lanes[i + 1 : j] = b""
            folded += j - i - 1
            progress = True
            start = i + 1
        else:
            start = j
    return folded


def _lanes(store: MemoryStore) -> bytearray:
    """The lane index of every record, in seq order: a byte per record."""
    lanes = bytearray(store._count)
    k = 0
    chunks = store._chunks
    fills = store._fills
    for index in range(len(chunks)):
        chunk = chunks[index]
        offset = 0
        while offset < fills[index]:
            lanes[k] = chunk[offset + 8]  # the lane byte follows the 8-byte seq
            k += 1
            offset += RECORD_HEADER_SIZE + _size_at(chunk, offset)
    return lanes


def _size_at(chunk: bytearray, offset: int) -> int:
    """The payload size in the header at ``offset`` (its last 4 bytes)."""
    return struct.unpack_from("<I", chunk, offset + RECORD_HEADER_SIZE - 4)[0]  # type: ignore[no-any-return]


def _fold(store: MemoryStore, i: int, j: int) -> bool:
    """Replace records ``i .. j-1`` (a telemetry run) by their aggregate, if that is smaller."""
    chunks = store._chunks
    fills = store._fills
    index = offset = k = 0
    first_index = first_offset = 0
    run_bytes = 0
    while k < j:  # headers only: where the run starts and ends, and its payload bytes
        if offset >= fills[index]:
            index += 1
            offset = 0
            continue
        if k == i:
            first_index, first_offset = index, offset
        size = _size_at(chunks[index], offset)
        if k >= i:
            run_bytes += size
        offset += RECORD_HEADER_SIZE + size
        k += 1
    # fold() takes the records one at a time, decoded as it goes: sixteen decoded
    # payloads held at once would cost ~7 KB of a 128 KB heap.
    data = encode_json(retention.fold(_decoded(chunks, fills, first_index, first_offset, j - i)), "aggregate")
    if not retention.worth_folding(run_bytes, len(data)):
        return False
    seq, _, boot, created_ms, _ = struct.unpack_from(RECORD_HEADER, chunks[first_index], first_offset)
    _replace_run(store, first_index, first_offset, index, offset, seq, boot, created_ms, data)
    store._count -= j - i - 1
    store._bytes -= run_bytes - len(data)
    store.counters["compacted"] += j - i - 1
    return True


def _decoded(chunks: list, fills: list, index: int, offset: int, count: int):  # type: ignore[no-untyped-def]
    """Yield ``count`` records, decoded one by one, from ``offset`` in chunk ``index`` on."""
    while count > 0:
        if offset >= fills[index]:
            index += 1
            offset = 0
            continue
        record = decode_record(chunks[index], offset)
        offset += RECORD_HEADER_SIZE + record.size
        count -= 1
        yield record


def _replace_run(
    store: MemoryStore, a: int, start: int, b: int, end: int, seq: int, boot: int, created_ms: int, data: bytes
) -> None:
    """Put one telemetry record where bytes ``start`` of chunk ``a`` to ``end`` of chunk ``b`` were."""
    chunks = store._chunks
    fills = store._fills
    length = RECORD_HEADER_SIZE + len(data)
    tel = retention.TELEMETRY
    if a == b:
        # Smaller than the run: write it at the run's start, close the gap behind it.
        after = write_record(chunks[a], start, seq, tel, boot, created_ms, data)
        fills[a] = shift_down(chunks[a], after, end, fills[a])
    else:
        fills[a] = start
        for _ in range(b - a - 1):  # chunks wholly inside the run
            store._release(chunks.pop(a + 1))
            fills.pop(a + 1)
        fills[a + 1] = shift_down(chunks[a + 1], 0, end, fills[a + 1])
        if start + length <= len(chunks[a]):
            fills[a] = write_record(chunks[a], start, seq, tel, boot, created_ms, data)
        else:
            chunk = store._new_chunk(length)
            write_record(chunk, 0, seq, tel, boot, created_ms, data)
            chunks.insert(a + 1, chunk)
            fills.insert(a + 1, length)
    store._settle()
