"""The chunked upload (device/link/bulk.py) reading clips from their files, and skipping one evicted mid-upload."""

from device.apps.camera_clips import ClipSource
from device.core.clipring import CLIP_OVERHEAD
from device.link.bulk import BulkSender
from device.store.clipfiles import FOOTER_BYTES, META_MAX, FileClips
from device.store.fileio import Files
from device.store.memory import MemoryStore
from tests.pure.test_bulk import Client, _ack_all
from tests.pure.test_clipfiles import _cleanup, _fresh_dir, _record


async def test_chunks_come_from_the_files_and_an_evicted_clip_is_skipped():
    try:
        clips = FileClips(Files(_fresh_dir()), 2 * (300 + META_MAX + FOOTER_BYTES + CLIP_OVERHEAD))
        clips.open()
        _record(clips, 1, [bytes(range(150)), bytes(range(150))])
        _record(clips, 2, [b"\x05" * 300])
        store = MemoryStore(65536)
        await store.open()
        bulk = BulkSender(store, "cam1", [ClipSource(clips, 100)])
        client = Client()
        got: dict = {}
        assert await bulk.fill(client, 2) == 2  # clip 1, offsets 0 and 100
        header = client.sent[1][1]
        assert header["total"] == 300 and header["sha256"] == clips.get(1)[2] and header["meta"]["clip"] == 1
        _ack_all(bulk, client, got)
        _record(clips, 3, [b"\x06" * 300])  # evicts clip 1 (and its file) mid-upload
        assert clips.ring.ids() == [2, 3]
        for _ in range(10):
            await bulk.fill(client, 10)
            _ack_all(bulk, client, got)
        assert bulk.counters["items_skipped"] == 1 and bulk.counters["items_done"] == 2
        assert b"".join(got[(2, off)] for off in (0, 100, 200)) == clips.data(2)
        assert b"".join(got[(3, off)] for off in (0, 100, 200)) == clips.data(3)
        assert (await store.get_state("_bulk.camera")).value == {"done": 3, "item": None, "acked": 0}
    finally:
        _cleanup()
