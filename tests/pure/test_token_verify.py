"""LAN token verifier: every refusal, revocation, rotation, clock rules (pytest and MicroPython).

Split from test_token_codec.py so each module fits a 128 KiB heap when compiled from source.
"""

from device.env import Env
from device.lan import tokencodec as codec
from device.lan.token import MIN_WALL_S, AuthError, Verifier
from device.lan.tokenlimit import FailureLimiter
from device.store.memory import MemoryStore

ROOT = bytes(range(32))
DEV = "th-01"
NOW_S = 1800000000  # 2027
TID = b"\x01\x02\x03\x04\x05\x06\x07\x08"


class _Clock:
    """A settable clock (pure tests: no event loop timing)."""

    def __init__(self, now_ms: int = 1000, wall_s=NOW_S) -> None:  # type: ignore[no-untyped-def]
        self.now = now_ms
        self.wall_s = wall_s

    def now_ms(self) -> int:
        return self.now

    def wall_ms(self):  # type: ignore[no-untyped-def]
        return None if self.wall_s is None else self.wall_s * 1000 + (self.now % 1000)


# -- verifier ---------------------------------------------------------------------


async def _verifier(clock=None, window_ms=300000):  # type: ignore[no-untyped-def]
    clock = clock or _Clock()
    store = MemoryStore()
    await store.open()
    env = Env(clock, store, None, None)
    return Verifier(env, ROOT, DEV, window_ms), env


def _token(scopes=3, iat=NOW_S - 60, exp=NOW_S + 86400, tid=TID, gen=0, device=DEV, root=ROOT):  # type: ignore[no-untyped-def]
    return codec.mint(root, device, scopes, iat, exp, tid, gen)


def _signed(
    token, clock, boot, method="POST", target="/v1/thermostat", body=b"{}", nonce="nonce-0001", tid=TID, gen=0, ts=None
):  # type: ignore[no-untyped-def]
    req_key = codec.request_key(codec.gen_key(ROOT, gen), tid)
    ts = clock.now if ts is None else ts
    return {
        "authorization": "Bearer " + token,
        "x-bp-boot": str(boot),
        "x-bp-ts": str(ts),
        "x-bp-nonce": nonce,
        "x-bp-sig": codec.sign(req_key, method, target, boot, ts, nonce, body),
    }


async def _refused(v, headers, scope="read", method="GET", target="/v1/state", body=b""):  # type: ignore[no-untyped-def]
    try:
        await v.authorize(method, target, headers, body, scope)
    except AuthError as exc:
        return exc.status, exc.code
    raise AssertionError("allowed")


async def test_read_with_a_good_token_and_control_signed():
    v, env = await _verifier()
    claims = await v.authorize("GET", "/v1/state", {"authorization": "Bearer " + _token()}, b"", "read")
    assert claims["device"] == DEV and claims["scopes"] == ["read", "control"] and not claims["signed"]
    assert claims["tid"] == "0102030405060708"
    headers = _signed(_token(), v.clock, env.store.boot_id)
    claims = await v.authorize("POST", "/v1/thermostat", headers, b"{}", "control")
    assert claims["signed"]
    saved = (await env.store.get_state("_lan.replay")).value
    assert saved["seen"] == [["nonce-0001", 1000]]
    assert "Verifier" in repr(v) and "hidden" in repr(v)


async def test_every_token_failure_has_its_status():
    v, env = await _verifier()
    boot = env.store.boot_id
    other_root = bytes(32)
    cases = [
        ({}, "read", (401, "missing_token")),
        ({"authorization": "Basic abc"}, "read", (401, "missing_token")),
        ({"authorization": "Bearer bp1.AAAA"}, "read", (401, "malformed")),
        ({"authorization": "Bearer " + _token(device="th-02")}, "read", (403, "wrong_device")),
        ({"authorization": "Bearer " + _token(root=other_root)}, "read", (401, "bad_mac")),
        ({"authorization": "Bearer " + _token(exp=NOW_S - 1, iat=NOW_S - 100)}, "read", (401, "expired")),
        ({"authorization": "Bearer " + _token(iat=NOW_S + 3600, exp=NOW_S + 7200)}, "read", (401, "not_yet_valid")),
        ({"authorization": "Bearer " + _token(scopes=1)}, "control", (403, "wrong_scope")),
        ({"authorization": "Bearer " + _token()}, "admin", (403, "wrong_scope")),
        ({"authorization": "Bearer " + _token()}, "control", (401, "unsigned")),
    ]
    for headers, scope, want in cases:
        assert await _refused(v, headers, scope) == want, (headers, scope, want)
    tok = _token()
    clock = v.clock
    bad = _signed(tok, clock, boot)
    bad["x-bp-sig"] = bad["x-bp-sig"][:-2] + ("AA" if not bad["x-bp-sig"].endswith("AA") else "BA")
    assert await _refused(v, bad, "control", "POST", "/v1/thermostat", b"{}") == (401, "bad_signature")
    other_body = _signed(tok, clock, boot)
    assert await _refused(v, other_body, "control", "POST", "/v1/thermostat", b'{"x":1}') == (401, "bad_signature")
    assert await _refused(v, _signed(tok, clock, boot + 1), "control", "POST", "/v1/thermostat", b"{}") == (
        401,
        "wrong_boot",
    )
    skewed = _signed(tok, clock, boot, ts=clock.now + 300001)
    assert await _refused(v, skewed, "control", "POST", "/v1/thermostat", b"{}") == (401, "skewed")
    bad_ts = _signed(tok, clock, boot)
    bad_ts["x-bp-ts"] = "-5"
    assert await _refused(v, bad_ts, "control", "POST", "/v1/thermostat", b"{}") == (401, "malformed")
    ok = _signed(tok, clock, boot)
    await v.authorize("POST", "/v1/thermostat", ok, b"{}", "control")
    clock.now += 10
    assert await _refused(v, ok, "control", "POST", "/v1/thermostat", b"{}") == (401, "replayed")
    stats = v.stats()
    assert stats["ok"] == 1 and stats["replayed"] == 1 and stats["wrong_scope"] == 2


async def test_revocation_and_rotation_follow_state_keys():
    v, env = await _verifier()
    headers = {"authorization": "Bearer " + _token()}
    await v.authorize("GET", "/v1/state", headers, b"", "read")
    await env.store.put_state("lan.revoked", ["ffff000000000000", "0102030405060708"], "cloud")
    assert await _refused(v, headers) == (401, "revoked")
    await env.store.put_state("lan.revoked", [], "cloud")
    await v.authorize("GET", "/v1/state", headers, b"", "read")
    await env.store.put_state("lan.key_gen", 1, "cloud")
    assert await _refused(v, headers) == (401, "key_rotated")
    newer = {"authorization": "Bearer " + _token(gen=1)}
    assert (await v.authorize("GET", "/v1/state", newer, b"", "read"))["key_gen"] == 1


async def test_failures_are_rate_limited_without_computing_a_mac():
    v, _env = await _verifier()
    v.limiter = FailureLimiter(burst=2, refill_ms=1000)
    bad = {"authorization": "Bearer " + _token(root=bytes(32))}
    for _ in range(2):
        assert (await _refused(v, bad))[0] == 401
    assert await _refused(v, {"authorization": "Bearer " + _token()}) == (429, "rate_limited")
    v.clock.now += 1000
    await v.authorize("GET", "/v1/state", {"authorization": "Bearer " + _token()}, b"", "read")


async def test_without_a_wall_clock_expiry_uses_the_highest_time_seen():
    clock = _Clock(wall_s=None)
    v, env = await _verifier(clock)
    # A token from the past (before 2024) is expired even with no clock at all.
    assert await _refused(v, {"authorization": "Bearer " + _token(iat=1600000000, exp=1600086400)}) == (
        401,
        "expired",
    )
    # No wall clock: a token issued "in the future" cannot be judged; its iat becomes the floor.
    await v.authorize("GET", "/", {"authorization": "Bearer " + _token(iat=NOW_S, exp=NOW_S + 100)}, b"", "read")
    assert (await env.store.get_state("_lan.wall_s")).value == NOW_S
    older = _token(iat=NOW_S - 1000, exp=NOW_S + 50, tid=b"\x09" * 8)
    await v.authorize("GET", "/", {"authorization": "Bearer " + older}, b"", "read")
    clock.now += 51000  # monotonic time passes: the floor moves with it
    assert await _refused(v, {"authorization": "Bearer " + older}) == (401, "expired")
    # A restart (new verifier, same store) keeps the floor it saved (saved in steps of an hour:
    # offline, expiry may lag by the time the device was off plus up to an hour).
    v2 = Verifier(env, ROOT, DEV)
    stale = _token(iat=NOW_S - 1000, exp=NOW_S - 1, tid=b"\x0a" * 8)
    assert await _refused(v2, {"authorization": "Bearer " + stale}) == (401, "expired")
    assert MIN_WALL_S < NOW_S


async def test_a_restarted_verifier_in_the_same_boot_remembers_nonces():
    v, env = await _verifier()
    headers = _signed(_token(), v.clock, env.store.boot_id)
    await v.authorize("POST", "/v1/thermostat", headers, b"{}", "control")
    v2 = Verifier(env, ROOT, DEV)
    assert await _refused(v2, headers, "control", "POST", "/v1/thermostat", b"{}") == (401, "replayed")


async def test_two_concurrent_requests_with_one_nonce_let_one_through():
    import asyncio

    v, env = await _verifier()
    headers = _signed(_token(), v.clock, env.store.boot_id)

    async def attempt():  # type: ignore[no-untyped-def]
        try:
            await v.authorize("POST", "/v1/thermostat", headers, b"{}", "control")
        except AuthError as exc:
            return exc.code
        return "ok"

    results = await asyncio.gather(attempt(), attempt(), attempt())
    assert sorted(results) == ["ok", "replayed", "replayed"]
