"""LAN token codec (pure): the compact signed token and the signed-request string.

One code path for the device (``device.lan.token`` verifies) and the issuers
(``cloud_shim.tokens``, ``brickproof token``).

Keys (all HMAC-SHA256, ``device.lan.hmac256``)::

    root key   32 random bytes per device, ``<id>.lankey`` from ``brickproof provision``
    gen key    HMAC(root, "bp-lan-gen" 0x00 gen:u16)       signs generation ``gen``'s tokens
    request    HMAC(gen key, "bp-lan-req" 0x00 tid)         per token; handed to the client
    key                                                     with the token, signs its requests

Token: ``"bp1." + base64url(payload || tag)`` (no padding, canonical encoding only)::

    payload  version u8 (1) | key_gen u16 | scopes u8 (bit 0 read, 1 control, 2 admin)
             | iat u32 | exp u32 (wall seconds, UTC) | tid 8 bytes | id_len u8 | device id
             (big-endian; the id is 1-64 of ``A-Z a-z 0-9 . _ -``)
    tag      HMAC(gen key, "bp-lan-tok" 0x00 payload), 32 bytes

About 90 characters. Scopes are explicit: ``admin`` does not imply ``control``.

Signed request (control and admin): headers ``x-bp-boot`` (the device's boot id),
``x-bp-ts`` (the device's monotonic ms in that boot; ``GET /v1/info`` tells both),
``x-bp-nonce`` (8-32 of ``A-Z a-z 0-9 _ -``, never reused) and ``x-bp-sig`` =
base64url(HMAC(request key, canonical)) where canonical is, joined by ``\\n``::

    "BP1-REQ", METHOD, request-target (path and query as sent), boot, ts, nonce,
    lower-case hex SHA-256 of the body (of b"" when there is none)
"""

import binascii
import hashlib
import struct

from device.lan.hmac256 import DIGEST_LEN, equal, hmac_sha256

VERSION = 1
PREFIX = "bp1."
SCOPES = ("read", "control", "admin")  # bit i of the scopes byte
TID_LEN = 8
MAX_ID_LEN = 64
MAX_GEN = 65535
_HEAD = ">BHBII"  # version, key_gen, scopes, iat, exp
_HEAD_LEN = 12
MAX_TOKEN_CHARS = len(PREFIX) + ((_HEAD_LEN + TID_LEN + 1 + MAX_ID_LEN + DIGEST_LEN) * 4 + 2) // 3
_B64U = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
NONCE_MIN = 8
NONCE_MAX = 32


class TokenError(ValueError):
    """A token or header that is not well formed (truncated, garbage, unknown version)."""


# -- base64url ------------------------------------------------------------------


def b64u_encode(data: bytes) -> str:
    text = binascii.b2a_base64(data).decode().strip()
    return text.rstrip("=").replace("+", "-").replace("/", "_")


def b64u_decode(text: str) -> bytes:
    """Strict: only the URL-safe alphabet, no padding, and only the canonical spelling."""
    if len(text) % 4 == 1:
        raise TokenError("bad base64url length")
    for ch in text:
        if ch not in _B64U:
            raise TokenError("bad base64url character")
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        data = binascii.a2b_base64(padded)
    except ValueError:
        raise TokenError("bad base64url") from None
    if b64u_encode(data) != text:  # spare bits set: another spelling of the same bytes
        raise TokenError("non-canonical base64url")
    return data  # type: ignore[no-any-return]


# -- scopes ---------------------------------------------------------------------


def scope_mask(names) -> int:  # type: ignore[no-untyped-def]
    """``["read", "control"]`` -> 3; ``TokenError`` for an unknown or empty list."""
    mask = 0
    for name in names:
        if name not in SCOPES:
            raise TokenError("unknown scope %r: use %s" % (name, ", ".join(SCOPES)))
        mask |= 1 << SCOPES.index(name)
    if not mask:
        raise TokenError("a token needs at least one scope")
    return mask


def scope_names(mask: int) -> list:
    return [SCOPES[i] for i in range(len(SCOPES)) if mask & (1 << i)]


# -- keys -----------------------------------------------------------------------


def gen_key(root_key: bytes, gen: int) -> bytes:
    return hmac_sha256(root_key, b"bp-lan-gen\x00" + struct.pack(">H", gen))


def request_key(generation_key: bytes, tid: bytes) -> bytes:
    return hmac_sha256(generation_key, b"bp-lan-req\x00" + tid)


def check_device_id(device_id: str) -> None:
    if not 0 < len(device_id) <= MAX_ID_LEN:
        raise TokenError("device id must be 1-%d characters" % MAX_ID_LEN)
    for ch in device_id:
        if ch not in _ID_CHARS:
            raise TokenError("device id %r: use letters, digits, '.', '_' or '-'" % device_id)


# -- tokens ---------------------------------------------------------------------


def pack_payload(device_id: str, scopes: int, iat: int, exp: int, tid: bytes, key_gen: int) -> bytes:
    check_device_id(device_id)
    if not 0 < scopes < (1 << len(SCOPES)):
        raise TokenError("bad scopes mask %r" % scopes)
    if not 0 <= iat < exp <= 0xFFFFFFFF:
        raise TokenError("need 0 <= iat < exp < 2**32 (wall seconds)")
    if len(tid) != TID_LEN or not 0 <= key_gen <= MAX_GEN:
        raise TokenError("tid must be %d bytes and key_gen 0..%d" % (TID_LEN, MAX_GEN))
    ident = device_id.encode()
    return struct.pack(_HEAD, VERSION, key_gen, scopes, iat, exp) + tid + bytes((len(ident),)) + ident


def mint(root_key: bytes, device_id: str, scopes: int, iat: int, exp: int, tid: bytes, key_gen: int = 0) -> str:
    """The token string for these claims, signed with generation ``key_gen``'s key."""
    payload = pack_payload(device_id, scopes, iat, exp, tid, key_gen)
    tag = hmac_sha256(gen_key(root_key, key_gen), b"bp-lan-tok\x00" + payload)
    return PREFIX + b64u_encode(payload + tag)


def parse(token: str) -> tuple:
    """``(claims, payload, tag)`` of a well-formed token, MAC not checked; else ``TokenError``.

    claims: ``{"v", "key_gen", "scopes" (mask), "iat", "exp", "tid" (hex), "device"}``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.startswith(PREFIX):
        raise TokenError("not a bp1 token")
    raw = b64u_decode(token[len(PREFIX) :])
    min_len = _HEAD_LEN + TID_LEN + 2 + DIGEST_LEN
    if len(raw) < min_len:
        raise TokenError("token truncated")
    version, key_gen, scopes, iat, exp = struct.unpack(_HEAD, raw[:_HEAD_LEN])
    if version != VERSION:
        raise TokenError("token version %d unknown" % version)
    at = _HEAD_LEN + TID_LEN
    id_len = raw[at]
    if len(raw) != at + 1 + id_len + DIGEST_LEN:
        raise TokenError("token length does not match its device id")
    ident = raw[at + 1 : at + 1 + id_len]
    for byte in ident:
        if byte >= 128 or chr(byte) not in _ID_CHARS:
            raise TokenError("bad device id in token")
    if not 0 < scopes < (1 << len(SCOPES)) or not iat < exp:
        raise TokenError("bad scopes or validity in token")
    tid = raw[_HEAD_LEN:at]
    claims = {
        "v": version,
        "key_gen": key_gen,
        "scopes": scopes,
        "iat": iat,
        "exp": exp,
        "tid": binascii.hexlify(tid).decode(),
        "device": ident.decode(),
    }
    return claims, raw[:-DIGEST_LEN], raw[-DIGEST_LEN:]


def tag_ok(generation_key: bytes, payload: bytes, tag: bytes) -> bool:
    return equal(hmac_sha256(generation_key, b"bp-lan-tok\x00" + payload), tag)


# -- signed requests ------------------------------------------------------------


def check_nonce(nonce: str) -> None:
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise TokenError("nonce must be %d-%d characters" % (NONCE_MIN, NONCE_MAX))
    for ch in nonce:
        if ch not in _B64U:
            raise TokenError("nonce: use letters, digits, '_' or '-'")


def canonical(method: str, target: str, boot: int, ts: int, nonce: str, body: bytes) -> bytes:
    digest = binascii.hexlify(hashlib.sha256(body or b"").digest()).decode()
    return "\n".join(("BP1-REQ", method, target, str(boot), str(ts), nonce, digest)).encode()


def sign(req_key: bytes, method: str, target: str, boot: int, ts: int, nonce: str, body: bytes) -> str:
    """``x-bp-sig`` for a request."""
    return b64u_encode(hmac_sha256(req_key, canonical(method, target, boot, ts, nonce, body)))
