"""The cloud link's branch of the error tree (drawn in ``device/errors.py``).

Kept apart so that only a device that runs its link loads these classes.
"""

from device.errors import BrickproofError


class LinkError(BrickproofError):
    """The cloud link failed. ``cause`` is a short stable word that receipts and counters use."""

    cause = "link"

    def __init__(self, message: str, cause: str = "") -> None:
        if cause:
            self.cause = cause
        super().__init__(message)


class DnsError(LinkError):
    """``kind``: ``nxdomain``, ``empty`` (no A record), ``servfail``, ``timeout`` or ``error``."""

    cause = "dns"

    def __init__(self, message: str, kind: str = "error") -> None:
        self.kind = kind
        super().__init__(message, "dns_" + kind)


class ConnectError(LinkError):
    """TCP connect failed. ``errno`` as the OS gave it (0 for a timeout we enforced)."""

    cause = "connect"

    def __init__(self, message: str, errno: int = 0, cause: str = "") -> None:
        self.errno = errno
        super().__init__(message, cause)


class TlsError(LinkError):
    cause = "tls"


class NotOurBrokerError(LinkError):
    cause = "not_our_broker"


class BrokerRefusedError(LinkError):
    """CONNACK return code ``code`` (1 protocol, 2 client id, 3 unavailable, 4 credentials, 5 not authorised)."""

    cause = "refused"

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


class ProtocolError(LinkError):
    cause = "protocol"


class LinkClosedError(LinkError):
    cause = "closed"


class LinkBusyError(LinkError):
    cause = "busy"
