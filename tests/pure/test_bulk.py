"""Chunked, resumable clip upload (device/link/bulk.py) against a fake client and a memory store."""

import json

from device.core.clipring import ClipRing
from device.link.bulk import BulkSender
from device.linkerrors import LinkBusyError
from device.store.memory import MemoryStore


class Source:
    name = "camera"
    kind = "clip"

    def __init__(self, ring):  # type: ignore[no-untyped-def]
        self.ring = ring

    def next_after(self, item_id):  # type: ignore[no-untyped-def]
        clip = self.ring.next_after(item_id)
        return None if clip is None else (clip.clip_id, clip.data, "h%d" % clip.clip_id, {})

    def get(self, item_id):  # type: ignore[no-untyped-def]
        clip = self.ring.get(item_id)
        return None if clip is None else (clip.clip_id, clip.data, "h%d" % clip.clip_id, {})


class Client:
    def __init__(self, window=100):  # type: ignore[no-untyped-def]
        self.window = window
        self.sent = {}  # pid -> (topic, header, data)
        self._pid = 0

    def publish(self, topic, payload, qos, retain):  # type: ignore[no-untyped-def]
        if len(self.sent) >= self.window:
            raise LinkBusyError("full", "busy")
        self._pid += 1
        nl = payload.find(b"\n")
        self.sent[self._pid] = (topic, json.loads(payload[:nl]), payload[nl + 1 :])
        return self._pid


def _ring():  # type: ignore[no-untyped-def]
    ring = ClipRing(10000)
    ring.add(1, bytes(range(250)), {})
    ring.add(2, b"\x07" * 130, {})
    return ring


async def _store():  # type: ignore[no-untyped-def]
    store = MemoryStore(65536)
    await store.open()
    return store


def _ack_all(bulk, client, got):  # type: ignore[no-untyped-def]
    for pid in sorted(client.sent):
        _topic, header, data = client.sent.pop(pid)
        got[(header["id"], header["off"])] = data
        assert bulk.acked(pid)


async def test_chunks_cover_each_clip_in_order_and_progress_is_saved():
    store = await _store()
    bulk = BulkSender(store, "cam1", [Source(_ring())], chunk_bytes=100)
    client = Client()
    got: dict = {}
    assert await bulk.fill(client, 2) == 2
    topic, header, _data = client.sent[1]
    assert topic == "bp/cam1/clip/1" and header["off"] == 0 and header["total"] == 250 and header["sha256"] == "h1"
    assert "meta" in header and "meta" not in client.sent[2][1]
    _ack_all(bulk, client, got)
    await bulk.fill(client, 0)  # room 0: only settles
    assert (await store.get_state("_bulk.camera")).value == {"done": 0, "item": 1, "acked": 200}
    for _ in range(5):
        await bulk.fill(client, 10)
        _ack_all(bulk, client, got)
    await bulk.fill(client, 10)
    assert (await store.get_state("_bulk.camera")).value == {"done": 2, "item": None, "acked": 0}
    assert b"".join(got[(1, off)] for off in (0, 100, 200)) == bytes(range(250))
    assert got[(2, 100)] == b"\x07" * 30
    assert bulk.counters["items_done"] == 2 and bulk.in_flight() == 0


async def test_a_new_sender_resumes_from_the_acknowledged_prefix():
    store = await _store()
    ring = _ring()
    bulk = BulkSender(store, "cam1", [Source(ring)], chunk_bytes=50)
    client = Client()
    await bulk.fill(client, 4)  # offsets 0, 50, 100, 150 of clip 1
    assert bulk.acked(1) and bulk.acked(2) and bulk.acked(4)  # 100 lost: only 0..100 contiguous
    await bulk.fill(client, 0)
    assert (await store.get_state("_bulk.camera")).value["acked"] == 100
    again = BulkSender(store, "cam1", [Source(ring)], chunk_bytes=50)  # a reboot, same store
    client2 = Client()
    await again.fill(client2, 1)
    assert client2.sent[1][1]["off"] == 100


async def test_lost_and_forgotten_chunks_go_again():
    store = await _store()
    bulk = BulkSender(store, "cam1", [Source(_ring())], chunk_bytes=100)
    client = Client()
    await bulk.fill(client, 3)
    assert bulk.acked(1)
    assert bulk.lost(2) and not bulk.lost(99)
    await bulk.fill(client, 1)
    assert client.sent[4][1]["off"] == 100  # re-sent from the acknowledged prefix
    bulk.forget()
    assert bulk.in_flight() == 0
    client2 = Client()
    await bulk.fill(client2, 1)
    assert client2.sent[1][1]["off"] == 100 and bulk.counters["resent"] >= 2


async def test_an_evicted_item_is_skipped_after_a_reboot():
    store = await _store()
    await store.put_state("_bulk.camera", {"done": 0, "item": 1, "acked": 100})
    ring = ClipRing(10000)
    ring.add(5, b"q" * 10, {})
    bulk = BulkSender(store, "cam1", [Source(ring)], chunk_bytes=100)
    client = Client()
    await bulk.fill(client, 5)
    assert bulk.counters["items_skipped"] == 1
    assert [v[0] for v in client.sent.values()] == ["bp/cam1/clip/5"]


async def test_a_busy_client_stops_the_fill():
    store = await _store()
    bulk = BulkSender(store, "cam1", [Source(_ring())], chunk_bytes=10)
    client = Client(window=3)
    assert await bulk.fill(client, 10) == 3 and bulk.counters["busy"] == 1
    assert not bulk.acked(77)
