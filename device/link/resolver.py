"""Name resolution for the link: ``await resolver.resolve(host, budget_ms) -> [ip, ...]``.

Every resolver raises ``DnsError(kind)`` (``nxdomain``, ``empty``, ``servfail``,
``timeout``, ``error``) and never takes longer than ``budget_ms`` (real time).
A host that is already an IP literal resolves to itself, without a query.

* ``UdpResolver(servers)``  our own non-blocking UDP client (``device.link.dns``):
  the one to use on MicroPython, where ``getaddrinfo`` blocks the whole VM.
  ``servers``: ``["10.0.0.1", "10.0.0.2:5353"]``, tried in turn.
* ``SystemResolver()``      CPython: the OS resolver through ``loop.getaddrinfo``
  (a worker thread), cut off at the budget. On MicroPython: IP literals only.
* ``StaticResolver(mapping)`` for tests: ``{host: [ip, ...] | kind | DnsError}``,
  changeable at runtime with ``set``.

Each keeps ``last_ttl_s`` (the TTL of its last answer, or None) and ``counters``.
"""

from device.compat import IS_MICROPYTHON, wait_for_ms
from device.core.dns_codec import parse_ipv4
from device.errors import ConfigError
from device.link import dns
from device.linkerrors import DnsError

DNS_KINDS = ("nxdomain", "empty", "servfail", "timeout", "error")


def is_ip_literal(host):
    """True for a dotted-quad IPv4 address or an IPv6 literal (``::1``, ``[::1]``)."""
    if parse_ipv4(host) is not None:
        return True
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if text.count(":") < 2:
        return False
    for c in text.lower():
        if c not in "0123456789abcdef:.":
            return False
    return True


def _literal(host):
    return host[1:-1] if host.startswith("[") else host


class _ResolverBase:
    def __init__(self):
        self.last_ttl_s = None
        self.counters = {"lookups": 0, "literals": 0, "answers": 0, "failures": 0}

    async def resolve(self, host, budget_ms):
        """``[ip, ...]`` (at least one), or ``DnsError(kind)`` within ``budget_ms``."""
        if is_ip_literal(host):
            self.counters["literals"] += 1
            return [_literal(host)]
        self.counters["lookups"] += 1
        try:
            addresses, ttl_s = await self._lookup(host, budget_ms)
        except DnsError:
            self.counters["failures"] += 1
            raise
        if not addresses:
            self.counters["failures"] += 1
            raise DnsError("%s: no addresses" % host, "empty")
        self.counters["answers"] += 1
        self.last_ttl_s = ttl_s
        return addresses

    async def _lookup(self, host, budget_ms):
        raise NotImplementedError


class UdpResolver(_ResolverBase):
    """Our own UDP client against ``servers`` (``"ip"`` or ``"ip:port"``)."""

    def __init__(self, servers, tries=2, id_source=None):
        super().__init__()
        parsed = []
        for i, text in enumerate(servers):
            try:
                parsed.append(dns.parse_server(text))
            except ValueError as exc:
                raise ConfigError("link.dns_servers[%d]" % i, str(exc)) from None
        if not parsed:
            raise ConfigError("link.dns_servers", "at least one server is needed")
        self.servers = parsed
        self.tries = tries
        self.id_source = id_source
        self.stats = dns.DnsStats()

    async def _lookup(self, host, budget_ms):
        return await dns.query_a(host, self.servers, budget_ms, self.tries, self.id_source, self.stats)


# getaddrinfo's EAI_* codes (glibc values; musl and macOS differ, so read them from socket when it has them).
_EAI_KINDS = (
    ("EAI_NONAME", -2, "nxdomain"),
    ("EAI_NODATA", -5, "empty"),
    ("EAI_ADDRFAMILY", -9, "empty"),
    # glibc gives EAI_AGAIN both for SERVFAIL and for servers that never answered.
    ("EAI_AGAIN", -3, "timeout"),
    ("EAI_FAIL", -4, "servfail"),
)


def gai_kind(code):
    """The DnsError kind for a ``socket.gaierror`` code from ``getaddrinfo``."""
    import socket

    for attr, fallback, kind in _EAI_KINDS:
        if code == getattr(socket, attr, fallback):
            return kind
    return "error"


class SystemResolver(_ResolverBase):
    """CPython's ``getaddrinfo`` in the loop's worker thread, bounded by the budget.

    On a timeout the worker thread keeps waiting for the OS resolver in the
    background; only the caller is released. On MicroPython it resolves IP
    literals only (any name is ``DnsError("error")``): ``getaddrinfo`` would block the VM.
    """

    async def _lookup(self, host, budget_ms):
        if IS_MICROPYTHON:
            # IP literals never get here; a name would block the whole VM in getaddrinfo.
            raise DnsError("%s: no DNS servers configured (link.dns_servers)" % host, "error")
        import asyncio
        import socket

        # CPython only (the board stubs have neither get_running_loop nor gaierror).
        loop = asyncio.get_running_loop()  # type: ignore[attr-defined]
        try:
            infos = await wait_for_ms(
                loop.getaddrinfo(host, None, family=socket.AF_INET, type=socket.SOCK_STREAM), budget_ms
            )
        except asyncio.TimeoutError:
            raise DnsError("%s: no answer within %d ms" % (host, budget_ms), "timeout") from None
        except socket.gaierror as exc:  # type: ignore[attr-defined]
            code = exc.args[0] if exc.args else 0
            raise DnsError("%s: %s" % (host, exc), gai_kind(code)) from None
        except (OSError, UnicodeError) as exc:
            raise DnsError("%s: %s" % (host, exc), "error") from None
        addresses = []
        for info in infos:
            address = info[4][0]
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise DnsError("%s: no addresses" % host, "empty")
        return addresses, None


class StaticResolver(_ResolverBase):
    """A table for tests: ``{host: [ip, ...] | "nxdomain" | ... | DnsError}``; unknown hosts are nxdomain.

    ``queries[host]`` counts lookups (literals are not looked up).
    """

    def __init__(self, mapping=None, ttl_s=60):
        super().__init__()
        self.table = dict(mapping or {})
        self.ttl_s = ttl_s
        self.queries = {}

    def set(self, host, value):
        self.table[host] = value

    async def _lookup(self, host, budget_ms):
        self.queries[host] = self.queries.get(host, 0) + 1
        value = self.table.get(host, "nxdomain")
        if isinstance(value, DnsError):
            raise value
        if isinstance(value, str):
            if value not in DNS_KINDS:
                raise ValueError("unknown DNS failure kind %r" % value)
            raise DnsError("%s: %s (static)" % (host, value), value)
        return list(value), self.ttl_s
