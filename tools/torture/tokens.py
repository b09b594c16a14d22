"""``tokens``: generated bad and good LAN tokens and signed requests against the real verifier.

Three phases, all on ``device.lan.token.Verifier`` with the issuer's code
(``cloud_shim.tokens``) and the codec (``device.lan.tokencodec``); the bench and case helpers
are in ``tokens_cases``, the generated kinds in ``tokens_kinds``:

1. **Bulk.** Seeded draws of the kinds (forged, tampered,
   respelled, truncated, garbage, expired, not yet valid, wrong device, wrong
   scope, revoked, retired key generation, unsigned, wrong boot, skewed, bad
   numbers, bad nonces, bad signatures, replays; the 64-nonce rollover, the
   window's edges, a future ``iat``, an offline boot) and valid requests in
   between. Every bad one must be refused with the right code (and status),
   every valid one accepted.
2. **Power cut.** Signed requests accepted on a real store (the flash ``log``
   store on a medium that keeps only synced bytes at a power cut, and sqlite on
   a file abandoned without close), then a verifier restarted in the same boot
   and one after the cut replay each of them: all must be refused, and a
   request signed for the new boot must pass.
3. **Rate limit.** The default failure limiter: one peer's failures end in 429
   (also for a valid token, also from another port), another peer is not
   affected, and the bucket refills.

Sizes: ``ci`` 13,000 bulk draws (about 10,000 bad) and 30 power cuts; ``long`` 130,000 and 300;
both stop early at a wall bound (60 s / 900 s) and say so in ``bounded``.
``run`` takes ``verifier_cls`` and ``limiter_cls`` so a test can seed a bug.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from typing import Any

from device.env import Env
from device.lan.token import Verifier
from device.lan.tokenlimit import FailureLimiter
from tools.torture import tokens_cases as tc
from tools.torture import tokens_kinds as kinds

NAME = "tokens"
SUMMARY = "bad/valid LAN tokens and signed requests, replay across power cuts, failure rate limit"

SIZES = {"ci": (13_000, 30, 50.0), "long": (130_000, 300, 900.0)}  # bulk draws, power cuts, wall bound (s)
REFUSALS = (
    "missing_token",
    "malformed",
    "bad_mac",
    "key_rotated",
    "revoked",
    "expired",
    "not_yet_valid",
    "unsigned",
    "wrong_boot",
    "skewed",
    "bad_signature",
    "replayed",
    "wrong_device",
    "wrong_scope",
)
FRESH_EVERY = 50  # about one draw in this many runs a fresh-bench kind


class Tally:
    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.bad_tried = 0
        self.bad_accepted = 0
        self.bad_wrong_code = 0
        self.valid_tried = 0
        self.valid_rejected = 0
        self.codes: dict[str, int] = {}
        self.examples: list[str] = []  # the first few failures, for the report

    def note(self, case: tc.Case, got: str | None) -> bool:
        """Count one answer; True when the request was accepted (right or wrong)."""
        if got is not None:
            self.codes[got] = self.codes.get(got, 0) + 1
        if case.want is None:
            self.valid_tried += 1
            if got is not None:
                self.valid_rejected += 1
                self.fail("valid %s refused: %s" % (case.kind, got), case)
            return got is None
        self.bad_tried += 1
        if got is None:
            self.bad_accepted += 1
            self.fail("bad %s ACCEPTED" % case.kind, case)
        elif got not in case.want:
            self.bad_wrong_code += 1
            self.fail("bad %s refused as %s, want %s" % (case.kind, got, "/".join(sorted(case.want))), case)
        return got is None

    def fail(self, what: str, case: tc.Case) -> None:
        if len(self.examples) < 8:
            shown = {k: v[:24] for k, v in case.headers.items() if k.startswith("x-bp-")}
            self.examples.append("%s (%s %s, %s)" % (what, case.method, case.target, shown))
            if self.progress is not None:
                print("tokens: " + self.examples[-1], file=self.progress)


def _pick(rng: random.Random) -> Any:
    total = sum(w for _, w in kinds.BULK)
    r = rng.randrange(total)
    for maker, weight in kinds.BULK:
        if r < weight:
            return maker
        r -= weight
    raise AssertionError("unreachable")


async def bulk(draws: int, rng: random.Random, tally: Tally, verifier_cls: Any, deadline: float) -> int:
    bench = await tc.Bench(verifier_cls).open(rng)
    history: list[tc.Case] = []  # accepted signed requests on the main bench, for replays
    done = 0
    for done in range(1, draws + 1):
        if done % 256 == 0 and time.monotonic() > deadline:
            return done - 1
        if tally.progress is not None and done % 10_000 == 0:
            print(
                "tokens: %d draws, %d bad refused" % (done, tally.bad_tried - tally.bad_accepted), file=tally.progress
            )
        if rng.randrange(FRESH_EVERY) == 0:
            maker, wall = rng.choice(kinds.FRESH)
            own = await tc.Bench(verifier_cls, wall=wall).open(rng)
            for case in maker(own, rng):
                tally.note(case, await own.ask(case))
            continue
        bench.clock.now += rng.randint(1, 60)
        maker = _pick(rng)
        cases = maker(bench, rng, history) if maker is kinds.k_replayed else maker(bench, rng)
        for case in cases:
            if tally.note(case, await bench.ask(case)) and case.kind == "valid_signed":
                history.append(case)
                if len(history) > 4000:
                    del history[:2000]
    return done


# -- power cuts -------------------------------------------------------------------------


class CutFigures:
    def __init__(self) -> None:
        self.cuts = 0
        self.replays_tried = 0
        self.replays_accepted = 0
        self.restart_replays_accepted = 0
        self.fresh_rejected = 0


async def _accept_some(store: Any, now_ms: int, rng: random.Random, verifier_cls: Any, tally: Tally) -> list[tc.Case]:
    bench = tc.Bench(verifier_cls)
    bench.store, bench.clock.now = store, now_ms
    bench.verifier = verifier_cls(Env(bench.clock, store, None, None), tc.ROOT, tc.DEVICE, tc.WINDOW_MS, tc.unlimited())
    accepted = []
    for _ in range(rng.randint(1, 4)):
        bench.clock.now += rng.randint(1, 20)
        case = tc.signed(bench, rng, tc.token(rng, bench.clock.wall_s()), "control")
        if tally.note(case, await bench.ask(case)):
            accepted.append(case)
    return accepted


async def _replays(store: Any, now_ms: int, cases: list[tc.Case], verifier_cls: Any, want: str, tally: Tally) -> int:
    """Replay ``cases`` to a new verifier on ``store``; how many were accepted."""
    bench = tc.Bench(verifier_cls)
    bench.store, bench.clock.now = store, now_ms
    bench.verifier = verifier_cls(Env(bench.clock, store, None, None), tc.ROOT, tc.DEVICE, tc.WINDOW_MS, tc.unlimited())
    accepted = 0
    for case in cases:
        replay = tc.again(case, {want})
        if tally.note(replay, await bench.ask(replay)):
            accepted += 1
    return accepted


async def _fresh_passes(store: Any, now_ms: int, rng: random.Random, verifier_cls: Any, tally: Tally) -> bool:
    bench = tc.Bench(verifier_cls)
    bench.store, bench.clock.now = store, now_ms
    bench.verifier = verifier_cls(Env(bench.clock, store, None, None), tc.ROOT, tc.DEVICE, tc.WINDOW_MS, tc.unlimited())
    scope = "admin" if rng.random() < 0.3 else "control"
    case = tc.signed(bench, rng, tc.token(rng, bench.clock.wall_s(), ("control", "admin")), scope)
    return tally.note(case, await bench.ask(case))


async def _kill(store: Any) -> None:
    """A sqlite store as a killed process leaves it: no final commit, no orderly close."""
    committer = store._committer
    if committer is not None:
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
    await store._drop_connection()


async def power_cuts(count: int, rng: random.Random, tally: Tally, verifier_cls: Any, deadline: float) -> CutFigures:
    """Half on the flash log store with real power cuts (unsynced bytes lost), half on sqlite files
    abandoned without close. After each: same-boot restart replays -> replayed; after the cut ->
    wrong_boot, with the monotonic clock back where it was (only the boot id protects)."""
    from device.store.log import LogStore
    from device.store.sqlite import SqliteStore
    from tools.torture.repo_tests import use_repo_tests

    use_repo_tests()
    from tests.store.cutfiles import CutFiles

    figures = CutFigures()
    root = tempfile.mkdtemp(prefix="brickproof-ttokens-")
    files = CutFiles(cut_at=None)
    log_store = LogStore(files)
    await log_store.open()
    path = root + "/store.sqlite"
    sqlite_store = SqliteStore(path, fsync=True)
    await sqlite_store.open()
    try:
        for i in range(count):
            if time.monotonic() > deadline:
                break
            on_log = i % 2 == 0
            store = log_store if on_log else sqlite_store
            now_ms = rng.randint(10_000, 10**7)
            accepted = await _accept_some(store, now_ms, rng, verifier_cls, tally)
            figures.restart_replays_accepted += await _replays(
                store, now_ms + 50, accepted, verifier_cls, "replayed", tally
            )
            if on_log:  # the power dies: no close, what was not synced is gone
                files = files.crash(rng)
                log_store = store = LogStore(files)
            else:  # the process dies: pending commits are cancelled, the connection dropped unclosed
                await _kill(store)
                sqlite_store = store = SqliteStore(path, fsync=True)
            await store.open()
            figures.cuts += 1
            figures.replays_tried += len(accepted)
            figures.replays_accepted += await _replays(store, now_ms + 50, accepted, verifier_cls, "wrong_boot", tally)
            if not await _fresh_passes(store, now_ms + 100, rng, verifier_cls, tally):
                figures.fresh_rejected += 1
    finally:
        for store in (log_store, sqlite_store):
            try:
                await store.close()
            except Exception:  # tearing down after a failure: report that one
                pass
        shutil.rmtree(root, ignore_errors=True)
    return figures


# -- rate limit ---------------------------------------------------------------------------


async def rate_limit(rng: random.Random, tally: Tally, verifier_cls: Any, limiter_cls: Any) -> dict[str, int]:
    """Peer A fails until refused with 429; B is unaffected; A's bucket refills one try per 3 s."""
    bench = await tc.Bench(verifier_cls, limiter=limiter_cls()).open(rng)
    now_s = bench.clock.wall_s()
    forged = {"authorization": "Bearer " + tc.token(rng, now_s, root=tc.OTHER_ROOT)["token"]}
    good = tc.bearer(tc.token(rng, now_s, ("read",)))

    async def code(headers: dict[str, str], peer: Any) -> str | None:
        return await bench.ask(tc.Case("rate", "GET", "/v1/state", headers, b"", "read", {"bad_mac"}, peer))

    failures_before = 0
    limited = False
    for _ in range(200):
        got = await code(forged, ("10.0.0.5", 40000 + rng.randrange(20000)))
        if got == "rate_limited":
            limited = True
            break
        failures_before += 1
    other_port = await code(good, ("10.0.0.5", 1234)) == "rate_limited"  # a valid token, a new port
    other_ok = await code(good, ("10.0.0.6", 5555)) is None and await code(forged, ("10.0.0.6", 5556)) == "bad_mac"
    bench.clock.now += 3100
    one_more = await code(forged, ("10.0.0.5", 1)) == "bad_mac"
    then_limited = await code(forged, ("10.0.0.5", 2)) == "rate_limited"
    return {
        "rate_limit_failures_before_429": failures_before,
        "rate_limit_engaged": int(limited and other_port and failures_before == 20),
        "rate_limit_per_peer": int(other_ok),
        "rate_limit_refills": int(one_more and then_limited),
    }


def run(
    size: str,
    seed: int,
    progress: Any,
    *,
    verifier_cls: Any = Verifier,
    limiter_cls: Any = FailureLimiter,
    draws: int | None = None,
    cuts: int | None = None,
) -> dict[str, Any]:
    want_draws, want_cuts, bound_s = SIZES[size]
    draws = want_draws if draws is None else draws
    cuts = want_cuts if cuts is None else cuts
    rng = random.Random(seed)
    tally = Tally(progress)
    started = time.monotonic()
    deadline = started + bound_s

    async def main() -> tuple[int, CutFigures, dict[str, int]]:
        done = await bulk(draws, rng, tally, verifier_cls, deadline - bound_s * 0.2)
        cut = await power_cuts(cuts, rng, tally, verifier_cls, deadline)
        limit = await rate_limit(rng, tally, verifier_cls, limiter_cls)
        return done, cut, limit

    done, cut, limit = asyncio.run(main())
    elapsed = time.monotonic() - started
    figures: dict[str, Any] = {
        "draws": done,
        "bad_tried": tally.bad_tried,
        "bad_accepted": tally.bad_accepted,
        "bad_wrong_code": tally.bad_wrong_code,
        "valid_tried": tally.valid_tried,
        "valid_rejected": tally.valid_rejected,
        "refusal_codes_seen": sum(1 for code in REFUSALS if tally.codes.get(code)),
        "power_cuts": cut.cuts,
        "replays_after_power_cut_tried": cut.replays_tried,
        "replays_after_power_cut_accepted": cut.replays_accepted,
        "replays_after_restart_accepted": cut.restart_replays_accepted,
        "fresh_after_power_cut_rejected": cut.fresh_rejected,
        **limit,
        "bounded": int(done < draws or cut.cuts < cuts),
        "wall_s": round(elapsed, 1),
        "cases_per_s": round((tally.bad_tried + tally.valid_tried) / elapsed) if elapsed else 0,
    }
    if tally.examples:
        figures["first_failures"] = tally.examples
    goals = {
        "bad_accepted": ["==", 0],
        "bad_wrong_code": ["==", 0],
        "valid_rejected": ["==", 0],
        "bad_tried": [">=", 1000],
        "refusal_codes_seen": ["==", len(REFUSALS)],
        "power_cuts": [">=", 1],
        "replays_after_power_cut_accepted": ["==", 0],
        "replays_after_restart_accepted": ["==", 0],
        "fresh_after_power_cut_rejected": ["==", 0],
        "rate_limit_engaged": ["==", 1],
        "rate_limit_per_peer": ["==", 1],
        "rate_limit_refills": ["==", 1],
    }
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
