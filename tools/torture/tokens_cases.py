"""Generated LAN-auth cases for the ``tokens`` harness: each is a request and the answer it must get.

A ``Case`` holds what ``Verifier.authorize`` is given and ``want``: ``None`` when the
request must be accepted, else the set of refusal codes that are right for it (one
code, except for random tampering, where the flipped byte decides between
``malformed``, ``wrong_device`` and ``bad_mac``). The expected codes come from the
rules in DESIGN.md "LAN tokens", written here independently of the verifier.

``Bench`` is the device under test: one verifier on a memory store with a clock
whose wall time moves with its monotonic time (so the wall floor never runs
ahead of the wall clock), ``lan.key_gen`` and ``lan.revoked`` set. Cases that
would move the verifier's state in ways the next case cannot predict (a token
issued in the future moves the floor, a timestamp at the window's edge may
later become the replay floor) run on a fresh bench of their own.
"""

from __future__ import annotations

import random
from typing import Any

from cloud_shim.tokens import sign_headers
from device.env import Env
from device.lan import tokencodec as codec
from device.lan import tokenkeys
from device.lan.hmac256 import hmac_sha256
from device.lan.token import Verifier
from device.lan.tokenlimit import FailureLimiter
from device.store.memory import MemoryStore

ROOT = bytes(range(7, 39))
OTHER_ROOT = bytes(range(200, 232))
DEVICE = "th-torture-01"
WALL0_S = 1_800_000_000  # the device's wall clock at monotonic 0
WINDOW_MS = 300_000
MIN_GEN = 5  # lan.key_gen on the bench: generations below are retired
REVOKED_COUNT = 40
METHODS = ("POST", "PUT", "DELETE")
TARGETS = ("/v1/thermostat", "/v1/state?keys=a,b", "/v1/apps/bed/cmd", "/v1/x")


class Case:
    __slots__ = ("body", "headers", "kind", "method", "peer", "scope", "target", "want")

    def __init__(self, kind, method, target, headers, body, scope, want, peer=None) -> None:  # type: ignore[no-untyped-def]
        self.kind = kind
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.scope = scope
        self.want = want  # None: must be accepted; else a set of acceptable refusal codes
        self.peer = peer


class Clock:
    """Monotonic ms set by the harness; wall = WALL0 + monotonic (or None: no NTP)."""

    def __init__(self, now_ms: int = 1_000_000, wall: bool = True) -> None:
        self.now = now_ms
        self.wall = wall

    def now_ms(self) -> int:
        return self.now

    def wall_ms(self) -> int | None:
        return WALL0_S * 1000 + self.now if self.wall else None

    def wall_s(self) -> int:
        return WALL0_S + self.now // 1000


def unlimited() -> FailureLimiter:
    return FailureLimiter(burst=10**12)  # bulk cases check the codes; the limit has its own phase


class Bench:
    def __init__(self, verifier_cls: Any = Verifier, limiter: Any = None, wall: bool = True) -> None:
        self.clock = Clock(wall=wall)
        self.store = MemoryStore()
        self.verifier_cls = verifier_cls
        self.limiter = limiter if limiter is not None else unlimited()
        self.verifier: Any = None
        self.revoked: list[bytes] = []

    async def open(self, rng: random.Random) -> Bench:
        await self.store.open()
        self.revoked = [rng.randbytes(codec.TID_LEN) for _ in range(REVOKED_COUNT)]
        await self.store.put_state(tokenkeys.KEY_GEN, MIN_GEN, "cloud")
        await self.store.put_state(tokenkeys.REVOKED, [t.hex() for t in self.revoked], "cloud")
        env = Env(self.clock, self.store, None, None)
        self.verifier = self.verifier_cls(env, ROOT, DEVICE, WINDOW_MS, self.limiter)
        return self

    async def ask(self, case: Case) -> str | None:
        """None when accepted, else the refusal code (also checks status and code agree)."""
        from device.lan.token import STATUS, AuthError

        try:
            await self.verifier.authorize(case.method, case.target, case.headers, case.body, case.scope, case.peer)
        except AuthError as exc:
            if STATUS.get(exc.code) != exc.status:
                return "status %d for %s" % (exc.status, exc.code)
            return exc.code
        return None


# -- tokens -------------------------------------------------------------------------


def token(
    rng: random.Random,
    now_s: int,
    scopes: tuple[str, ...] = ("read", "control"),
    *,
    gen: int | None = None,
    iat: int | None = None,
    exp: int | None = None,
    tid: bytes | None = None,
    device: str = DEVICE,
    root: bytes = ROOT,
) -> dict[str, Any]:
    """An issued token (the issuer's dict: token, request_key, tid ...) with these claims."""
    gen = rng.randint(MIN_GEN, MIN_GEN + 3) if gen is None else gen
    iat = now_s - rng.randint(0, 86400 * 30) if iat is None else iat
    exp = now_s + rng.randint(86400, 86400 * 365) if exp is None else exp  # outlives any replay
    tid = rng.randbytes(codec.TID_LEN) if tid is None else tid
    mask = codec.scope_mask(list(scopes))
    text = codec.mint(root, device, mask, iat, exp, tid, gen)
    req_key = codec.request_key(codec.gen_key(root, gen), tid)
    return {"token": text, "request_key": req_key.hex(), "tid": tid.hex(), "key_gen": gen}


def bearer(issued: dict[str, Any]) -> dict[str, str]:
    return {"authorization": "Bearer " + issued["token"]}


def nonce(rng: random.Random, length: int = 16) -> str:
    return "".join(rng.choice(codec._B64U) for _ in range(length))


def body(rng: random.Random) -> bytes:
    return b'{"setpoint_c": %d}' % rng.randint(5, 30) if rng.random() < 0.7 else b""


def signed(bench: Bench, rng: random.Random, issued: dict[str, Any], scope: str, **over: Any) -> Case:
    """A correctly signed request now (``over`` replaces method/target/body/ts/boot/nonce)."""
    method = over.get("method", rng.choice(METHODS))
    target = over.get("target", rng.choice(TARGETS))
    data = over.get("body", body(rng))
    ts = over.get("ts", bench.clock.now)
    boot = over.get("boot", bench.store.boot_id)
    headers = sign_headers(issued, method, target, data, boot, ts, over.get("nonce") or nonce(rng))
    return Case("valid_signed", method, target, headers, data, scope, None)


def read(issued: dict[str, Any], kind: str = "valid_read", want: Any = None) -> Case:
    return Case(kind, "GET", "/v1/state", bearer(issued), b"", "read", want)


def raw_of(text: str) -> bytearray:
    return bytearray(codec.b64u_decode(text[len(codec.PREFIX) :]))


def spell(raw: bytes | bytearray) -> str:
    return codec.PREFIX + codec.b64u_encode(bytes(raw))


def forge_generation(rng: random.Random, now_s: int) -> str:
    """Claims generation g+1 but tagged with generation g's key."""
    gen = rng.randint(MIN_GEN, 100)
    payload = codec.pack_payload(DEVICE, 3, now_s - 10, now_s + 1000, rng.randbytes(8), gen + 1)
    tag = hmac_sha256(codec.gen_key(ROOT, gen), b"bp-lan-tok\x00" + payload)
    return spell(payload + tag)


def flip_in(rng: random.Random, raw: bytearray, start: int, end: int) -> bytearray:
    i = rng.randrange(start, end)
    raw[i] ^= rng.randint(1, 255)
    return raw


TAMPER_CODES = {"malformed", "bad_mac", "wrong_device"}
_HEAD = 12  # version, gen, scopes, iat, exp
_ID_AT = _HEAD + codec.TID_LEN  # the id-length byte


def again(case: Case, want: set[str]) -> Case:
    """The same request sent once more."""
    return Case("replayed", case.method, case.target, dict(case.headers), case.body, case.scope, want)
