"""HMAC-SHA256 (RFC 2104) on ``hashlib.sha256``, and a constant-time compare.

MicroPython's unix and board VMs have ``hashlib.sha256`` but no ``hmac`` module,
so the LAN tokens carry their own: one code path on both interpreters, checked
against CPython's ``hmac`` and the RFC 4231 vectors by the tests.
"""

import hashlib

BLOCK = 64  # SHA-256's block size in bytes
DIGEST_LEN = 32


def _pad(key: bytes, byte: int) -> bytes:
    out = bytearray(BLOCK)
    for i in range(len(key)):
        out[i] = key[i] ^ byte
    for i in range(len(key), BLOCK):
        out[i] = byte
    return bytes(out)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """The 32-byte HMAC-SHA256 of ``message`` under ``key``."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    inner = hashlib.sha256(_pad(key, 0x36))
    inner.update(message)
    outer = hashlib.sha256(_pad(key, 0x5C))
    outer.update(inner.digest())
    return outer.digest()  # type: ignore[no-any-return]


def equal(a: bytes, b: bytes) -> bool:
    """Whether ``a == b``, taking the same time wherever they differ (MACs have public lengths)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
