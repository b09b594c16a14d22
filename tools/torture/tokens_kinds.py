"""The generated kinds of the ``tokens`` harness: each maker takes ``(bench, rng)`` and returns the
cases to ask in order, bad ones naming the refusal code that is right for them (rules from
DESIGN.md "LAN tokens"). ``BULK`` run on the shared bench, ``FRESH`` each on a bench of its own.
"""

from __future__ import annotations

import random

from cloud_shim.tokens import sign_headers
from device.lan import tokencodec as codec
from device.lan.token import FUTURE_SKEW_S, MIN_WALL_S
from tools.torture.tokens_cases import (
    _ID_AT,
    DEVICE,
    MIN_GEN,
    OTHER_ROOT,
    ROOT,
    TAMPER_CODES,
    WINDOW_MS,
    Bench,
    Case,
    again,
    flip_in,
    forge_generation,
    nonce,
    raw_of,
    read,
    signed,
    spell,
    token,
)

# -- the kinds: each makes the cases of one draw (bad ones say which code is right) ------------
# A maker takes (bench, rng) and returns the cases to ask in order.


def k_valid_read(b: Bench, rng: random.Random) -> list[Case]:
    scopes = rng.choice([("read",), ("read", "control"), ("read", "admin"), ("read", "control", "admin")])
    case = read(token(rng, b.clock.wall_s(), scopes))
    if rng.random() < 0.2:  # stray signature headers do not matter to a read
        case.headers.update({"x-bp-nonce": "?", "x-bp-ts": "x"})
    return [case]


def k_valid_signed(b: Bench, rng: random.Random) -> list[Case]:
    scope = rng.choice(["control", "admin"])
    scopes = (scope,) if rng.random() < 0.5 else ("read", scope)
    return [signed(b, rng, token(rng, b.clock.wall_s(), scopes), scope)]


def k_valid_boundaries(b: Bench, rng: random.Random) -> list[Case]:
    """Accepted at the edge: expiry 1 s ahead, largest generation, all-ones id, u32 expiry, nonce 8/32."""
    now_s = b.clock.wall_s()
    which = rng.randrange(6)
    if which == 0:
        issued = token(rng, now_s, exp=now_s + 1)
    elif which == 1:
        issued = token(rng, now_s, gen=codec.MAX_GEN)
    elif which == 2:
        issued = token(rng, now_s, tid=b"\xff" * codec.TID_LEN)
    elif which == 3:
        issued = token(rng, now_s, iat=0, exp=2**32 - 1)
    elif which == 4:
        issued = token(rng, now_s, gen=MIN_GEN)
    else:
        issued = token(rng, now_s)
    if which == 5:
        case = signed(b, rng, issued, "control", nonce=nonce(rng, rng.choice([codec.NONCE_MIN, codec.NONCE_MAX])))
    else:
        case = signed(b, rng, issued, "control") if rng.random() < 0.5 else read(issued)
    case.kind = "valid_boundary"
    return [case]


def k_forged(b: Bench, rng: random.Random) -> list[Case]:
    now_s = b.clock.wall_s()
    if rng.random() < 0.5:
        text = token(rng, now_s, root=OTHER_ROOT)["token"]
    elif rng.random() < 0.5:
        text = forge_generation(rng, now_s)
    else:  # our claims, a tag of random bytes
        raw = raw_of(token(rng, now_s)["token"])
        raw[-32:] = rng.randbytes(32)
        text = spell(raw)
    return [Case("forged", "GET", "/v1/state", {"authorization": "Bearer " + text}, b"", "read", {"bad_mac"})]


def k_tampered(b: Bench, rng: random.Random) -> list[Case]:
    """One byte of a valid token changed; in the claims or tag it cannot pass the MAC."""
    raw = raw_of(token(rng, b.clock.wall_s())["token"])
    where = rng.randrange(4)
    if where == 0:  # claims before the device id: parse may pass, the MAC cannot
        raw = flip_in(rng, raw, 0, _ID_AT)
        want = {"malformed", "bad_mac"}
    elif where == 1:  # the tag
        raw = flip_in(rng, raw, len(raw) - 32, len(raw))
        want = {"bad_mac"}
    elif where == 2:  # the device id
        raw = flip_in(rng, raw, _ID_AT + 1, len(raw) - 32)
        want = {"malformed", "wrong_device"}
    else:
        raw = flip_in(rng, raw, 0, len(raw))
        want = TAMPER_CODES
    return [Case("tampered", "GET", "/v1/state", {"authorization": "Bearer " + spell(raw)}, b"", "read", want)]


def k_respelled(b: Bench, rng: random.Random) -> list[Case]:
    """The token text changed: a character swapped, padding added, a non-canonical last character."""
    text = token(rng, b.clock.wall_s())["token"]
    which = rng.randrange(4)
    if which == 0:
        i = rng.randrange(len(codec.PREFIX), len(text))
        ch = rng.choice([c for c in codec._B64U if c != text[i]])
        text = text[:i] + ch + text[i + 1 :]
        want = TAMPER_CODES
    elif which == 1:
        text += "=" * rng.randint(1, 2)
        want = {"malformed"}
    elif which == 2:
        i = rng.randrange(len(codec.PREFIX), len(text))
        text = text[:i] + rng.choice("+/=.!~ \t%") + text[i + 1 :]
        want = {"malformed"}
    else:  # same bytes, another spelling: set spare bits in the last character
        raw = codec.b64u_decode(text[len(codec.PREFIX) :])
        spare = {1: 4, 2: 2}.get(len(raw) % 3, 0)
        if not spare:
            return k_respelled(b, rng)
        last = codec._B64U.index(text[-1])
        text = text[:-1] + codec._B64U[last | rng.randint(1, (1 << spare) - 1)]
        want = {"malformed"}
    return [Case("respelled", "GET", "/v1/state", {"authorization": "Bearer " + text}, b"", "read", want)]


def k_truncated(b: Bench, rng: random.Random) -> list[Case]:
    text = token(rng, b.clock.wall_s())["token"]
    if rng.random() < 0.5:
        text = text[: rng.randrange(1, len(text))]
    else:  # or extended
        text = text + "".join(rng.choice(codec._B64U) for _ in range(rng.randint(1, 12)))
    return [Case("truncated", "GET", "/v1/state", {"authorization": "Bearer " + text}, b"", "read", {"malformed"})]


def k_garbage(b: Bench, rng: random.Random) -> list[Case]:
    which = rng.randrange(5)
    if which == 0:
        headers: dict[str, str] = {}
        want = {"missing_token"}
    elif which == 1:
        headers = {"authorization": rng.choice(["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bp1.AAAA", "Token x"])}
        want = {"missing_token"}
    elif which == 2:
        junk = "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(1, 140)))
        headers = {"authorization": "Bearer " + junk}
        want = {"malformed", "missing_token"} if not junk.strip() else {"malformed"}
    elif which == 3:
        junk = "".join(rng.choice(codec._B64U) for _ in range(rng.randint(0, 200)))
        headers = {"authorization": rng.choice(["Bearer ", "bearer ", "BEARER "]) + "bp1." + junk}
        want = {"malformed"}
    else:  # a huge header
        headers = {"authorization": "Bearer bp1." + "A" * rng.randint(200, 5000)}
        want = {"malformed"}
    return [Case("garbage", "GET", "/v1/state", headers, b"", "read", want)]


def k_expired(b: Bench, rng: random.Random) -> list[Case]:
    now_s = b.clock.wall_s()
    exp = now_s if rng.random() < 0.5 else now_s - rng.randint(1, 10**7)  # exp == now is expired
    issued = token(rng, now_s, iat=exp - rng.randint(1, 10**6), exp=exp)
    return [read(issued, "expired", {"expired"})]


def k_not_yet_valid(b: Bench, rng: random.Random) -> list[Case]:
    now_s = b.clock.wall_s()
    iat = now_s + FUTURE_SKEW_S + (1 if rng.random() < 0.5 else rng.randint(2, 10**7))
    issued = token(rng, now_s, iat=iat, exp=iat + 86400)
    return [read(issued, "not_yet_valid", {"not_yet_valid"})]


def k_wrong_device(b: Bench, rng: random.Random) -> list[Case]:
    other = rng.choice(["th-torture-02", DEVICE + "x", DEVICE[:-1], "TH-TORTURE-01", "a" * 64])
    issued = token(rng, b.clock.wall_s(), device=other, root=rng.choice([ROOT, OTHER_ROOT]))
    return [read(issued, "wrong_device", {"wrong_device"})]


def k_wrong_scope(b: Bench, rng: random.Random) -> list[Case]:
    now_s = b.clock.wall_s()
    have, need = rng.choice(
        [(("read",), "control"), (("read",), "admin"), (("control",), "admin"), (("admin",), "control"),
         (("control",), "read"), (("admin",), "read"), (("read", "control"), "admin"), (("read", "admin"), "control")]
    )  # fmt: skip
    case = signed(b, rng, token(rng, now_s, have), need) if need != "read" else read(token(rng, now_s, have))
    case.kind, case.want = "wrong_scope", {"wrong_scope"}
    return [case]


def k_revoked(b: Bench, rng: random.Random) -> list[Case]:
    issued = token(rng, b.clock.wall_s(), tid=rng.choice(b.revoked))
    case = signed(b, rng, issued, "control") if rng.random() < 0.5 else read(issued)
    case.kind, case.want = "revoked", {"revoked"}
    return [case]


def k_old_generation(b: Bench, rng: random.Random) -> list[Case]:
    issued = token(rng, b.clock.wall_s(), gen=rng.choice([0, MIN_GEN - 1, rng.randrange(MIN_GEN)]))
    case = signed(b, rng, issued, "control") if rng.random() < 0.5 else read(issued)
    case.kind, case.want = "old_generation", {"key_rotated"}
    return [case]


def k_unsigned(b: Bench, rng: random.Random) -> list[Case]:
    case = signed(b, rng, token(rng, b.clock.wall_s()), "control")
    for name in rng.sample(["x-bp-boot", "x-bp-ts", "x-bp-nonce", "x-bp-sig"], rng.randint(1, 4)):
        del case.headers[name]
    case.kind, case.want = "unsigned", {"unsigned"}
    return [case]


def k_wrong_boot(b: Bench, rng: random.Random) -> list[Case]:
    boot = b.store.boot_id
    other = rng.choice([boot + 1, boot - 1, 0, boot + rng.randint(2, 10**6), 10**15 - 1])
    if other == boot:
        other = boot + 1
    case = signed(b, rng, token(rng, b.clock.wall_s()), "control", boot=other)
    case.kind, case.want = "wrong_boot", {"wrong_boot"}
    return [case]


def k_skewed(b: Bench, rng: random.Random) -> list[Case]:
    now = b.clock.now
    edge = rng.random() < 0.5
    late = now - WINDOW_MS - (1 if edge else rng.randint(2, now - WINDOW_MS))
    ts = late if rng.random() < 0.5 else now + WINDOW_MS + (1 if edge else rng.randint(2, 10**9))
    case = signed(b, rng, token(rng, b.clock.wall_s()), "control", ts=ts)
    case.kind, case.want = "skewed", {"skewed"}
    return [case]


def k_bad_number(b: Bench, rng: random.Random) -> list[Case]:
    case = signed(b, rng, token(rng, b.clock.wall_s()), "control")
    name = rng.choice(["x-bp-boot", "x-bp-ts"])
    case.headers[name] = rng.choice(["", "-1", "1.0", " 1", "1 ", "0x10", "1e3", "9" * 16, "١٢", "+5"])
    case.kind, case.want = "bad_number", {"malformed"}
    return [case]


def k_bad_nonce(b: Bench, rng: random.Random) -> list[Case]:
    which = rng.randrange(3)
    if which == 0:
        text = nonce(rng, codec.NONCE_MIN - 1 - rng.randrange(codec.NONCE_MIN))
    elif which == 1:
        text = nonce(rng, codec.NONCE_MAX + 1 + rng.randrange(20))
    else:
        text = nonce(rng, 12)
        i = rng.randrange(12)
        text = text[:i] + rng.choice("=+/.~ é") + text[i + 1 :]
    case = signed(b, rng, token(rng, b.clock.wall_s()), "control")
    case.headers["x-bp-nonce"] = text
    case.kind, case.want = "bad_nonce", {"malformed"}
    return [case]


def k_bad_signature(b: Bench, rng: random.Random) -> list[Case]:
    """Signed over something else than what is sent, or with another token's key."""
    issued = token(rng, b.clock.wall_s())
    case = signed(b, rng, issued, "control")
    boot, ts, n = b.store.boot_id, b.clock.now, case.headers["x-bp-nonce"]
    method, target, data, sig = case.method, case.target, case.body, case.headers["x-bp-sig"]
    which = rng.randrange(8)
    if which == 0:
        sig = sign_headers(issued, "GET", target, data, boot, ts, n)["x-bp-sig"]
    elif which == 1:
        sig = sign_headers(issued, method, target + "?", data, boot, ts, n)["x-bp-sig"]
    elif which == 2:
        sig = sign_headers(issued, method, target, data + b" ", boot, ts, n)["x-bp-sig"]
    elif which == 3:
        sig = sign_headers(issued, method, target, data, boot, ts + 1, n)["x-bp-sig"]
    elif which == 4:
        sig = sign_headers(token(rng, b.clock.wall_s()), method, target, data, boot, ts, n)["x-bp-sig"]
    elif which == 5:
        sig = sig[: rng.randrange(len(sig))]
    elif which == 6:
        sig = "".join(rng.choice(codec._B64U) for _ in range(43))
    else:  # the signed headers of one token sent with another token
        case.headers["authorization"] = "Bearer " + token(rng, b.clock.wall_s())["token"]
    case.headers["x-bp-sig"] = sig
    case.kind, case.want = "bad_signature", {"bad_signature"}
    return [case]


def k_replayed(b: Bench, rng: random.Random, history: list[Case]) -> list[Case]:
    """An accepted signed request sent again: replayed while in the window, skewed after."""
    if not history:
        return k_valid_signed(b, rng)
    old = rng.choice(history[-200:]) if rng.random() < 0.8 else rng.choice(history)
    ts = int(old.headers["x-bp-ts"])
    want = {"replayed"} if ts >= b.clock.now - WINDOW_MS else {"skewed"}
    return [again(old, want)]


# -- kinds that need a fresh bench (they move state the next case could not predict) ------


def f_nonce_rollover(b: Bench, rng: random.Random) -> list[Case]:
    """Fill the 64 remembered nonces and one more: the oldest is forgotten and the floor takes
    its timestamp; a new nonce at that timestamp is refused, one a millisecond later passes."""
    issued = token(rng, b.clock.wall_s())
    t0 = b.clock.now - rng.randint(100, 1000)
    cases = [signed(b, rng, issued, "control", ts=t0 + i) for i in range(65)]
    at_floor = signed(b, rng, issued, "control", ts=t0)
    at_floor.kind, at_floor.want = "replayed_floor", {"replayed"}
    above = signed(b, rng, issued, "control", ts=t0 + 1)
    return [*cases, at_floor, again(cases[0], {"replayed"}), above]


def f_window_edges(b: Bench, rng: random.Random) -> list[Case]:
    """ts exactly at either edge of the window is fresh; replays of them are not."""
    issued = token(rng, b.clock.wall_s())
    early = signed(b, rng, issued, "control", ts=b.clock.now - WINDOW_MS)
    late = signed(b, rng, issued, "control", ts=b.clock.now + WINDOW_MS)
    return [early, late, again(late, {"replayed"})]


def f_future_iat(b: Bench, rng: random.Random) -> list[Case]:
    """iat exactly 5 minutes ahead passes (and moves the floor); a second later would not."""
    now_s = b.clock.wall_s()
    issued = token(rng, now_s, iat=now_s + FUTURE_SKEW_S, exp=now_s + FUTURE_SKEW_S + 60)
    expiring = token(rng, now_s, exp=now_s + FUTURE_SKEW_S)  # valid by the clock, not by the new floor
    return [read(issued), read(expiring, "expired_by_floor", {"expired"})]


def f_offline(b: Bench, rng: random.Random) -> list[Case]:
    """No wall clock (offline boot): now is the floor (2024-01-01 on a new device)."""
    floor = MIN_WALL_S
    future = token(rng, floor, iat=floor + 10**6, exp=floor + 2 * 10**6)  # cannot be judged: moves the floor
    return [
        read(token(rng, floor, iat=floor - 100, exp=floor), "expired", {"expired"}),
        read(token(rng, floor, iat=floor - 100, exp=floor + 5)),
        read(future),
        read(token(rng, floor, iat=floor - 100, exp=floor + 10**6 - 1), "expired_by_floor", {"expired"}),
    ]


BULK = (  # (maker, weight)
    (k_valid_read, 10),
    (k_valid_signed, 12),
    (k_valid_boundaries, 4),
    (k_forged, 6),
    (k_tampered, 8),
    (k_respelled, 4),
    (k_truncated, 5),
    (k_garbage, 4),
    (k_expired, 5),
    (k_not_yet_valid, 4),
    (k_wrong_device, 4),
    (k_wrong_scope, 5),
    (k_revoked, 4),
    (k_old_generation, 4),
    (k_unsigned, 3),
    (k_wrong_boot, 3),
    (k_skewed, 4),
    (k_bad_number, 3),
    (k_bad_nonce, 3),
    (k_bad_signature, 6),
    (k_replayed, 8),
)
FRESH = ((f_nonce_rollover, False), (f_window_edges, True), (f_future_iat, True), (f_offline, False))  # (maker, wall)
