"""The chunk channel: bundle bytes over MQTT, one request at a time, as a sync engine extra.

Topics (``d`` the device id):

* device -> cloud ``bp/{d}/ota/get`` QoS 0: ``{"bundle": sha256 hex, "off": int, "n": int}``
* cloud -> device ``bp/{d}/ota/chunk`` QoS 1: one JSON header line, ``"\\n"``, then raw bytes.
  The header is ``{"bundle", "off", "n", "total"}`` (n bytes follow) or ``{"bundle", "error"}``.

The OTA task says what it wants (``request``); the engine publishes it from
``fill`` (each turn of its session, so no one awaits the network here) and
again after ``timeout_ms`` without an answer (a lost QoS 0 request, a chunk
lost with a dropped session). A chunk that is not the one wanted (late, a
duplicate, another bundle) is dropped and counted. The answer waits in
``take`` until the OTA task picks it up: at most one chunk is ever held.
"""

import json

from device.link.topics import PREFIX
from device.linkerrors import LinkError

PREFIX_REST = "ota/"
GET = "ota/get"
CHUNK = "ota/chunk"

COUNTER_NAMES = ("requests", "resent", "chunks", "dropped", "errors", "malformed", "busy")


def parse_chunk(payload) -> tuple:  # type: ignore[no-untyped-def]
    """``(header dict, data bytes)``; ValueError when the message is not a chunk message."""
    i = payload.find(b"\n")
    if i < 0:
        raise ValueError("no header line")
    header = json.loads(bytes(payload[:i]).decode())
    if not isinstance(header, dict) or not isinstance(header.get("bundle"), str):
        raise ValueError("bad header")
    data = payload[i + 1 :]
    if "error" in header:
        return header, b""
    off = header.get("off")
    n = header.get("n")
    if not isinstance(off, int) or not isinstance(n, int) or n != len(data):
        raise ValueError("bad chunk length")
    return header, data


class ChunkChannel:
    prefix = PREFIX_REST

    def __init__(self, timeout_ms: int = 10000) -> None:
        self.timeout_ms = timeout_ms
        self._want: tuple | None = None  # (bundle, off, n): the one request outstanding
        self._sent_ms: int | None = None  # when it was last published (engine's monotonic ms); None: not yet
        self._got: tuple | None = None  # (off, data) or ("error", text): the answer, until taken
        self._topic: str | None = None  # bp/{d}/ota/get, known once the engine subscribes
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0

    # -- the OTA task's side ----------------------------------------------------------

    def request(self, bundle: str, off: int, n: int) -> None:
        """Ask for ``n`` bytes at ``off``; the same request again keeps its timer."""
        want = (bundle, off, n)
        if want != self._want:
            self._want = want
            self._sent_ms = None
            self._got = None

    def cancel(self) -> None:
        self._want = None
        self._sent_ms = None
        self._got = None

    def waiting(self) -> bool:
        """A request is outstanding (asked, not answered yet)."""
        return self._want is not None

    def take(self):  # type: ignore[no-untyped-def]
        """The answer: ``(off, data)``, ``("error", text)`` or None; taken once."""
        got = self._got
        self._got = None
        return got

    # -- the engine's side ------------------------------------------------------------

    def subscriptions(self, device_id: str) -> list:
        self._topic = PREFIX + "/" + device_id + "/" + GET
        return [(PREFIX + "/" + device_id + "/" + CHUNK, 1)]

    def fill(self, client, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        want = self._want
        if want is None or self._topic is None:
            return
        if self._sent_ms is not None and now_ms - self._sent_ms < self.timeout_ms:
            return
        body = json.dumps({"bundle": want[0], "off": want[1], "n": want[2]}).encode()
        try:
            client.publish(self._topic, body, 0, False)
        except LinkError:  # busy or closing: the next turn (or session) tries again
            self.counters["busy"] += 1
            return
        self.counters["resent" if self._sent_ms is not None else "requests"] += 1
        self._sent_ms = now_ms

    async def on_message(self, rest: str, payload) -> None:  # type: ignore[no-untyped-def]
        if rest != CHUNK:
            return
        try:
            header, data = parse_chunk(payload)
        except ValueError:
            self.counters["malformed"] += 1
            return
        want = self._want
        if want is None or header["bundle"] != want[0]:
            self.counters["dropped"] += 1
            return
        if "error" in header:
            self.counters["errors"] += 1
            self._got = ("error", str(header["error"]))
            self._want = None
            return
        if header["off"] != want[1] or not data or len(data) > want[2]:
            self.counters["dropped"] += 1
            return
        self.counters["chunks"] += 1
        self._got = (want[1], data)
        self._want = None

    def stats(self) -> dict:
        return dict(self.counters)
