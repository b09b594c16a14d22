"""Offline verification of LAN tokens and signed requests (format: ``device.lan.tokencodec``).

    verifier = load_verifier(env, lan_cfg)      # None: no key provisioned
    claims = await verifier.authorize(method, target, headers, body, scope, peer=None)

``authorize`` returns ``{"device", "scopes", "iat", "exp", "tid", "key_gen", "signed"}``
or raises ``AuthError(status, code, message)``; checks in this order:

    429 rate_limited    too many failures from this peer (no MAC is computed)
    401 missing_token   no ``Authorization: Bearer``      401 malformed   truncated, garbage
    403 wrong_device    another device's token            401 bad_mac     forged or tampered
    401 key_rotated     generation below ``lan.key_gen``  401 revoked     id in ``lan.revoked``
    401 expired, not_yet_valid                            403 wrong_scope
    control/admin only: 401 unsigned, wrong_boot, skewed, bad_signature, replayed
    503 store_error     the replay state could not be made durable (refused, not risked)

Clock rules. Expiry is judged on wall seconds. The device keeps a floor: the
highest wall time it has seen (its own clock, a verified token's ``iat``,
never below 2024-01-01), persisted as ``_lan.wall_s`` and advanced by the
monotonic time since it was seen. With a wall clock, "now" is the larger of
the two; without one (offline boot, no NTP) it is the floor: a token stays
valid offline until the floor passes its expiry, never "accept anything".
``not_yet_valid`` needs a wall clock (``iat`` more than 5 minutes ahead);
without one a later ``iat`` just moves the floor.

Signed requests use the store's ``boot_id`` and the monotonic clock
(``device.lan.replay``); the guard is persisted as ``_lan.replay`` before the
request is allowed, so a restarted server or a power cut does not reopen
the window. The key appears in no repr, log or stat.
"""

from device.lan import tokencodec as codec
from device.lan import tokenkeys as keys
from device.lan.hmac256 import equal
from device.lan.replay import ReplayGuard
from device.lan.tokenlimit import FailureLimiter
from device.log import get_logger

_log = get_logger("lan.token")

STATUS = {
    "missing_token": 401,
    "malformed": 401,
    "bad_mac": 401,
    "key_rotated": 401,
    "revoked": 401,
    "expired": 401,
    "not_yet_valid": 401,
    "unsigned": 401,
    "wrong_boot": 401,
    "skewed": 401,
    "bad_signature": 401,
    "replayed": 401,
    "wrong_device": 403,
    "wrong_scope": 403,
    "rate_limited": 429,
    "store_error": 503,
}
SIGNED_SCOPES = ("control", "admin")
MIN_WALL_S = 1704067200  # 2024-01-01: no token can be judged against an earlier "now"
FUTURE_SKEW_S = 300
FLOOR_SAVE_STEP_S = 3600  # persist the wall floor when it moved this much (bounded writes)
MAX_REVOKED = 1024
_MAX_INT_CHARS = 15


class AuthError(Exception):
    def __init__(self, code: str, message: str, retry_after_s: int = 0) -> None:
        super().__init__(message)
        self.status = STATUS[code]
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


def _int(text) -> int:  # type: ignore[no-untyped-def]
    if not isinstance(text, str) or not 0 < len(text) <= _MAX_INT_CHARS:
        raise AuthError("malformed", "x-bp-boot and x-bp-ts must be decimal integers")
    for ch in text:  # ASCII digits only: CPython's isdigit() and int() also take other scripts' digits
        if not "0" <= ch <= "9":
            raise AuthError("malformed", "x-bp-boot and x-bp-ts must be decimal integers")
    return int(text)


class Verifier:
    def __init__(self, env, root_key: bytes, device_id: str, window_ms: int = 300000, limiter=None) -> None:  # type: ignore[no-untyped-def]
        codec.check_device_id(device_id)
        self.clock = env.clock
        self.store = env.store
        self.device_id = device_id
        self._root = root_key
        self._gen_keys: dict = {}  # generation -> key, derived on first use
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self.replay = ReplayGuard(0, window_ms)
        self._loaded = False
        self._floor_s = MIN_WALL_S
        self._floor_at_ms = 0
        self._saved_floor_s = 0
        self._revoked: tuple = (None, ())  # (state entry version and stamp, set of hex ids)
        self.counts: dict = {"ok": 0}

    def __repr__(self) -> str:
        return "<Verifier device=%s key=hidden>" % self.device_id

    def stats(self) -> dict:
        """Accepted and refused counts by code; nothing secret."""
        return dict(self.counts)

    async def authorize(self, method: str, target: str, headers: dict, body: bytes, scope: str, peer=None) -> dict:  # type: ignore[no-untyped-def]
        """Claims of an allowed request, or ``AuthError``; ``scope``: read, control or admin."""
        if scope not in codec.SCOPES:
            raise ValueError("unknown scope %r" % scope)
        now_ms = self.clock.now_ms()
        wait_ms = self.limiter.retry_after_ms(peer, now_ms)
        if wait_ms:
            self._count("rate_limited")
            raise AuthError("rate_limited", "too many failed attempts", (wait_ms + 999) // 1000)
        try:
            claims = await self._check(method, target, headers, body, scope, now_ms)
        except AuthError as exc:
            self._count(exc.code)
            if exc.status != 503:
                self.limiter.fail(peer, now_ms)
            raise
        self.counts["ok"] += 1
        return claims

    def _count(self, code: str) -> None:
        self.counts[code] = self.counts.get(code, 0) + 1

    async def _check(self, method, target, headers, body, scope, now_ms) -> dict:  # type: ignore[no-untyped-def]
        if not self._loaded:
            await self._load(now_ms)
        auth = headers.get("authorization") or ""
        if len(auth) < 8 or auth[:7].lower() != "bearer ":
            raise AuthError("missing_token", "send Authorization: Bearer <token>")
        try:
            claims, payload, tag = codec.parse(auth[7:].strip())
        except codec.TokenError as exc:
            raise AuthError("malformed", "token is not well formed: %s" % exc) from None
        if claims["device"] != self.device_id:
            raise AuthError("wrong_device", "token is for device %s" % claims["device"])
        gen = claims["key_gen"]
        gen_key = self._gen_key(gen)
        if not codec.tag_ok(gen_key, payload, tag):
            raise AuthError("bad_mac", "token signature does not verify")
        min_gen = await self._state_int(keys.KEY_GEN)
        if gen < min_gen:
            raise AuthError("key_rotated", "token key generation %d retired (now %d)" % (gen, min_gen))
        if claims["tid"] in await self._revoked_ids():
            raise AuthError("revoked", "token %s was revoked" % claims["tid"])
        await self._check_time(claims, now_ms)
        if not claims["scopes"] & (1 << codec.SCOPES.index(scope)):
            raise AuthError("wrong_scope", "token lacks the %r scope" % scope)
        signed = scope in SIGNED_SCOPES
        if signed:
            req_key = codec.request_key(gen_key, _unhex(claims["tid"]))
            await self._check_signed(method, target, headers, body, req_key, now_ms)
        return {
            "device": claims["device"],
            "scopes": codec.scope_names(claims["scopes"]),
            "iat": claims["iat"],
            "exp": claims["exp"],
            "tid": claims["tid"],
            "key_gen": gen,
            "signed": signed,
        }

    def _gen_key(self, gen: int) -> bytes:
        key = self._gen_keys.get(gen)
        if key is None:
            if len(self._gen_keys) >= 4:  # rotation is rare: a few cached are enough
                self._gen_keys = {}
            key = self._gen_keys[gen] = codec.gen_key(self._root, gen)
        return key  # type: ignore[no-any-return]

    # -- state ----------------------------------------------------------------

    async def _load(self, now_ms: int) -> None:
        guard = ReplayGuard(self.store.boot_id, self.replay.window_ms)
        entry = await self.store.get_state(keys.REPLAY)
        guard.restore(None if entry is None else entry.value, now_ms)
        saved = await self._state_int(keys.WALL_FLOOR)
        if self._loaded:  # a concurrent first request loaded it meanwhile (and may have recorded since)
            return
        self.replay = guard
        self._saved_floor_s = saved
        self._floor_s = saved if saved > MIN_WALL_S else MIN_WALL_S
        self._floor_at_ms = now_ms
        self._loaded = True

    async def _state_int(self, key: str) -> int:
        entry = await self.store.get_state(key)
        value = None if entry is None else entry.value
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    async def _revoked_ids(self):  # type: ignore[no-untyped-def]
        entry = await self.store.get_state(keys.REVOKED)
        version = None if entry is None else (entry.version, entry.stamp)
        if version != self._revoked[0]:
            ids = set()
            value = None if entry is None else entry.value
            if isinstance(value, list):
                for tid in value[:MAX_REVOKED]:
                    if isinstance(tid, str):
                        ids.add(tid.lower())
            elif value is not None:
                _log.warning("%s is not a list of token ids: ignored", keys.REVOKED)
            self._revoked = (version, ids)
        return self._revoked[1]

    async def _put(self, key: str, value) -> None:  # type: ignore[no-untyped-def]
        try:
            await self.store.put_state(key, value, "local", self.clock.wall_ms())
        except Exception as exc:  # StoreError or the medium's: refuse rather than risk a replay
            _log.warning("lan auth state %s not saved: %s", key, exc)
            raise AuthError("store_error", "the device could not save its replay state") from None

    # -- time -----------------------------------------------------------------

    async def _check_time(self, claims: dict, now_ms: int) -> None:
        floor_now = self._floor_s + (now_ms - self._floor_at_ms) // 1000
        wall = self.clock.wall_ms()
        now_s = floor_now
        if wall is not None and wall // 1000 > now_s:
            now_s = wall // 1000
        if claims["exp"] <= now_s:
            raise AuthError("expired", "token expired")
        if wall is not None and claims["iat"] > now_s + FUTURE_SKEW_S:
            raise AuthError("not_yet_valid", "token issued in the future: check the device's clock")
        if claims["iat"] > now_s:  # a verified token proves the issuer's time had passed it
            now_s = claims["iat"]
        if now_s > floor_now:
            self._floor_s = now_s
            self._floor_at_ms = now_ms
        if now_s - self._saved_floor_s >= FLOOR_SAVE_STEP_S:
            self._saved_floor_s = now_s  # (not retried before the next step: a broken medium is not hammered)
            try:
                await self._put(keys.WALL_FLOOR, now_s)
            except AuthError:
                pass  # this request is judged on the floor in RAM; only a reboot would lose it

    # -- signed requests ------------------------------------------------------

    async def _check_signed(self, method, target, headers, body, req_key: bytes, now_ms: int) -> None:  # type: ignore[no-untyped-def]
        nonce = headers.get("x-bp-nonce")
        sig = headers.get("x-bp-sig")
        boot_text = headers.get("x-bp-boot")
        ts_text = headers.get("x-bp-ts")
        if nonce is None or sig is None or boot_text is None or ts_text is None:
            raise AuthError("unsigned", "control needs x-bp-boot, x-bp-ts, x-bp-nonce and x-bp-sig")
        boot = _int(boot_text)
        ts = _int(ts_text)
        try:
            codec.check_nonce(nonce)
        except codec.TokenError as exc:
            raise AuthError("malformed", str(exc)) from None
        guard = self.replay
        code = guard.check(boot, ts, nonce, now_ms)
        if code == "wrong_boot":
            raise AuthError(code, "signed for boot %d, the device is in boot %d: ask /v1/info" % (boot, guard.boot))
        if code == "skewed":
            raise AuthError(code, "x-bp-ts is more than %d ms from the device's clock" % guard.window_ms)
        expected = codec.sign(req_key, method, target, boot, ts, nonce, body)
        if not isinstance(sig, str) or not equal(expected.encode(), sig.encode()):
            raise AuthError("bad_signature", "request signature does not verify")
        if code is not None:
            raise AuthError(code, "nonce already used")
        guard.record(ts, nonce, now_ms)  # before any await: a concurrent twin sees it
        await self._put(keys.REPLAY, guard.to_json())


def _unhex(text: str) -> bytes:
    import binascii

    return binascii.unhexlify(text)  # type: ignore[no-any-return]


def read_key(path: str) -> bytes:
    """The root key in a ``.lankey`` file (hex); ``ValueError``/``OSError`` when unusable."""
    import binascii

    with open(path) as f:
        text = f.read().strip()
    try:
        key = binascii.unhexlify(text)
    except ValueError:
        raise ValueError("not hex") from None
    if len(key) < 16:
        raise ValueError("key shorter than 16 bytes")
    return key  # type: ignore[no-any-return]


def load_verifier(env, lan_cfg: dict, device_id: str | None = None):  # type: ignore[no-untyped-def]
    """A ``Verifier`` for the board's ``lan`` section, or None when no key is provisioned.

    The device id is ``device_id`` or else the key file's name (``<id>.lankey``).
    """
    path = lan_cfg.get("key_file")
    if not path:
        return None
    try:
        root = read_key(path)
    except (OSError, ValueError) as exc:
        _log.warning("lan key file %s unusable (%s): control refused", path, type(exc).__name__)
        return None
    if device_id is None:
        name = path[path.rfind("/") + 1 :]
        device_id = name[: -len(".lankey")] if name.endswith(".lankey") else name
    return Verifier(env, root, device_id, lan_cfg.get("replay_window_ms", 300000))
