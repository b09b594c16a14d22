"""ECDSA P-256 signature verification in pure Python (runs under MicroPython).

A device holds only the public key and only ever verifies, so this module has
no signing, no key generation and no secrets: constant time does not matter
here, correctness and "never raise on hostile input" do.

Points are kept in Jacobian coordinates (X, Y, Z) with x = X/Z^2, y = Y/Z^3,
so the double-scalar multiplication u1*G + u2*Q (Shamir's trick: one pass over
the bits of both scalars with G, Q and G+Q precomputed) needs no modular
inverse until the end. MicroPython has no ``pow(x, -1, m)``, hence ``_inverse``
(extended Euclid). The point at infinity is any point with Z == 0.
"""

import binascii
import hashlib

from device.ota.steps import run

ALG = "ecdsa-p256-sha256"
_BITS_PER_STEP = 16  # verify_steps yields 16 times: well under 100 ms per step on an ESP32

# NIST P-256 (secp256r1), a = -3.
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

_HEX = "0123456789abcdef"


def _inverse(a, m):
    """a^-1 mod m for prime m and a not a multiple of m (extended Euclid)."""
    a = a % m
    lo_coef, hi_coef = 1, 0
    low, high = a, m
    while low > 1:
        q = high // low
        lo_coef, hi_coef = hi_coef - lo_coef * q, lo_coef
        low, high = high - low * q, low
    return lo_coef % m


def on_curve(x: int, y: int) -> bool:
    """True when (x, y) is an affine point of P-256 (the point at infinity has no affine form)."""
    if not (0 <= x < _P and 0 <= y < _P):
        return False
    return (y * y - (x * x * x - 3 * x + _B)) % _P == 0


def _double(pt):
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return (0, 1, 0)
    p = _P
    delta = z1 * z1 % p
    gamma = y1 * y1 % p
    beta = x1 * gamma % p
    alpha = 3 * (x1 - delta) * (x1 + delta) % p  # a = -3 makes 3x^2 + a*z^4 factor like this
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return (x3, y3, z3)


def _add(pt1, pt2):
    x1, y1, z1 = pt1
    x2, y2, z2 = pt2
    if z1 == 0:
        return pt2
    if z2 == 0:
        return pt1
    p = _P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if h == 0:
        if r == 0:
            return _double(pt1)
        return (0, 1, 0)  # P + (-P)
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = h * z1 * z2 % p
    return (x3, y3, z3)


def _shamir(u1, u2, qx, qy):
    """u1*G + u2*Q in Jacobian coordinates: one double per bit, at most one add.

    A step generator (``device.ota.steps``): yields every ``_BITS_PER_STEP`` bits.
    """
    g = (_GX, _GY, 1)
    q = (qx, qy, 1)
    table = (None, g, q, _add(g, q))
    acc = (0, 1, 0)
    bit = 256  # u1, u2 < n < 2^256; doubling the point at infinity is free
    while bit > 0:
        bit -= 1
        acc = _double(acc)
        index = ((u1 >> bit) & 1) | (((u2 >> bit) & 1) << 1)
        if index:
            acc = _add(acc, table[index])
        if bit % _BITS_PER_STEP == 0:
            yield
    return acc


def _int_be(data):
    return int.from_bytes(data, "big")


def verify(x: int, y: int, digest: bytes, sig: bytes) -> bool:
    """True when ``sig`` (64 bytes r||s) is a valid signature of the 32-byte ``digest`` by (x, y).

    False, never an exception, for any bad input: wrong types or lengths, a
    public key that is not on the curve, r or s outside [1, n-1].
    """
    return run(verify_steps(x, y, digest, sig))  # type: ignore[no-any-return]


def verify_steps(x, y, digest, sig):  # type: ignore[no-untyped-def]
    """``verify`` as a step generator (``device.ota.steps``): about 16 steps, returns the verdict."""
    try:
        verdict = yield from _verify(x, y, digest, sig)
    except Exception:  # hostile input must never crash the updater
        return False
    return verdict


def _verify(x, y, digest, sig):
    if not isinstance(x, int) or not isinstance(y, int) or isinstance(x, bool) or isinstance(y, bool):
        return False
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        return False
    if not isinstance(sig, (bytes, bytearray)) or len(sig) != 64:
        return False
    if not on_curve(x, y):
        return False
    r = _int_be(sig[:32])
    s = _int_be(sig[32:])
    if not (0 < r < _N and 0 < s < _N):
        return False
    e = _int_be(digest)  # a 256-bit digest for a 256-bit n: no truncation
    w = _inverse(s, _N)
    u1 = e * w % _N
    u2 = r * w % _N
    rx, _, rz = yield from _shamir(u1, u2, x, y)
    if rz == 0:
        return False
    zinv = _inverse(rz, _P)
    ax = rx * zinv * zinv % _P
    return ax % _N == r


def _hex_int(text, name):
    if not isinstance(text, str) or len(text) != 64:
        raise ValueError(name + " must be 64 lowercase hex digits")
    for ch in text:
        if ch not in _HEX:
            raise ValueError(name + " must be 64 lowercase hex digits")
    return int(text, 16)


def key_id(x: int, y: int) -> str:
    """First 16 hex digits of sha256(X || Y), X and Y 32 bytes big-endian each."""
    raw = x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return binascii.hexlify(hashlib.sha256(raw).digest()).decode()[:16]


def load_pub(data: dict) -> tuple:
    """``(kid, x, y)`` from the public key JSON (``ota_pub.json``); ValueError when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("public key must be a JSON object")
    if data.get("alg") != ALG:
        raise ValueError("public key alg must be " + ALG)
    x = _hex_int(data.get("x"), "public key x")
    y = _hex_int(data.get("y"), "public key y")
    if not on_curve(x, y):
        raise ValueError("public key is not a point on P-256")
    kid = data.get("kid")
    if kid != key_id(x, y):
        raise ValueError("public key kid does not match its x, y")
    return kid, x, y
