"""A scripted MQTT "broker" on loopback: the test decides every byte it sends (CPython only).

The torture harnesses (``tools/torture/mqtt_*.py``) use it to put an MQTT client
through exact sequences: a CONNACK with a given code or session flag, a PUBLISH
re-sent with DUP, a PINGRESP that never comes, Mosquitto's malformed packets.
It is not a broker: it keeps no sessions and routes nothing.

``ScriptBroker`` is an asyncio server on 127.0.0.1 (a free port); each accepted
connection is queued as a ``Conn`` for the script to ``accept``::

    async with ScriptBroker() as broker:
        task = asyncio.create_task(client.connect("127.0.0.1", broker.port))
        conn = await broker.accept()
        await conn.read_packet()           # the CONNECT
        conn.send(connack(session_present=False))

Also here: the packet builders and the parser a script needs, and the loader of
``shared/corpora/mosquitto-packets`` (see its README).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL = "127.0.0.1"
STEP_TIMEOUT_S = 5.0  # the longest any single scripted step waits

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14


# ---------------------------------------------------------------- packets


def remaining_length(value: int) -> bytes:
    """MQTT's variable-length encoding of a remaining length."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def connack(session_present: bool = False, code: int = 0) -> bytes:
    return bytes([0x20, 2, 1 if session_present else 0, code])


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, dup: bool = False) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + (packet_id.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | (8 if dup else 0) | (qos << 1)]) + remaining_length(len(body)) + body


def puback(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def suback(packet_id: int, granted: list[int]) -> bytes:
    return bytes([0x90, 2 + len(granted)]) + packet_id.to_bytes(2, "big") + bytes(granted)


PINGRESP_PACKET = b"\xd0\x00"


@dataclass
class Publish:
    """A PUBLISH as the client sent it."""

    topic: str
    payload: bytes
    qos: int
    packet_id: int
    dup: bool
    retain: bool


def packet_type(packet: bytes) -> int:
    return packet[0] >> 4


def header_size(packet: bytes) -> int:
    """Bytes of fixed header (type byte + remaining length) at the start of a whole packet."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    return i + 1


def parse_publish(packet: bytes) -> Publish:
    first = packet[0]
    qos = (first >> 1) & 3
    i = header_size(packet)
    tlen = int.from_bytes(packet[i : i + 2], "big")
    topic = packet[i + 2 : i + 2 + tlen].decode()
    j = i + 2 + tlen
    pid = 0
    if qos:
        pid = int.from_bytes(packet[j : j + 2], "big")
        j += 2
    return Publish(topic, bytes(packet[j:]), qos, pid, bool(first & 8), bool(first & 1))


def connect_keepalive(packet: bytes) -> int:
    """The keepalive (s) of a CONNECT packet."""
    i = header_size(packet)
    name_len = int.from_bytes(packet[i : i + 2], "big")
    j = i + 2 + name_len + 2  # protocol name, level, flags
    return int.from_bytes(packet[j : j + 2], "big")


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole packet (fixed header included). Raises IncompleteReadError at EOF."""
    head = await reader.readexactly(1)
    length = 0
    for shift in (0, 7, 14, 21):
        byte = (await reader.readexactly(1))[0]
        head += bytes([byte])
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    return head + await reader.readexactly(length)


# ---------------------------------------------------------------- the server


class Conn:
    """One accepted connection, driven by the script."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.heard: list[bytes] = []  # every packet read, in order

    async def read_packet(self, timeout_s: float = STEP_TIMEOUT_S) -> bytes | None:
        """The next packet from the client; None at EOF, reset or after ``timeout_s``."""
        try:
            packet = await asyncio.wait_for(read_packet(self.reader), timeout_s)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            return None
        self.heard.append(packet)
        return packet

    async def read_until(self, kinds: tuple[int, ...], timeout_s: float = STEP_TIMEOUT_S) -> bytes | None:
        """The next packet of one of ``kinds`` (others are kept in ``heard``); None at EOF or timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            packet = await self.read_packet(max(0.0, deadline - loop.time()))
            if packet is None or packet_type(packet) in kinds:
                return packet

    async def wait_eof(self, timeout_s: float = STEP_TIMEOUT_S) -> bool:
        """Read (and keep) until the client closes; False if it is still open after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return False
                data = await asyncio.wait_for(self.reader.read(4096), left)
                if not data:
                    return True
        except (ConnectionError, OSError):
            return True
        except TimeoutError:
            return False

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def send_eof(self) -> None:
        if not self.writer.is_closing() and self.writer.can_write_eof():
            self.writer.write_eof()

    def close(self) -> None:
        self.writer.close()


class ScriptBroker:
    """An asyncio server on 127.0.0.1:<free port>; ``accept()`` hands out connections in order."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: asyncio.Queue[Conn] = asyncio.Queue()
        self._all: list[Conn] = []

    async def __aenter__(self) -> ScriptBroker:
        self._server = await asyncio.start_server(self._serve, LOCAL, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer)
        self._all.append(conn)
        await self._conns.put(conn)

    async def accept(self, timeout_s: float = STEP_TIMEOUT_S) -> Conn | None:
        try:
            return await asyncio.wait_for(self._conns.get(), timeout_s)
        except TimeoutError:
            return None

    def close_all(self) -> None:
        """Close every connection accepted so far (a script that failed mid-way leaves none behind)."""
        for conn in self._all:
            conn.close()
        self._all = []
        while not self._conns.empty():
            self._conns.get_nowait().close()


class ScriptError(Exception):
    """The client did not do what the script waits for (the message says what)."""


async def serve_connect(
    broker: ScriptBroker, client: Any, present: bool = False, code: int = 0
) -> tuple[Conn, asyncio.Future[Any], bytes]:
    """Let ``client.connect`` dial ``broker``; read its CONNECT and answer with a CONNACK.

    Returns ``(conn, connect task, CONNECT packet)``: the caller awaits the task (the client's verdict).
    """
    task = asyncio.ensure_future(client.connect(LOCAL, broker.port))
    conn = await broker.accept()
    if conn is None:
        task.cancel()
        raise ScriptError("the client never dialled")
    packet = await conn.read_packet()
    if packet is None or packet_type(packet) != CONNECT:
        task.cancel()
        raise ScriptError("no CONNECT")
    conn.send(connack(present, code))
    return conn, task, packet


# ---------------------------------------------------------------- the corpus

_CORPUS_REL = Path("corpora") / "mosquitto-packets"
_REPO = Path(__file__).resolve().parents[2]


def corpus_dir() -> Path | None:
    """``shared/corpora/mosquitto-packets`` beside the repository (or /work/shared); None if absent."""
    for base in (_REPO.parent / "shared", Path("/work/shared")):
        if (base / _CORPUS_REL).is_dir():
            return base / _CORPUS_REL
    return None


# Valid in form and harmless to a client, though a broker would refuse them.
CLIENT_ACCEPTS = {("PINGRESP", "D0"), ("SUBACK", "90"), ("UNSUBACK", "B0")}
# Packets a 3.1.1 broker may never send to a QoS 0/1 client, whatever the corpus says of brokers.
CLIENT_REFUSES = ("PUBREC", "PUBREL", "PUBCOMP")
VALID_CONNACKS = {"20020000": False, "20020100": True}  # payload -> session_present


@dataclass
class CorpusCase:
    kind: str  # the corpus file: the packet type
    name: str
    ver: int  # 3: MQTT 3.1, 4: 3.1.1, 5: MQTT 5
    sends: list[bytes]
    corpus_keeps_open: bool  # Mosquitto (a broker) keeps the connection open on these bytes
    first_packet: bool  # the corpus's "connect": false (for a broker: a packet before CONNECT)

    @property
    def label(self) -> str:
        return f"{self.kind}/v{self.ver}/{self.name}"

    @property
    def client_keeps_open(self) -> bool | None:
        """Whether a 3.1.1 client must stay open after these bytes (sent after a CONNACK); None for MQTT 5.

        A client's duty differs from a broker's: PUBREC/PUBREL/PUBCOMP, QoS 2, a second CONNACK and
        DISCONNECT close it; an unsolicited PINGRESP/SUBACK/UNSUBACK of valid form does not.
        """
        if self.ver == 5:
            return None
        if (self.kind, self.name) in CLIENT_ACCEPTS:
            return True
        if self.first_packet:  # valid in form; after our CONNACK, fine if a client may receive it
            return self.kind in ("PUBLISH", "PUBACK", "PINGRESP", "SUBACK", "UNSUBACK")
        if self.kind in CLIENT_REFUSES or not self.corpus_keeps_open:
            return False
        first = self.sends[0][0]
        return not (first >> 4 == 3 and first & 0x06 == 0x04)  # QoS 2: never subscribed so

    @property
    def qos1_publish_id(self) -> int | None:
        """The packet id when the first packet is a QoS 1 PUBLISH (the client owes a PUBACK)."""
        data = self.sends[0]
        if data[0] >> 4 == 3 and data[0] & 0x06 == 0x02:
            tlen = int.from_bytes(data[2:4], "big")
            return int.from_bytes(data[4 + tlen : 6 + tlen], "big")
        return None


def load_corpus(path: Path | None = None) -> list[CorpusCase]:
    """Every test with something to send, in file order; [] when the corpus is not there."""
    path = path or corpus_dir()
    if path is None:
        return []
    cases = []
    for file in sorted(path.glob("*.json")):
        for group in json.loads(file.read_text()):
            for test in group["tests"]:
                sends = [bytes.fromhex(m["payload"].replace(" ", "")) for m in test["msgs"] if m["type"] == "send"]
                if sends:
                    keeps = test.get("expect_disconnect", True) is False
                    first = test.get("connect", True) is False
                    cases.append(CorpusCase(file.stem, test["name"], test["ver"], sends, keeps, first))
    return cases
