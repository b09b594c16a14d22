"""Brickproof's error tree. Everything the runtime raises on purpose is one of these::

    BrickproofError
     +-- ConfigError          a board file or setting is wrong (names the path)
     +-- StoreError           the local store failed
     |    +-- StoreFullError  the byte budget is spent and the record may not be dropped
     |    +-- StoreWriteError the medium refused a write (ENOSPC, I/O error); counted
     +-- HardwareError        a driver could not talk to its part
     |    +-- SensorError     a sensor gave no usable answer
     +-- TaskError            a supervised task failed for good
     +-- LinkError            the cloud link failed (``cause``: a short word for receipts)
          +-- DnsError        a name did not resolve (``kind``: nxdomain/empty/servfail/timeout/error)
          +-- ConnectError    TCP connect failed: refused, unreachable, timed out (``errno``)
          +-- TlsError        TLS handshake failed or the certificate did not verify
          +-- NotOurBrokerError  the peer accepted TCP but did not speak MQTT as our broker does
          +-- BrokerRefusedError CONNACK with a non-zero return code (``code``)
          +-- ProtocolError   a malformed or unexpected packet from the peer
          +-- LinkClosedError the connection is gone (reset, keepalive timeout, EOF)
          +-- LinkBusyError   the in-flight window or a queue is full; try again later

The link branch is defined in ``device/linkerrors.py``, imported only by the
cloud link: a device running offline on a 128 KiB heap does not carry it.

Standard exceptions (``OSError``, ``ValueError``) are converted at the edge
with ``raise XError(...) from None``. ``CancelledError`` always propagates.
"""


class BrickproofError(Exception):
    pass


class ConfigError(BrickproofError):
    """A board file or a setting is invalid. ``path`` names where, e.g. ``hw.heater.pin``."""

    def __init__(self, path: str, message: str, source: str = "") -> None:
        self.path = path
        self.message = message
        self.source = source
        where = path if path else "(top)"
        text = where + ": " + message
        if source:
            text = source + ": " + text
        super().__init__(text)


class StoreError(BrickproofError):
    pass


class StoreFullError(StoreError):
    pass


class StoreWriteError(StoreError):
    """The storage medium refused a write (full flash, I/O error). ``errno`` as the OS gave it."""

    def __init__(self, message: str, errno: int = 0) -> None:
        self.errno = errno
        super().__init__(message)


class HardwareError(BrickproofError):
    pass


class SensorError(HardwareError):
    pass


class TaskError(BrickproofError):
    pass
