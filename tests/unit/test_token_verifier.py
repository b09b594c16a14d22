"""LAN token verification on CPython: tampering (hypothesis), bulk bad tokens, power cuts, cloud sync.

The portable cases (every status, clock rules) are in tests/pure/test_token_*.py.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import random
from hashlib import sha256
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_shim.tokens import TokenIssuer, issue, sign_headers
from device.core import shadow
from device.env import Env
from device.lan import tokencodec as codec
from device.lan.hmac256 import hmac_sha256
from device.lan.token import AuthError, Verifier, load_verifier
from device.lan.tokenkeys import SHADOW_POLICIES
from device.lan.tokenlimit import FailureLimiter
from device.store.memory import MemoryStore
from device.store.sqlite import SqliteStore

ROOT = bytes(range(100, 132))
DEV = "th-01"
NOW_S = 1_800_000_000


class Clock:
    def __init__(self, now_ms: int = 5000, wall_s: int | None = NOW_S) -> None:
        self.now = now_ms
        self.wall_s = wall_s

    def now_ms(self) -> int:
        return self.now

    def wall_ms(self) -> int | None:
        return None if self.wall_s is None else self.wall_s * 1000


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def memory_verifier() -> tuple[Verifier, Env]:
    store = MemoryStore()
    await store.open()
    env = Env(Clock(), store, None, None)
    verifier = Verifier(env, ROOT, DEV)
    verifier.limiter = FailureLimiter(burst=10**9)  # these tests count refusals, not the limit
    return verifier, env


async def status_of(v: Verifier, headers: dict, scope: str = "read", body: bytes = b"") -> tuple[int, str] | None:
    method = "GET" if scope == "read" else "POST"
    try:
        await v.authorize(method, "/v1/x", headers, body, scope)
    except AuthError as exc:
        return exc.status, exc.code
    return None


def good(scopes: tuple[str, ...] = ("read", "control")) -> dict[str, Any]:
    return issue(ROOT, DEV, scopes, days=30, now_s=NOW_S - 100)


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=300))
@settings(max_examples=200, deadline=None)
def test_hmac_matches_the_standard_library(key: bytes, message: bytes) -> None:
    assert hmac_sha256(key, message) == hmac.new(key, message, sha256).digest()


@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_tampered_tokens_are_never_accepted(data: st.DataObject) -> None:
    token = good()["token"]
    raw = bytearray(codec.b64u_decode(token[4:]))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(0, len(raw)))
        raw = raw[:i] + data.draw(st.binary(min_size=1, max_size=8)) + raw[i:]
    bad = "bp1." + codec.b64u_encode(bytes(raw))

    async def check() -> None:
        v, _ = await memory_verifier()
        result = await status_of(v, {"authorization": "Bearer " + bad})
        assert result is not None and result[0] in (401, 403), result

    run(check())


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_garbage_authorization_is_refused_not_crashed(text: str) -> None:
    async def check() -> None:
        v, _ = await memory_verifier()
        result = await status_of(v, {"authorization": text})
        assert result is not None and result[0] == 401

    run(check())


def test_ten_thousand_generated_bad_tokens_are_all_refused() -> None:
    """Bounded: one verifier, 10,000 tokens (tampered, forged, expired, other device, garbage)."""
    rng = random.Random(7)
    other = bytes(32)

    async def check() -> dict[str, int]:
        v, _ = await memory_verifier()
        base = codec.b64u_decode(good()["token"][4:])
        for i in range(10_000):
            pick = i % 5
            if pick == 0:
                raw = bytearray(base)
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
                token = "bp1." + codec.b64u_encode(bytes(raw))
            elif pick == 1:
                token = issue(other, DEV, ["read"], 1, NOW_S)["token"]
            elif pick == 2:
                token = issue(ROOT, DEV, ["read"], 1, NOW_S - 10 * 86400)["token"]
            elif pick == 3:
                token = issue(ROOT, "th-%d" % i, ["read"], 1, NOW_S)["token"]
            else:
                token = "bp1." + codec.b64u_encode(rng.randbytes(rng.randrange(0, 120)))
            assert await status_of(v, {"authorization": "Bearer " + token}) is not None, (i, token)
        return v.stats()

    stats = run(check())
    assert stats["ok"] == 0
    assert sum(n for code, n in stats.items() if code != "ok") == 10_000
    assert {"bad_mac", "expired", "wrong_device", "malformed"} <= set(stats)


def test_signed_request_headers_from_the_issuer_verify() -> None:
    async def check() -> None:
        v, env = await memory_verifier()
        issued = good()
        body = json.dumps({"setpoint_c": 21}).encode()
        headers = sign_headers(issued, "POST", "/v1/x", body, env.store.boot_id, v.clock.now_ms())
        claims = await v.authorize("POST", "/v1/x", headers, body, "control")
        assert claims["signed"] and claims["tid"] == issued["tid"]
        assert await status_of(v, headers, "control", body) == (401, "replayed")
        assert await status_of(v, headers, "admin", body) == (403, "wrong_scope")

    run(check())


def test_replay_after_a_power_cut_on_the_flash_log_store() -> None:
    """Accept a signed request, cut the power (only synced bytes survive), recover: it stays dead."""
    from device.store.log import LogStore
    from tests.store.cutfiles import CutFiles

    issued = good()
    files = CutFiles(cut_at=None)

    async def check() -> None:
        store = LogStore(files)
        await store.open()
        clock = Clock(now_ms=60_000)
        v = Verifier(Env(clock, store, None, None), ROOT, DEV)
        headers = sign_headers(issued, "POST", "/v1/x", b"{}", store.boot_id, clock.now, nonce="cut-nonce-1")
        await v.authorize("POST", "/v1/x", headers, b"{}", "control")
        boot = store.boot_id
        # The power dies here: no close; what was not synced is lost.
        survivor = LogStore(files.crash(random.Random(1)))
        await survivor.open()
        saved = (await survivor.get_state("_lan.replay")).value  # durable before authorize returned
        assert saved["boot"] == boot and saved["seen"] == [["cut-nonce-1", 60_000]]
        assert survivor.boot_id == boot + 1
        clock2 = Clock(now_ms=60_000)  # the monotonic clock starts over after a power cut
        v2 = Verifier(Env(clock2, survivor, None, None), ROOT, DEV)
        assert await status_of(v2, headers, "control", b"{}") == (401, "wrong_boot")
        fresh = sign_headers(issued, "POST", "/v1/x", b"{}", survivor.boot_id, clock2.now, nonce="cut-nonce-2")
        assert (await v2.authorize("POST", "/v1/x", fresh, b"{}", "control"))["signed"]
        await survivor.close()

    run(check())


def test_replay_state_survives_reopening_a_sqlite_store(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    issued = good()

    async def check() -> None:
        store = SqliteStore(path, fsync=True)
        await store.open()
        clock = Clock(now_ms=60_000)
        v = Verifier(Env(clock, store, None, None), ROOT, DEV)
        headers = sign_headers(issued, "POST", "/v1/x", b"{}", store.boot_id, clock.now)
        await v.authorize("POST", "/v1/x", headers, b"{}", "control")
        boot = store.boot_id
        await store.close()
        again = SqliteStore(path)
        await again.open()
        assert again.boot_id == boot + 1
        assert (await again.get_state("_lan.replay")).value["boot"] == boot
        v2 = Verifier(Env(Clock(now_ms=60_000), again, None, None), ROOT, DEV)
        assert await status_of(v2, headers, "control", b"{}") == (401, "wrong_boot")
        await again.close()

    run(check())


def test_revocation_and_rotation_arrive_through_the_shadow_merge() -> None:
    """The issuer's desired state, merged by the device's shadow rules, revokes and rotates."""
    issuer = TokenIssuer({DEV: ROOT})
    first = issuer.issue(DEV, ["read"], days=30, now_s=NOW_S - 100)
    second = issuer.issue(DEV, ["read"], days=30, now_s=NOW_S - 100)

    async def apply(v: Verifier, env: Env, desired_version: int, last_applied: int) -> int:
        desired = {"version": desired_version, "state": {}}
        for key, value in issuer.desired_state(DEV, NOW_S).items():
            desired["state"][key] = {"value": value, "stamp": 1}
        local = await env.store.load_state()
        changes, _report, applied = shadow.merge(local, desired, SHADOW_POLICIES, "latest_wins", last_applied)
        for key, value, _stamp in changes:
            await env.store.put_state(key, value, "cloud")
        return int(applied)

    async def check() -> None:
        v, env = await memory_verifier()
        for t in (first, second):
            assert await status_of(v, {"authorization": "Bearer " + t["token"]}) is None
        issuer.revoke(DEV, first)
        applied = await apply(v, env, 1, 0)
        assert await status_of(v, {"authorization": "Bearer " + first["token"]}) == (401, "revoked")
        assert await status_of(v, {"authorization": "Bearer " + second["token"]}) is None
        issuer.rotate(DEV)
        await apply(v, env, 2, applied)
        assert await status_of(v, {"authorization": "Bearer " + second["token"]}) == (401, "key_rotated")
        third = issuer.issue(DEV, ["read"], days=30, now_s=NOW_S - 100)
        assert third["key_gen"] == 1
        assert await status_of(v, {"authorization": "Bearer " + third["token"]}) is None

    run(check())


def test_revocations_are_dropped_from_desired_once_the_token_expired() -> None:
    issuer = TokenIssuer({DEV: ROOT})
    t = issuer.issue(DEV, ["read"], days=1, now_s=NOW_S)
    issuer.revoke(DEV, t)
    assert issuer.desired_state(DEV, NOW_S)["lan.revoked"] == [t["tid"]]
    assert issuer.desired_state(DEV, NOW_S + 86400)["lan.revoked"] == []
    assert "hidden" in repr(issuer)


def test_load_verifier_reads_the_key_file_and_names_the_device(tmp_path: Path) -> None:
    from device import log

    lines: list[str] = []
    log.set_sink(lines.append)
    env = Env(Clock(), MemoryStore(), None, None)
    try:
        assert load_verifier(env, {"key_file": None}) is None
        assert load_verifier(env, {"key_file": str(tmp_path / "missing.lankey")}) is None
        bad = tmp_path / "bad.lankey"
        bad.write_text("abcd" * 15 + "zz\n")  # almost a key: its text must not reach the log
        assert load_verifier(env, {"key_file": str(bad)}) is None
    finally:
        log.set_sink(None)
    assert len(lines) == 2 and all("control refused" in line for line in lines)
    assert not any("abcd" in line for line in lines)
    path = tmp_path / "th-07.lankey"
    path.write_text(ROOT.hex() + "\n")
    v = load_verifier(env, {"key_file": str(path), "replay_window_ms": 60_000})
    assert v is not None and v.device_id == "th-07" and v.replay.window_ms == 60_000
    assert ROOT.hex() not in repr(v) and ROOT.hex() not in json.dumps(v.stats())
    assert load_verifier(env, {"key_file": str(path)}, device_id="other").device_id == "other"


def test_a_store_that_cannot_save_the_replay_state_refuses_with_503() -> None:
    from device.errors import StoreWriteError

    class FullFlash(MemoryStore):
        async def _save_state(self, entry: Any, value_json: bytes) -> None:
            if entry.key.startswith("_lan."):
                raise StoreWriteError("ENOSPC")
            await super()._save_state(entry, value_json)

    async def check() -> None:
        store = FullFlash()
        await store.open()
        clock = Clock()
        v = Verifier(Env(clock, store, None, None), ROOT, DEV)
        headers = sign_headers(good(), "POST", "/v1/x", b"{}", store.boot_id, clock.now)
        assert await status_of(v, headers, "control", b"{}") == (503, "store_error")
        assert await status_of(v, {"authorization": headers["authorization"]}) is None  # reads still work
        assert v.limiter.retry_after_ms(None, clock.now) == 0  # the device's fault is not the client's

    run(check())
