"""Chunked, resumable upload of bulk items (camera clips) when the outbox has nothing to send.

The sync engine (``device.link.sync``) calls ``BulkSender.fill(client, room)``
only when every outbox lane is drained and the in-flight window has room, so
records always go first and a clip never delays an event. It reports
PUBACKs with ``acked(pid)`` and lost publishes with ``lost(pid)``; a new
session object calls ``forget()``.

A *source* (duck-typed; ``device.apps.camera_clips.ClipSource``) has ``name``,
``kind`` (the topic part), optionally ``chunk_bytes``, and ``next_after(item_id)`` / ``get(item_id)``
returning ``(item_id, data, sha256_hex, meta)`` or None (ids increase; an
item may vanish when its ring evicts it: it is skipped and counted). ``data``
is the bytes, or the item's size (an int) when it lives in a file: chunks are
then read with ``source.read(item_id, off, n)``, and a read that fails
(``OSError``: evicted meanwhile) skips the item, counted in ``items_skipped``.

Progress is durable: the private state key ``_bulk.<source name>`` holds
``{"done": last item id uploaded whole, "item": id being sent, "acked":
bytes acknowledged from its start}``. Chunks of one item go out in order;
``acked`` moves only over a contiguous prefix of PUBACKed chunks, and is
written to the store when it moves. After a disconnect or a reboot the
upload resumes at ``acked`` (chunks sent but not acknowledged go again:
the cloud dedupes on ``(device, item, offset)``).

A chunk is published QoS 1 on ``bp/{dev}/{kind}/{item id}`` (see the topic
layout in ``device/link/__init__.py``): one line of JSON header
``{"dev", "src", "id", "off", "n", "total", "sha256"[, "meta" on the first
chunk]}``, a newline, then ``n`` raw bytes.
"""

import json

from device.errors import StoreError
from device.link.topics import PREFIX
from device.linkerrors import LinkBusyError

STATE_PREFIX = "_bulk."
COUNTER_NAMES = ("chunks_sent", "chunks_acked", "resent", "items_done", "items_skipped", "busy", "store_errors")


def _size(item: tuple) -> int:
    body = item[1]
    return body if isinstance(body, int) else len(body)


class _Upload:
    """One source's position: the item being sent and how far."""

    def __init__(self, source) -> None:  # type: ignore[no-untyped-def]
        self.source = source
        self.key = STATE_PREFIX + source.name
        self.chunk_bytes = getattr(source, "chunk_bytes", 0)
        self.loaded = False
        self.done = 0  # last item id uploaded whole
        self.item = None  # (id, data, sha, meta) being sent
        self.acked = 0  # contiguous bytes acknowledged
        self.sent = 0  # next offset to send
        self.high = 0  # end of the furthest chunk sent of this item (to count resends)
        self.acked_ends: dict = {}  # offset -> end, PUBACKed beyond the contiguous prefix
        self.dirty = False


class BulkSender:
    def __init__(self, store, device_id: str, sources: list, chunk_bytes: int = 1024) -> None:  # type: ignore[no-untyped-def]
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be >= 1")
        self.store = store
        self.device_id = device_id
        self.chunk_bytes = chunk_bytes
        self._uploads = [_Upload(source) for source in sources]
        for up in self._uploads:
            if up.chunk_bytes < 1:
                up.chunk_bytes = chunk_bytes
        self._in_flight: dict = {}  # packet id -> (upload, item id, offset, end)
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0

    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- called by the sync engine, synchronously ------------------------------------

    def acked(self, pid: int) -> bool:
        """A PUBACK; False when ``pid`` is not one of ours."""
        entry = self._in_flight.pop(pid, None)
        if entry is None:
            return False
        up, item_id, off, end = entry
        self.counters["chunks_acked"] += 1
        if up.item is None or up.item[0] != item_id or off < up.acked:
            return True  # an old chunk: its item moved on meanwhile
        up.acked_ends[off] = end
        while up.acked in up.acked_ends:
            up.acked = up.acked_ends.pop(up.acked)
            up.dirty = True
        return True

    def lost(self, pid: int) -> bool:
        """A publish the session lost: send it again (from the acknowledged prefix)."""
        entry = self._in_flight.pop(pid, None)
        if entry is None:
            return False
        up = entry[0]
        if up.item is not None and up.item[0] == entry[1] and entry[2] < up.sent:
            up.sent = max(up.acked, entry[2])
        return True

    def forget(self) -> None:
        """A new session: nothing in flight will be acknowledged; resume from the acknowledged prefix."""
        for pid in list(self._in_flight):
            self.lost(pid)
        for up in self._uploads:
            up.sent = up.acked

    # -- called by the sync engine's turn --------------------------------------------

    async def fill(self, client, room: int) -> int:  # type: ignore[no-untyped-def]
        """Publish up to ``room`` chunks; save progress that moved. Returns chunks published."""
        published = 0
        for up in self._uploads:
            if not up.loaded:
                await self._load(up)
            await self._settle(up)
            while room > 0:
                item = self._current(up)
                if item is None or up.sent >= _size(item):
                    break  # nothing to send, or the rest of the item is in flight
                off = up.sent
                end = min(off + up.chunk_bytes, _size(item))
                try:
                    payload = self._chunk(up, item, off, end)
                except OSError:
                    self._skip(up, item[0])  # its file went (evicted): go on with the next item
                    continue
                try:
                    pid = client.publish(self._topic(up, item), payload, 1, False)
                except LinkBusyError:
                    self.counters["busy"] += 1
                    return published
                self._in_flight[pid] = (up, item[0], off, end)
                up.sent = end
                if off < up.high:
                    self.counters["resent"] += 1
                else:
                    up.high = end
                self.counters["chunks_sent"] += 1
                published += 1
                room -= 1
        return published

    async def _settle(self, up: _Upload) -> None:
        """Finish an item wholly acknowledged and save progress that moved."""
        item = up.item
        if item is not None and up.acked >= _size(item):
            up.done = item[0]
            up.item = None
            up.acked = up.sent = up.high = 0
            up.acked_ends = {}
            up.dirty = True
            self.counters["items_done"] += 1
        if up.dirty:
            value = {"done": up.done, "item": up.item[0] if up.item else None, "acked": up.acked}
            try:
                await self.store.put_state(up.key, value, "local", None)
                up.dirty = False
            except StoreError:
                self.counters["store_errors"] += 1  # tried again next turn

    def _current(self, up: _Upload):  # type: ignore[no-untyped-def]
        if up.item is None:
            up.item = up.source.next_after(up.done)
            up.acked = up.sent = up.high = 0
            up.acked_ends = {}
        return up.item

    async def _load(self, up: _Upload) -> None:
        entry = await self.store.get_state(up.key)
        up.loaded = True
        value = entry.value if entry is not None else None
        if not isinstance(value, dict):
            return
        up.done = value.get("done") or 0
        item_id = value.get("item")
        if item_id is None:
            return
        item = up.source.get(item_id)
        if item is None:
            # Evicted (or lost with a RAM ring at reboot): go on with the next one.
            self.counters["items_skipped"] += 1
            up.done = item_id
            up.dirty = True
            return
        up.item = item
        up.acked = up.sent = min(value.get("acked") or 0, _size(item))
        up.high = up.acked

    def _topic(self, up: _Upload, item: tuple) -> str:
        return PREFIX + "/" + self.device_id + "/" + up.source.kind + "/" + str(item[0])

    def _chunk(self, up: _Upload, item: tuple, off: int, end: int) -> bytes:
        header = {
            "dev": self.device_id,
            "src": up.source.name,
            "id": item[0],
            "off": off,
            "n": end - off,
            "total": _size(item),
            "sha256": item[2],
        }
        if off == 0:
            header["meta"] = item[3]
        body = item[1]
        data = up.source.read(item[0], off, end - off) if isinstance(body, int) else bytes(body[off:end])
        return json.dumps(header).encode() + b"\n" + data

    def _skip(self, up: _Upload, item_id: int) -> None:
        self.counters["items_skipped"] += 1
        up.done = item_id
        up.item = None
        up.acked = up.sent = up.high = 0
        up.acked_ends = {}
        up.dirty = True

    def stats(self) -> dict:
        out: dict = dict(self.counters)
        out["in_flight"] = len(self._in_flight)
        for up in self._uploads:
            out[up.source.name] = {
                "done": up.done,
                "item": up.item[0] if up.item else None,
                "acked": up.acked,
                "sent": up.sent,
            }
        return out
