"""TCP and TLS streams for the portable MQTT client, on MicroPython and CPython.

``open_stream`` dials, sets TCP_NODELAY and (CPython) completes the TLS
handshake, converting failures at the edge: ``ConnectError`` when TCP failed,
``TlsError`` when TLS did. MicroPython's ``open_connection`` defers the
handshake to the first write or read, so the caller converts what comes out
of those with ``handshake_error``.

``ssl_context(tls)`` builds a verifying client context from the ``tls``
option (``{"ca", "cert", "key"}`` file paths, PEM or DER). The hostname given
to ``open_stream`` is what the certificate is checked against (and the SNI),
also when dialling a last-known-good IP.
"""

import asyncio
import errno

from device.compat import IS_MICROPYTHON
from device.linkerrors import ConnectError, NotOurBrokerError, TlsError

# errno values that mean TCP itself failed (the peer or the path), not TLS or MQTT.
TCP_ERRNOS = (
    getattr(errno, "ECONNREFUSED", 111),
    getattr(errno, "EHOSTUNREACH", 113),
    getattr(errno, "ENETUNREACH", 101),
    getattr(errno, "ETIMEDOUT", 110),
    getattr(errno, "EADDRNOTAVAIL", 99),
)


def errno_of(exc):
    code = getattr(exc, "errno", None)
    if code is None and exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    return code or 0


async def open_stream(ip, port, ctx, hostname, stage):
    """``(reader, writer)`` to ``ip:port``; ``stage[0]`` tracks "tcp" -> "tls" -> "open" for timeouts."""
    try:
        if ctx is not None and IS_MICROPYTHON:
            reader, writer = await asyncio.open_connection(ip, port, ssl=ctx, server_hostname=hostname)
        else:
            reader, writer = await asyncio.open_connection(ip, port)
    except OSError as exc:
        raise ConnectError("connect to %s:%d failed: %s" % (ip, port, exc), errno_of(exc)) from None
    if IS_MICROPYTHON:
        _no_delay(writer)
    if ctx is not None and not IS_MICROPYTHON:
        stage[0] = "tls"
        try:
            await writer.start_tls(ctx, server_hostname=hostname)
        except OSError as exc:  # ssl.SSLError is an OSError
            writer.close()
            raise TlsError("TLS with %s:%d failed: %s" % (ip, port, exc)) from None
        except asyncio.CancelledError:  # the connect timeout: the caller never saw this writer
            writer.close()
            raise
    stage[0] = "open"
    return reader, writer


def handshake_error(exc, ip, port, tls):
    """The LinkError for an OSError/ValueError met before CONNACK; None when it is not ours to convert."""
    if isinstance(exc, OSError):
        if errno_of(exc) in TCP_ERRNOS:
            return ConnectError("connect to %s:%d failed: %s" % (ip, port, exc), errno_of(exc))
        if tls:
            return TlsError("TLS with %s:%d failed: %s" % (ip, port, exc))
        return NotOurBrokerError("%s:%d dropped the connection before CONNACK: %s" % (ip, port, exc))
    if tls:  # MicroPython's mbedtls reports a failed verification as ValueError
        return TlsError("TLS with %s:%d failed: %s" % (ip, port, str(exc).strip()))
    return None


def _no_delay(writer):
    # CPython's asyncio sets TCP_NODELAY itself. Without it a PUBLISH can wait for the
    # broker's delayed ACK (40 ms). MicroPython names neither constant: IPPROTO_TCP 6,
    # TCP_NODELAY 1 (Linux and lwIP); a TLS socket takes no options, so best effort.
    try:
        writer.s.setsockopt(6, 1, 1)  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        pass


def ssl_context(tls):
    """A client context that verifies the broker against ``tls["ca"]`` and shows ``cert``/``key`` if given."""
    import ssl

    try:
        if IS_MICROPYTHON:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
            ctx.load_verify_locations(cadata=read_der(tls["ca"]))
            if tls.get("cert"):
                ctx.load_cert_chain(read_der(tls["cert"]), read_der(tls["key"]))
        else:
            ctx = ssl.create_default_context(cafile=tls["ca"])
            if tls.get("cert"):
                ctx.load_cert_chain(tls["cert"], tls["key"])
    except (OSError, ValueError) as exc:
        raise TlsError("cannot load the TLS files: %s" % (exc,)) from None
    return ctx


def read_der(path):
    """A certificate or key file as DER. MicroPython's mbedtls refuses PEM here, so PEM is decoded.

    Only the first PEM block is used (one certificate, one key).
    """
    with open(path, "rb") as f:
        data = f.read()
    start = data.find(b"-----BEGIN")
    if start < 0:
        return data
    body = data.find(b"\n", start) + 1
    end = data.find(b"-----END", body)
    if body <= 0 or end < 0:
        raise ValueError("malformed PEM in " + path)
    import binascii

    return binascii.a2b_base64(data[body:end].replace(b"\r", b"").replace(b"\n", b""))
