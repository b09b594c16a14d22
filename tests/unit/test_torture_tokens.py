"""The ``tokens`` harness can fail: each seeded verifier bug makes it miss the goal that guards it."""

from __future__ import annotations

import asyncio
from typing import Any

from device.env import Env
from device.lan.replay import ReplayGuard
from device.lan.token import AuthError, Verifier
from device.lan.tokenlimit import FailureLimiter
from device.store.memory import MemoryStore
from tools.torture import failed_goals, tokens
from tools.torture import tokens_cases as tc

SMALL = {"draws": 1500, "cuts": 6}


def missed(result: dict[str, Any]) -> set[str]:
    return {line.split(":")[0] for line in failed_goals(result)}


def test_a_small_run_meets_every_goal() -> None:
    result = tokens.run("ci", 3, None, **SMALL)  # type: ignore[arg-type]
    assert failed_goals(result) == []
    figures = result["figures"]
    assert figures["bad_tried"] > 1000 and figures["valid_tried"] > 500
    assert figures["replays_after_power_cut_tried"] >= 6


class NoExpiry(Verifier):
    async def _check_time(self, claims: dict, now_ms: int) -> None:  # the check forgotten
        return None


def test_a_verifier_that_skips_the_expiry_check_is_caught() -> None:
    result = tokens.run("ci", 3, None, verifier_cls=NoExpiry, **SMALL)  # type: ignore[arg-type]
    assert {"bad_accepted", "refusal_codes_seen"} <= missed(result)
    assert any("expired" in line for line in result["figures"]["first_failures"])


class AnyBoot(ReplayGuard):
    def check(self, boot: int, ts: int, nonce: str, now_ms: int) -> str | None:
        return super().check(self.boot, ts, nonce, now_ms)  # the boot id not compared


class BootBlind(Verifier):
    async def _load(self, now_ms: int) -> None:
        await super()._load(now_ms)
        self.replay.__class__ = AnyBoot


def test_a_verifier_that_ignores_the_boot_id_accepts_replays_after_a_power_cut() -> None:
    result = tokens.run("ci", 3, None, verifier_cls=BootBlind, **SMALL)  # type: ignore[arg-type]
    assert "replays_after_power_cut_accepted" in missed(result)
    assert result["figures"]["replays_after_power_cut_accepted"] > 0


class Forgetful(Verifier):
    async def _put(self, key: str, value: Any) -> None:
        if key != "_lan.replay":  # the replay guard never reaches the store
            await super()._put(key, value)


def test_a_verifier_that_does_not_persist_the_replay_guard_is_caught_on_restart() -> None:
    result = tokens.run("ci", 3, None, verifier_cls=Forgetful, **SMALL)  # type: ignore[arg-type]
    assert "replays_after_restart_accepted" in missed(result)


class NoLimit(FailureLimiter):
    def retry_after_ms(self, peer: Any, now_ms: int) -> int:
        return 0


def test_a_limiter_that_never_limits_is_caught() -> None:
    result = tokens.run("ci", 3, None, limiter_cls=NoLimit, **SMALL)  # type: ignore[arg-type]
    assert "rate_limit_engaged" in missed(result)


class SharedBucket(FailureLimiter):
    def _key(self, peer: Any, now_ms: int) -> str:
        return "*"  # every peer in one bucket: one attacker locks everyone out


def test_a_limiter_without_per_peer_buckets_is_caught() -> None:
    result = tokens.run("ci", 3, None, limiter_cls=SharedBucket, **SMALL)  # type: ignore[arg-type]
    assert "rate_limit_per_peer" in missed(result)


def test_signed_numbers_take_ascii_digits_only() -> None:
    """Found by the harness: CPython's isdigit()/int() took "١٢" as 12 (MicroPython refused it)."""

    async def check() -> None:
        store = MemoryStore()
        await store.open()
        bench = tc.Bench()
        bench.store = store
        bench.verifier = Verifier(Env(bench.clock, store, None, None), tc.ROOT, tc.DEVICE, tc.WINDOW_MS)
        import random

        rng = random.Random(1)
        for spelled in ("\u0661\u0662", "\uff11\uff12", "1\u0662"):  # Arabic-Indic, fullwidth, mixed
            case = tc.signed(bench, rng, tc.token(rng, bench.clock.wall_s()), "control")
            case.headers["x-bp-ts"] = spelled
            try:
                await bench.verifier.authorize(case.method, case.target, case.headers, case.body, "control")
            except AuthError as exc:
                assert exc.code == "malformed", (spelled, exc.code)
            else:
                raise AssertionError("accepted " + spelled)

    asyncio.run(check())
