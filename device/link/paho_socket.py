"""CPython only: the sockets under ``PahoClient``, dialled on the event loop.

paho's own ``connect`` calls ``socket.create_connection`` and a blocking TLS
handshake; here the TCP connect (``loop.sock_connect`` to an IP: no resolver,
no thread) and the handshake (``do_handshake`` retried on readiness) never
block the loop. The TLS ``server_hostname`` is the broker's name, not the IP we
dialled: SNI and certificate verification use it.

``WatchedSocket`` is what paho then reads and writes: it counts bytes and
PINGREQs, remembers why the socket failed (a TLS alert, a reset, EOF), keeps
the first bytes received (a CONNACK, or proof the peer is something else) and
can be killed so paho's own loss path runs. It also buffers both ways, because
paho makes one ``send`` per packet and three ``recv`` per packet (type, length,
body): sends are gathered until ``flush()`` (the owner flushes when the event
loop says writable, so a burst of publishes leaves in one write), and reads take
what the kernel has in one ``recv``, handed out as paho asks (``pending()``
counts it: the fd will not signal bytes we already hold).

PUBACKs are most of what a draining device reads, and paho spends more on
each (three reads, a packet dict, reason-code and property objects) than on
the publish it answers: ``fill()`` reads ahead and ``take_pubacks()`` hands
the owner the packet ids of the whole PUBACKs at the front of what is held,
consumed, so only other packets go through paho. A failure or EOF met by
``fill()`` is kept for paho's next ``recv``: paho's loss path stays the one.
"""

import asyncio
import errno
import socket

from device.compat import IS_MICROPYTHON, monotonic_ms, wait_for_ms
from device.linkerrors import ConnectError, NotOurBrokerError, TlsError

# The assert also tells mypy's MicroPython pass (always_true = IS_MICROPYTHON) to skip the rest.
assert not IS_MICROPYTHON, "device.link.paho_socket needs CPython"
try:
    import ssl
except ImportError:
    raise ImportError("device.link.paho_socket needs the ssl module") from None

_HANDSHAKE_STEPS = 64  # a handshake takes a few round trips; the deadline bounds it too
_PINGREQ = 0xC0
_RETRY = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_SEND_BUFFER = 65536  # bytes gathered before send() pushes back (paho then keeps its packets queued)
_RECV_CHUNK = 65536
_PUBACK = 0x40  # MQTT 3.1.1 PUBACK: 0x40, remaining length 2, packet id (big-endian)
_EOF = b""


def left_ms(deadline: int) -> int:
    return max(0, deadline - monotonic_ms())


class WatchedSocket:
    """The socket paho reads and writes (paho's ``SocketLike``)."""

    def __init__(self, sock: socket.socket, counters: dict) -> None:
        self.sock = sock
        self.counters = counters
        self.error: OSError | None = None
        self.eof = False
        self.killed = ""  # set by kill(): every later recv/send fails with it
        self.head = b""  # the first 4 bytes received
        self._out = bytearray()  # accepted from paho, not yet written to the socket
        self._in = b""  # read from the socket, not yet handed to paho
        self._in_pos = 0
        self._failed: OSError | bytes | None = None  # met by fill(): paho's next recv gets it

    def kill(self, reason: str) -> None:
        self.killed = reason

    def recv(self, size: int) -> bytes:
        if self.killed:
            raise ConnectionAbortedError(errno.ECONNABORTED, self.killed)
        held = self._in
        if self._in_pos < len(held):
            start = self._in_pos
            self._in_pos = start + size
            return held[start : start + size]
        failed = self._failed
        if failed is not None:
            self._failed = None
            if failed is _EOF:
                return _EOF
            raise failed  # type: ignore[misc]
        try:
            data = self.sock.recv(max(size, _RECV_CHUNK))
        except _RETRY:
            raise
        except OSError as exc:  # ssl.SSLError included: a TLS alert shows up here
            self.error = exc
            raise
        if not data:
            self.eof = True
            return data
        self.counters["bytes_in"] += len(data)
        if len(self.head) < 4:
            self.head += data[: 4 - len(self.head)]
        if len(data) <= size:
            self._in = b""
            self._in_pos = 0
            return data
        self._in = data
        self._in_pos = size
        return data[:size]

    def fill(self) -> bool:
        """Read what the kernel has when nothing is held; True when there is something for the owner.

        An error or EOF is not raised here: it is kept for paho's next ``recv`` (True).
        """
        if self._in_pos < len(self._in) or self._failed is not None:
            return True
        if self.killed:
            return True  # paho's next recv fails with it
        try:
            data = self.sock.recv(_RECV_CHUNK)
        except _RETRY:
            return False
        except OSError as exc:
            self.error = exc
            self._failed = exc
            return True
        if not data:
            self.eof = True
            self._failed = _EOF
            return True
        self.counters["bytes_in"] += len(data)
        if len(self.head) < 4:
            self.head += data[: 4 - len(self.head)]
        self._in = data
        self._in_pos = 0
        return True

    def take_pubacks(self) -> list:
        """The packet ids of the whole PUBACKs at the front of the held bytes, taken out of them."""
        held = self._in
        pos = start = self._in_pos
        end = len(held) - 3
        while pos < end and held[pos] == _PUBACK and held[pos + 1] == 2:
            pos += 4
        if pos == start:
            return []
        self._in_pos = pos
        ids = [(held[i + 2] << 8) | held[i + 3] for i in range(start, pos, 4)]
        if pos >= len(held):
            self._in = b""
            self._in_pos = 0
        return ids

    def send(self, data: bytes) -> int:
        if self.killed:
            raise ConnectionAbortedError(errno.ECONNABORTED, self.killed)
        if len(self._out) >= _SEND_BUFFER and self.flush() >= _SEND_BUFFER:
            raise BlockingIOError(errno.EAGAIN, "send buffer full")
        self._out += data
        if len(data) == 2 and data[0] == _PINGREQ:  # paho sends each packet with its own send()
            self.counters["pings"] += 1
        return len(data)

    def buffered(self) -> int:
        """Bytes accepted from paho and not yet written."""
        return len(self._out)

    def flush(self) -> int:
        """Write what the socket takes now; return the bytes still buffered. Raises OSError on failure."""
        out = self._out
        while out and not self.killed:
            try:
                sent = self.sock.send(out)
            except _RETRY:
                break
            except OSError as exc:
                self.error = exc
                raise
            self.counters["bytes_out"] += sent
            del out[:sent]
        return len(out)

    def pending(self) -> int:
        """Bytes read but not handed out (ours, and TLS's decrypted ones, and a kept failure): the fd
        will not signal them."""
        held = len(self._in) - self._in_pos + (self._failed is not None)
        if isinstance(self.sock, ssl.SSLSocket):
            held += self.sock.pending()
        return max(0, held)

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def close(self) -> None:
        if not self.killed:  # best effort: paho closes right after writing DISCONNECT
            try:
                self.flush()
            except OSError:
                pass
        self.sock.close()


async def open_tcp(ip: str, port: int, deadline: int, timeout_ms: int) -> socket.socket:
    """A connected non-blocking TCP socket to ``ip`` (an address, never a name)."""
    try:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        socket.inet_pton(family, ip)  # asyncio would resolve a name in a worker thread
    except OSError:
        raise ConnectError("%r is not an IP address" % (ip,), errno.EINVAL) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    ok = False
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await wait_for_ms(asyncio.get_running_loop().sock_connect(sock, (ip, port)), left_ms(deadline))
        ok = True
    except asyncio.TimeoutError:
        raise ConnectError("TCP connect to %s:%d timed out after %d ms" % (ip, port, timeout_ms), 0) from None
    except OSError as exc:
        raise ConnectError("TCP connect to %s:%d failed: %s" % (ip, port, exc.strerror), exc.errno or 0) from None
    finally:
        if not ok:
            sock.close()
    return sock


def tls_context(files: dict) -> ssl.SSLContext:
    """Verify the broker against ``files["ca"]``; present ``cert``/``key`` when given (mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=files["ca"])
        if files.get("cert"):
            context.load_cert_chain(files["cert"], files.get("key") or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsError("cannot load the TLS files %s: %s" % (files, exc)) from None
    return context


async def open_tls(
    raw: socket.socket, context: ssl.SSLContext, hostname: str, deadline: int, timeout_ms: int
) -> ssl.SSLSocket:
    """Handshake over ``raw`` (consumed either way), verifying the certificate for ``hostname``."""
    try:
        sock = context.wrap_socket(raw, server_hostname=hostname, do_handshake_on_connect=False)
    except (OSError, ValueError) as exc:
        raw.close()
        raise TlsError("cannot start TLS to %s: %s" % (hostname, exc)) from None
    ok = False
    try:
        for _ in range(_HANDSHAKE_STEPS):
            try:
                sock.do_handshake()
                ok = True
                return sock
            except ssl.SSLWantReadError:
                await _fd_ready(sock.fileno(), False, deadline)
            except ssl.SSLWantWriteError:
                await _fd_ready(sock.fileno(), True, deadline)
        raise TlsError("TLS handshake with %s did not finish in %d steps" % (hostname, _HANDSHAKE_STEPS))
    except ssl.SSLCertVerificationError as exc:
        raise TlsError("certificate of %s did not verify: %s" % (hostname, exc.verify_message)) from None
    except ssl.SSLError as exc:
        raise TlsError("TLS handshake with %s failed: %s" % (hostname, exc.reason or exc)) from None
    except asyncio.TimeoutError:
        raise NotOurBrokerError("no TLS handshake answer from %s within %d ms" % (hostname, timeout_ms)) from None
    except OSError as exc:
        raise TlsError("connection lost during the TLS handshake with %s: %s" % (hostname, exc)) from None
    finally:
        if not ok:
            sock.close()


async def _fd_ready(fd: int, write: bool, deadline: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await wait_for_ms(ready, left_ms(deadline))
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
