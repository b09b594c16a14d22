"""A UDP DNS server on 127.0.0.1 that fails on demand, per name.

    dns = FakeDnsServer()
    dns.start()                          # in a thread of its own; or `await dns.serve()` in your loop
    dns.set("broker.test", "ok", ["127.0.0.1"])
    dns.set("broker.test", "servfail")   # changes take effect on the next query
    dns.queries("broker.test")           # how many queries that name got
    dns.stop()

Modes: ``ok`` (A records), ``wrong`` (also A records: the test's wrong ones),
``nxdomain``, ``empty`` (NOERROR without answers), ``servfail``, ``timeout``
(no reply at all), ``garbage`` (a reply with our id that is malformed: a
compression pointer loop, a record cut short, a 3-byte A record, in turn).
A name never set answers ``nxdomain``. ``ok``/``wrong`` can answer through a
CNAME (``cname=``) and after a delay (``delay_ms=``).

It shares no code with ``device/core/dns_codec.py`` on purpose: a bug there
must not be mirrored here.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from dataclasses import dataclass
from typing import cast

from cloud_shim.faults.loopthread import ThreadServed

MODES = ("ok", "wrong", "nxdomain", "empty", "servfail", "timeout", "garbage")
_RCODES = {"ok": 0, "wrong": 0, "empty": 0, "nxdomain": 3, "servfail": 2}
_QR_RA = 0x8080
_RD = 0x0100
_TYPE_A = 1
_TYPE_CNAME = 5


@dataclass(frozen=True)
class Behaviour:
    mode: str
    addresses: tuple[str, ...] = ()
    cname: str | None = None
    delay_ms: int = 0


def _wire(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _question(packet: bytes) -> tuple[int, int, str, int, int] | None:
    """``(id, flags, name, qtype, end of question)`` of a query, or None when it is not one."""
    if len(packet) < 12:
        return None
    query_id, flags, qdcount = struct.unpack_from(">HHH", packet, 0)
    if flags & 0x8000 or qdcount != 1:
        return None
    pos = 12
    labels: list[str] = []
    while pos < len(packet) and packet[pos] and len(labels) < 128:
        length = packet[pos]
        if length > 63 or pos + 1 + length > len(packet):
            return None
        labels.append(packet[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if pos + 5 > len(packet):
        return None
    qtype = struct.unpack_from(">H", packet, pos + 1)[0]
    return query_id, flags, ".".join(labels).lower(), qtype, pos + 5


def _rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def build_reply(packet: bytes, behaviour: Behaviour, ttl_s: int, garbage_turn: int = 0) -> bytes | None:
    """The reply to ``packet`` under ``behaviour`` (None: stay silent)."""
    parsed = _question(packet)
    if parsed is None or behaviour.mode == "timeout":
        return None
    query_id, flags, _name, qtype, end = parsed
    question = packet[12:end]
    if behaviour.mode == "garbage":
        return _garbage(query_id, question, garbage_turn)
    rcode = _RCODES[behaviour.mode]
    answers = b""
    count = 0
    if behaviour.mode in ("ok", "wrong") and qtype == _TYPE_A:
        owner = b"\xc0\x0c"  # the question's name
        if behaviour.cname:
            answers += _rr(owner, _TYPE_CNAME, ttl_s, _wire(behaviour.cname))
            target = 12 + len(question) + 12  # the CNAME's rdata: owner pointer + fixed fields
            owner = bytes([0xC0 | (target >> 8), target & 0xFF])
            count += 1
        for address in behaviour.addresses:
            answers += _rr(owner, _TYPE_A, ttl_s, socket.inet_aton(address))
            count += 1
    header = struct.pack(">HHHHHH", query_id, _QR_RA | (flags & _RD) | rcode, 1, count, 0, 0)
    return header + question + answers


def _garbage(query_id: int, question: bytes, turn: int) -> bytes:
    header = struct.pack(">HHHHHH", query_id, _QR_RA | _RD, 1, 1, 0, 0)
    variant = turn % 3
    if variant == 0:  # the answer's owner name is a pointer to itself
        here = 12 + len(question)
        return header + question + bytes([0xC0 | (here >> 8), here & 0xFF]) + b"\x00\x01\x00\x01" + bytes(10)
    if variant == 1:  # the record claims 4 bytes of data and brings 1
        return header + question + b"\xc0\x0c" + struct.pack(">HHIH", _TYPE_A, 1, 60, 4) + b"\x01"
    return header + question + _rr(b"\xc0\x0c", _TYPE_A, 60, b"\x01\x02\x03")  # a 3-byte A record


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: FakeDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply, delay_ms = self.server.answer(data)
        if reply is None or self.transport is None:
            return
        if delay_ms > 0:
            asyncio.get_running_loop().call_later(delay_ms / 1000, self._send, reply, addr)
        else:
            self._send(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class FakeDnsServer(ThreadServed):
    """Answers A queries per name as told; thread-safe ``set``/``queries`` from any thread."""

    thread_name = "fake-dns"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ttl_s: int = 60) -> None:
        self.host = host
        self.port = port
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._table: dict[str, Behaviour] = {}
        self._counts: dict[str, int] = {}
        self.bad_queries = 0
        self._transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> str:
        """``"127.0.0.1:port"``: the form ``UdpResolver`` and ``link.dns_servers`` take."""
        return "%s:%d" % (self.host, self.port)

    def set(
        self,
        name: str,
        mode: str,
        addresses: list[str] | tuple[str, ...] = (),
        cname: str | None = None,
        delay_ms: int = 0,
    ) -> None:
        if mode not in MODES:
            raise ValueError("unknown mode %r (one of %s)" % (mode, ", ".join(MODES)))
        if mode in ("ok", "wrong") and not addresses:
            raise ValueError(mode + " needs addresses")
        for address in addresses:
            socket.inet_aton(address)
        with self._lock:
            self._table[name.rstrip(".").lower()] = Behaviour(mode, tuple(addresses), cname, delay_ms)

    def queries(self, name: str | None = None) -> int:
        """Queries received for ``name`` (all names when None)."""
        with self._lock:
            if name is None:
                return sum(self._counts.values())
            return self._counts.get(name.rstrip(".").lower(), 0)

    def answer(self, packet: bytes) -> tuple[bytes | None, int]:
        """The reply to one datagram and how long to hold it (ms)."""
        parsed = _question(packet)
        if parsed is None:
            with self._lock:
                self.bad_queries += 1
            return None, 0
        name = parsed[2]
        with self._lock:
            turn = self._counts.get(name, 0)
            self._counts[name] = turn + 1
            behaviour = self._table.get(name, Behaviour("nxdomain"))
        return build_reply(packet, behaviour, self.ttl_s, turn), behaviour.delay_ms

    # ---------------------------------------------------------------- in the caller's loop

    async def serve(self) -> None:
        """Bind and start answering in the running loop (returns at once)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=(self.host, self.port))
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
