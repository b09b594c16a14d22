"""The cloud's LAN token issuer (the same code path as ``brickproof token``).

    issued = issue(root_key, "th-01", ["read", "control"], days=365)
    headers = sign_headers(issued, "POST", "/v1/thermostat", body, boot=info["boot"], ts_ms=info["now_ms"])

``issue`` returns ``{"token", "request_key" (hex), "device", "scopes", "iat", "exp",
"tid", "key_gen"}``: the client keeps the token and its request key (both secret to
it); the device needs neither, it verifies from its own root key (format in
``device/lan/tokencodec.py``). ``TokenIssuer`` adds what the cloud keeps per device:
the key generation and the revoked token ids, pushed to the device as desired
shadow state (``lan.key_gen``, ``lan.revoked``; policy cloud_wins).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from device.lan import tokencodec as codec
from device.lan import tokenkeys
from device.lan.token import read_key

DEFAULT_DAYS = 365  # long offline validity: the owner's LAN must keep working through an outage
LANKEY_SUFFIX = ".lankey"


def lankey_path(bundle_dir: str | Path, device_id: str) -> Path:
    return Path(bundle_dir) / (device_id + LANKEY_SUFFIX)


def load_key(bundle_dir: str | Path, device_id: str) -> bytes:
    """The device's root key from a provisioning bundle (``ValueError``/``OSError`` if unusable)."""
    return read_key(str(lankey_path(bundle_dir, device_id)))


def issue(
    root_key: bytes,
    device_id: str,
    scopes: list[str] | tuple[str, ...] = ("read", "control"),
    days: float = DEFAULT_DAYS,
    now_s: int | None = None,
    key_gen: int = 0,
    tid: bytes | None = None,
) -> dict[str, Any]:
    """A token for ``device_id`` valid ``days`` from ``now_s`` (default: now), with its request key.

    Raises ``codec.TokenError`` for a bad device id, scope, or validity.
    """
    iat = int(time.time()) if now_s is None else int(now_s)
    if days <= 0:
        raise codec.TokenError("days must be > 0")
    exp = iat + max(1, int(days * 86400))
    tid = secrets.token_bytes(codec.TID_LEN) if tid is None else tid
    mask = codec.scope_mask(list(scopes))
    token = codec.mint(root_key, device_id, mask, iat, exp, tid, key_gen)
    req_key = codec.request_key(codec.gen_key(root_key, key_gen), tid)
    return {
        "token": token,
        "request_key": req_key.hex(),
        "device": device_id,
        "scopes": codec.scope_names(mask),
        "iat": iat,
        "exp": exp,
        "tid": tid.hex(),
        "key_gen": key_gen,
    }


def new_nonce() -> str:
    return secrets.token_urlsafe(12)  # 16 characters of the base64url alphabet


def sign_headers(
    issued: dict[str, Any],
    method: str,
    target: str,
    body: bytes = b"",
    boot: int | None = None,
    ts_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Request headers (lower-case names): the bearer token, plus the signature when ``boot`` and
    ``ts_ms`` (the device's, from ``GET /v1/info``) are given. Read requests need no signature."""
    headers = {"authorization": "Bearer " + issued["token"]}
    if boot is None or ts_ms is None:
        return headers
    nonce = new_nonce() if nonce is None else nonce
    codec.check_nonce(nonce)
    req_key = bytes.fromhex(issued["request_key"])
    sig = codec.sign(req_key, method, target, int(boot), int(ts_ms), nonce, body)
    headers.update({"x-bp-boot": str(boot), "x-bp-ts": str(ts_ms), "x-bp-nonce": nonce, "x-bp-sig": sig})
    return headers


class TokenIssuer:
    """The cloud's side: keys per device (given, or read from a provisioning bundle), the current
    key generation, and the revoked ids until their tokens expire anyway."""

    def __init__(self, keys: dict[str, bytes] | None = None, bundle_dir: str | Path | None = None) -> None:
        self._keys = dict(keys or {})
        self._bundle = None if bundle_dir is None else Path(bundle_dir)
        self._gen: dict[str, int] = {}
        self._revoked: dict[str, dict[str, int]] = {}  # device -> {tid: exp}
        self.issued_count = 0

    def __repr__(self) -> str:
        return "<TokenIssuer devices=%d keys=hidden>" % len(self._keys)

    def key(self, device_id: str) -> bytes:
        key = self._keys.get(device_id)
        if key is None:
            if self._bundle is None:
                raise KeyError("no LAN key for device %r" % device_id)
            key = self._keys[device_id] = load_key(self._bundle, device_id)
        return key

    def issue(
        self,
        device_id: str,
        scopes: list[str] | tuple[str, ...] = ("read", "control"),
        days: float = DEFAULT_DAYS,
        now_s: int | None = None,
    ) -> dict[str, Any]:
        issued = issue(self.key(device_id), device_id, scopes, days, now_s, self._gen.get(device_id, 0))
        self.issued_count += 1
        return issued

    def revoke(self, device_id: str, issued: dict[str, Any]) -> None:
        self._revoked.setdefault(device_id, {})[issued["tid"]] = int(issued["exp"])

    def rotate(self, device_id: str) -> int:
        """Retire every token issued so far for the device; returns the new generation."""
        gen = self._gen.get(device_id, 0) + 1
        if gen > codec.MAX_GEN:
            raise codec.TokenError("key generations exhausted: provision a new key")
        self._gen[device_id] = gen
        return gen

    def desired_state(self, device_id: str, now_s: int | None = None) -> dict[str, Any]:
        """The shadow keys to set desired for the device (expired revocations dropped)."""
        now = int(time.time()) if now_s is None else now_s
        live = self._revoked.get(device_id, {})
        for tid in [t for t, exp in live.items() if exp <= now]:
            del live[tid]
        return {tokenkeys.REVOKED: sorted(live), tokenkeys.KEY_GEN: self._gen.get(device_id, 0)}

    def push(self, shadow_service: Any, device_id: str, now_s: int | None = None) -> int:
        """Set the desired state on a ``cloud_shim.shadow_service.ShadowService``; its new version."""
        return int(shadow_service.set_desired(device_id, self.desired_state(device_id, now_s)))


def new_key() -> bytes:
    return os.urandom(32)
