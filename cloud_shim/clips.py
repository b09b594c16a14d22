"""The cloud side's clip receiver: reassemble chunked clips, exactly once each.

Fed ``(topic, payload)`` of ``bp/{d}/clip/{id}`` messages (``device/link/bulk.py``:
a JSON header line, a newline, raw bytes), ``ClipStore`` keeps per
``(device, clip)`` the chunks by offset and classifies every message:

* **new chunk**: first delivery of ``(device, clip, offset)``;
* **duplicate**: the same offset again with the same bytes (a QoS 1
  redelivery or a resend after a reconnect), absorbed;
* **conflict**: the same offset with other bytes, or a header that disagrees
  with the clip's (total, hash): a real bug, counted;
* **malformed**: not a clip chunk at all.

A clip *completes* when its chunks cover ``0 .. total`` with no gap; its bytes
are then checked against the header's sha256: a match counts it in
``completed`` (once: later chunks of it are duplicates), a mismatch in
``hash_failures``. ``ClipSubscriber`` feeds a ``ClipStore`` from a broker with
paho-mqtt in its own thread (QoS 1), like ``cloud_shim.ledger.LedgerSubscriber``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

PREFIX = "bp"
_COUNTER_OF = {"duplicate": "duplicates", "conflict": "conflicts", "malformed": "malformed"}


@dataclass
class Clip:
    total: int
    sha256: str
    meta: dict[str, Any] | None = None
    chunks: dict[int, bytes] = field(default_factory=dict)
    complete: bool = False
    data: bytes | None = None

    def received(self) -> int:
        return sum(len(c) for c in self.chunks.values())

    def assemble(self) -> bytes | None:
        """The whole clip when the chunks cover it without a gap, else None."""
        pos = 0
        parts = []
        for off in sorted(self.chunks):
            if off > pos:
                return None
            chunk = self.chunks[off]
            if off + len(chunk) > pos:
                parts.append(chunk[pos - off :])
                pos = off + len(chunk)
        return b"".join(parts) if pos == self.total else None


@dataclass
class ClipStore:
    prefix: str = PREFIX
    clips: dict[tuple[str, int], Clip] = field(default_factory=dict)
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("messages", "chunks", "duplicates", "conflicts", "malformed", "completed", "hash_failures"), 0
        )
    )
    completions: dict[tuple[str, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def feed(self, topic: str, payload: bytes) -> str:
        """Take one message; return what it was (``chunk``, ``duplicate``, ``conflict``, ``malformed``, ...)."""
        with self._lock:
            self.counters["messages"] += 1
            kind = self._feed(topic, payload)
            counter = _COUNTER_OF.get(kind)
            if counter is not None:  # new chunks are counted where they are kept
                self.counters[counter] += 1
            return kind

    def _feed(self, topic: str, payload: bytes) -> str:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] != "clip":
            return "malformed"
        newline = payload.find(b"\n")
        if newline < 0:
            return "malformed"
        try:
            header = json.loads(payload[:newline])
            dev, clip_id, off, n = header["dev"], int(header["id"]), int(header["off"]), int(header["n"])
            total, sha = int(header["total"]), str(header["sha256"])
        except (ValueError, KeyError, TypeError):
            return "malformed"
        data = payload[newline + 1 :]
        if dev != parts[1] or str(clip_id) != parts[3] or len(data) != n or off < 0 or off + n > total:
            return "malformed"
        key = (dev, clip_id)
        clip = self.clips.get(key)
        if clip is None:
            clip = self.clips[key] = Clip(total, sha)
        elif clip.total != total or clip.sha256 != sha:
            return "conflict"
        if "meta" in header:
            clip.meta = header["meta"]
        old = clip.chunks.get(off)
        if old is not None:
            return "duplicate" if old == data else "conflict"
        if clip.complete:
            return "duplicate"  # a resend cut at another size: the clip is already whole
        clip.chunks[off] = data
        self.counters["chunks"] += 1
        whole = clip.assemble()
        if whole is not None:
            clip.complete = True
            if hashlib.sha256(whole).hexdigest() == clip.sha256:
                clip.data = whole
                self.counters["completed"] += 1
                self.completions[key] = self.completions.get(key, 0) + 1
            else:
                self.counters["hash_failures"] += 1
        return "chunk"

    def completed_ids(self, device: str) -> list[int]:
        with self._lock:
            return sorted(cid for (dev, cid), clip in self.clips.items() if dev == device and clip.data is not None)

    def report(self, device: str) -> dict[str, Any]:
        with self._lock:
            mine = {cid: clip for (dev, cid), clip in self.clips.items() if dev == device}
            return {
                "completed": sorted(cid for cid, c in mine.items() if c.data is not None),
                "partial": sorted(cid for cid, c in mine.items() if not c.complete),
                "completed_more_than_once": sorted(
                    cid for (dev, cid), n in self.completions.items() if dev == device and n > 1
                ),
                "counters": dict(self.counters),
            }


class ClipSubscriber:
    """paho-mqtt in its own network thread, feeding a ``ClipStore`` (QoS 1)."""

    def __init__(self, host: str, port: int, devices: list[str], client_id: str, prefix: str = PREFIX) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host = host
        self.port = port
        self.store = ClipStore(prefix)
        self.filters = [("%s/%s/clip/+" % (prefix, d), 1) for d in devices]
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._subscribed = threading.Event()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.store.feed(message.topic, bytes(message.payload))

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        self._subscribed.set()

    def start(self, timeout_s: float = 10.0) -> ClipSubscriber:
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        self._client.subscribe(self.filters)
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TimeoutError("the clip subscription was not granted in %.0f s" % timeout_s)
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> ClipSubscriber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
