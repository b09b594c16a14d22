"""The cloud's clip receiver (cloud_shim/clips.py): dedupe by (device, clip, offset), hash check, counted once."""

from __future__ import annotations

import hashlib
import json

from cloud_shim.clips import ClipStore

DATA = bytes(range(200)) * 3  # 600 bytes
SHA = hashlib.sha256(DATA).hexdigest()


def chunk(off: int, n: int, dev: str = "cam1", clip: int = 4, sha: str = SHA, data: bytes = DATA) -> tuple[str, bytes]:
    header = {"dev": dev, "src": "camera", "id": clip, "off": off, "n": n, "total": len(data), "sha256": sha}
    return f"bp/{dev}/clip/{clip}", json.dumps(header).encode() + b"\n" + data[off : off + n]


def test_chunks_in_any_order_with_duplicates_complete_once() -> None:
    store = ClipStore()
    for off in (400, 0, 200, 0, 400):
        store.feed(*chunk(off, 200))
    assert store.counters["completed"] == 1 and store.counters["duplicates"] == 2
    assert store.clips[("cam1", 4)].data == DATA
    store.feed(*chunk(0, 200))
    assert store.report("cam1")["completed"] == [4] and store.completions[("cam1", 4)] == 1


def test_overlapping_resend_at_another_size_is_absorbed() -> None:
    store = ClipStore()
    store.feed(*chunk(0, 300))
    store.feed(*chunk(300, 300))
    assert store.feed(*chunk(100, 256)) == "duplicate"
    assert store.counters["completed"] == 1 and store.counters["conflicts"] == 0


def test_wrong_bytes_are_a_conflict_or_a_hash_failure() -> None:
    store = ClipStore()
    store.feed(*chunk(0, 300))
    bad = bytes(600)
    assert store.feed(*chunk(0, 300, data=bad)) == "conflict"  # same offset, other bytes
    store2 = ClipStore()
    store2.feed(*chunk(0, 300, data=bad, sha=SHA))
    store2.feed(*chunk(300, 300, data=bad, sha=SHA))
    assert store2.counters["hash_failures"] == 1 and store2.counters["completed"] == 0


def test_malformed_messages_are_counted() -> None:
    store = ClipStore()
    assert store.feed("bp/cam1/clip/4", b"no header") == "malformed"
    assert store.feed("bp/cam1/out/event", chunk(0, 10)[1]) == "malformed"
    payload = chunk(0, 10)[1]
    assert store.feed("bp/other/clip/4", payload) == "malformed"  # header and topic disagree
    assert store.counters["malformed"] == 3 and store.clips == {}
