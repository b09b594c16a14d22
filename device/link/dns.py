"""A non-blocking UDP DNS client for A records (MicroPython and CPython).

On MicroPython ``socket.getaddrinfo`` of a name blocks the whole VM, control
loop included, for as long as the resolver takes. This client never blocks:

    addresses, ttl_s = await query_a("broker.example.com", [("10.0.0.1", 53)], budget_ms=3000)

How it waits: each server gets a *connected* non-blocking UDP socket (the
kernel then drops datagrams from any other source, and a dead port shows up
as ``ECONNREFUSED``), and the client polls ``recv`` between short
``compat.sleep_ms`` naps (2 ms growing to 16 ms). MicroPython's asyncio has no
datagram endpoints and its socket wait queue is private (``asyncio.core._io_queue``);
``select.poll`` with a zero timeout would only replace the ``recv`` attempt.
A nap loop is the one mechanism that is public and identical on both
interpreters; it costs at most ~16 ms of latency on a lookup that runs in the
background, and about 60 wake-ups a second while waiting.

Retries: attempts rotate over the servers (``tries`` per server) and share
the budget: each attempt waits ``remaining / attempts left``. A late answer to
an earlier attempt is still taken. Each attempt uses a fresh random query id
(``os.urandom``) from a fresh ephemeral port per server.

An authoritative answer (NXDOMAIN, NOERROR without A records) ends the lookup
at once; SERVFAIL, other rcodes, a malformed answer or a refused port move on
to the next attempt. The error raised is ``DnsError(kind)``:

* ``nxdomain`` / ``empty`` -- a server said so;
* ``servfail`` -- the last server that answered said SERVFAIL;
* ``error`` -- a malformed answer, another rcode, a refused or broken socket;
* ``timeout`` -- no server answered within the budget.
"""

import errno
import socket

from device.compat import monotonic_ms, sleep_ms
from device.core import dns_codec
from device.linkerrors import DnsError

_POLL_FIRST_MS = 2
_POLL_MAX_MS = 16
_RECV_MAX = 1232  # EDNS-safe size; our queries never ask for more than 512 anyway
_MIN_ATTEMPT_MS = 20


def _random_id():
    try:
        import os

        raw = os.urandom(2)
        return (raw[0] << 8) | raw[1]
    except (ImportError, AttributeError, OSError, NotImplementedError):
        import random

        return random.getrandbits(16)


def parse_server(text, default_port=53):
    """``"ip"`` or ``"ip:port"`` -> ``(ip, port)``; ``ValueError`` when it is neither."""
    host = text
    port = default_port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        if not port_text.isdigit():
            raise ValueError("bad port in DNS server %r" % text)
        port = int(port_text)
    if dns_codec.parse_ipv4(host) is None or not 0 < port < 65536:
        raise ValueError("DNS server must be an IPv4 address with an optional port: %r" % text)
    return host, port


class _Server:
    """One server's socket and the ids we asked it with."""

    def __init__(self, ip, port):
        self.ip = ip
        self.port = port
        self.sock = None  # type: socket.socket | None
        self.ids = []
        self.dead = False

    def open(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.connect(socket.getaddrinfo(self.ip, self.port)[0][-1])
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def _is_eagain(exc):
    code = getattr(exc, "errno", None)
    if code is None and exc.args:
        code = exc.args[0]
    return code == errno.EAGAIN


class DnsStats:
    """Counters of one client, kept across lookups (shown on the diagnostics topic)."""

    def __init__(self):
        self.queries = 0
        self.answers = 0
        self.stray = 0  # datagrams with an id we did not ask (late or spoofed)
        self.malformed = 0
        self.socket_errors = 0

    def as_dict(self):
        return {
            "queries": self.queries,
            "answers": self.answers,
            "stray": self.stray,
            "malformed": self.malformed,
            "socket_errors": self.socket_errors,
        }


async def query_a(name, servers, budget_ms, tries=2, id_source=None, stats=None):
    """Resolve ``name`` to IPv4 addresses: ``([ip, ...], min ttl s)``; raises ``DnsError(kind)``.

    ``servers``: ``[(ip, port), ...]``. ``id_source``: a callable giving 16-bit ids
    (tests); default ``os.urandom``. ``stats``: a ``DnsStats`` to count into.
    """
    try:
        dns_codec.name_labels(name)
    except ValueError as exc:
        raise DnsError("bad name %r: %s" % (name, exc), "error") from None
    if not servers:
        raise DnsError("no DNS servers", "error")
    if stats is None:
        stats = DnsStats()
    next_id = id_source or _random_id
    pool = [_Server(ip, port) for ip, port in servers]
    query = bytearray(dns_codec.QUERY_MAX)
    deadline = monotonic_ms() + budget_ms
    attempts = max(1, tries) * len(pool)
    failure = "timeout"
    last_reason = "no answer"
    try:
        for attempt in range(attempts):
            now = monotonic_ms()
            if now >= deadline:
                break
            live = [s for s in pool if not s.dead]
            if not live:
                break
            server = live[attempt % len(live)]
            wait_ms = (deadline - now) // (attempts - attempt)
            if wait_ms < _MIN_ATTEMPT_MS:
                wait_ms = min(_MIN_ATTEMPT_MS, deadline - now)
            if not _send(server, query, name, next_id, stats):
                failure, last_reason = "error", "socket error towards %s" % server.ip
                continue
            found = await _collect(pool, name, now + wait_ms, stats)
            if found is None:
                continue
            kind, addresses, ttl_s, server = found
            if kind == "ok":
                return addresses, ttl_s
            if kind in ("nxdomain", "empty"):
                raise DnsError("%s: %s from %s" % (name, kind, server.ip), kind)
            failure, last_reason = kind, "%s from %s" % (kind, server.ip)
    finally:
        for server in pool:
            server.close()
    if failure == "timeout":
        last_reason = "no answer within %d ms" % budget_ms
    raise DnsError("%s: %s" % (name, last_reason), failure)


def _send(server, query, name, next_id, stats):
    """Send one query to ``server``; False (and the server marked dead) when its socket fails."""
    try:
        if server.sock is None:
            server.open()
        query_id = next_id() & 0xFFFF
        n = dns_codec.build_query(query, query_id, name)
        server.sock.send(memoryview(query)[:n])
    except OSError as exc:
        if not _is_eagain(exc):
            stats.socket_errors += 1
            server.dead = True
            server.close()
        return False
    server.ids.append(query_id)
    stats.queries += 1
    return True


async def _collect(pool, name, until_ms, stats):
    """Poll every open socket until one gives a usable answer or ``until_ms``.

    Returns ``(kind, addresses, ttl_s, server)`` for the first answer that is not
    stray, or None when the attempt ran out of time (or every socket died).
    """
    nap = _POLL_FIRST_MS
    while True:
        for server in pool:
            found = _receive(server, name, stats)
            if found is not None:
                return found
        now = monotonic_ms()
        if now >= until_ms or all(s.sock is None for s in pool):
            return None
        await sleep_ms(min(nap, until_ms - now))
        if nap < _POLL_MAX_MS:
            nap *= 2


def _receive(server, name, stats):
    """Drain one server's socket; the first answer to one of our ids, else None."""
    while server.sock is not None:
        try:
            # recv, not recv_into: MicroPython sockets have none (and readinto is stream-only).
            data = server.sock.recv(_RECV_MAX)
        except OSError as exc:
            if _is_eagain(exc):
                return None
            # ECONNREFUSED (nothing listens on that port) or worse: give up on this server.
            stats.socket_errors += 1
            server.dead = True
            server.close()
            return ("error", None, None, server)
        query_id = dns_codec.response_id(data)
        if query_id < 0 or query_id not in server.ids:
            stats.stray += 1
            continue
        try:
            rcode, addresses, ttl_s = dns_codec.parse_response(data, query_id, name)
        except ValueError:
            stats.malformed += 1
            return ("error", None, None, server)
        stats.answers += 1
        return (dns_codec.answer_kind(rcode, addresses), addresses, ttl_s, server)
    return None
