"""Power cuts at every byte: the log backend keeps every promise it made, whatever byte the power died at.

A seeded workload (``tests/store/workload.py``: appends of telemetry, events
and results, acks, state puts, inbox changes, compactions, clean reopens and
soft reboots) runs on ``LogStore`` over ``CutFiles``, which cuts the power at
tick ``k`` (a byte written or a file operation). The medium is then crashed
(synced bytes kept, a random prefix of the rest, pending directory changes
applied up to a random point), a new ``LogStore`` opens what is left, and
``tests.store.ledger.check`` verifies what it promised: open never raises;
every append that returned and was not acked is there (telemetry possibly
inside an aggregate); seqs never go backwards or repeat; state is the last
put that returned or the interrupted one; the boot id goes up. Then life goes
on: new appends land above every old seq and survive a clean reopen.

1. Exhaustive: one small scripted workload cut at every tick, 0..end.
2. Random: many seeded workloads, each cut twice in a row (crash, recover,
   keep writing, crash again: recovery must leave a log that survives the
   next crash), some reopened through plain ``Files`` on disk, a third of
   the crashes leaving zeros or noise after the kept bytes of a torn file.
3. Group commit: up to four appends at once share one sync
   (``group_commit=True``); a cut leaves several of them in flight.
"""

import asyncio
import random
import time

from tests.store.cutfiles import CutFiles, PowerCut
from tests.store.ledger import Ledger, check
from tests.store.workload import MIX, MIX_HOARD, Workload

SMALL = {"budget_bytes": 300, "fsync": True, "segment_bytes": 256, "erase_block_bytes": 256, "erase_cycles": 100000}
LARGE = {"budget_bytes": 1500, "fsync": True, "segment_bytes": 512, "erase_block_bytes": 512, "erase_cycles": 100000}

# The exhaustive workload: every kind of operation, segment rotation, a fold, a reopen and a reboot.
SCRIPT = (
    "telemetry telemetry event put_a telemetry inbox_add telemetry result ack put_b telemetry telemetry "
    "event reopen telemetry telemetry ack_seqs put_a telemetry telemetry telemetry telemetry compact "
    "telemetry reboot event put_a inbox_expire telemetry ack telemetry"
).split()

GROUP_TRIALS = 300  # concurrent appenders sharing syncs (LogStore(group_commit=True))
RANDOM_TRIALS = 1200  # most cut twice: over 2000 cuts; half with acks rare (folds, a full ring, a full budget)
RANDOM_STEPS = (40, 120)
PLAIN_FILES_EVERY = 20  # every n-th random trial reopens through plain Files on disk


def log_maker(params: dict):  # type: ignore[no-untyped-def]
    from device.store.log import LogStore

    def make(files):  # type: ignore[no-untyped-def]
        return LogStore(files, **params)

    return make


async def run_until_cut(workload: Workload, files: CutFiles, script=None, steps: int = 0) -> bool:  # type: ignore[no-untyped-def]
    """Run the workload from opening ``files``; True if it finished before the cut."""
    try:
        await workload.open(files)
        if script is not None:
            for op in script:
                await workload.step(op)
        else:
            await workload.run(steps)
        await workload.close()
    except PowerCut:
        return False
    return True


async def reopen_and_check(workload: Workload, files, problems: list) -> None:  # type: ignore[no-untyped-def]
    """Open a new store on ``files`` (it must not raise), check the ledger, and hand it to the workload."""
    store = workload.make_store(files)
    await store.open()
    problems.extend(await check(store, workload.ledger))
    workload.store = store
    workload.files = files


async def life_goes_on(workload: Workload, problems: list) -> dict:
    """After recovery: write more, close, reopen: what was written after the crash is there too; its stats."""
    for op in ("telemetry", "event", "put_a", "telemetry"):
        await workload.step(op)
    await workload.close()
    store = workload.make_store(workload.files)
    await store.open()
    problems.extend(await check(store, workload.ledger))
    stats = store.stats()
    await store.close()
    return stats  # type: ignore[no-any-return]


async def cut_once(params: dict, seed: int, cut_at: int | None, script) -> tuple:  # type: ignore[no-untyped-def]
    workload = Workload(log_maker(params), Ledger(), random.Random(seed))
    files = CutFiles(cut_at=cut_at)
    finished = await run_until_cut(workload, files, script=script)
    problems = list(workload.problems)
    image = files.crash(random.Random(seed * 7919 + (cut_at or 0)))
    await reopen_and_check(workload, image, problems)
    stats = await life_goes_on(workload, problems)
    return problems, finished, files.ticks, stats


async def test_power_cut_at_every_tick_of_a_small_workload(layer_summary):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    problems, finished, total, stats = await cut_once(SMALL, 1, None, SCRIPT)
    assert finished and not problems, problems
    # The script folds telemetry, hits the budget once and starts many segments: those writes get cut too.
    assert stats["counters"]["compacted"] > 0 and stats["counters"]["full_rejections"] > 0, stats["counters"]
    assert stats["wear"]["segments_started"] >= 10, stats["wear"]
    failures = []
    for cut_at in range(total + 1):
        found, finished, _, _ = await cut_once(SMALL, 1, cut_at, SCRIPT)
        assert finished == (cut_at >= total)
        failures.extend("cut_at=%d: %s" % (cut_at, p) for p in found)
        if len(failures) > 30:
            break
    line = "power cut, exhaustive: %d cut points (every tick of %d ops), %.1f s" % (
        total + 1,
        len(SCRIPT),
        time.monotonic() - started,
    )
    print(line)
    layer_summary(line)
    assert not failures, "%d broken promises (repro: cut_once(SMALL, 1, cut_at, SCRIPT)):\n%s" % (
        len(failures),
        "\n".join(failures[:30]),
    )


async def test_power_cuts_at_random_points_twice_in_a_row(tmp_path, layer_summary):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    make = log_maker(LARGE)
    # Ticks per step, to spread the cuts over the whole run (a cut past the end is a clean shutdown).
    probe = Workload(make, Ledger(), random.Random(0))
    probe_files = CutFiles()
    await run_until_cut(probe, probe_files, steps=100)
    per_step = probe_files.ticks / 100
    failures: list = []
    cuts = finished_runs = plain = 0
    seen = {"compacted": 0, "full_rejections": 0, "segments_started": 0, "landed": 0, "resurrected": 0}
    for trial in range(RANDOM_TRIALS):
        seed = 1000 + trial
        rng = random.Random(seed)
        steps = rng.randrange(*RANDOM_STEPS)
        workload = Workload(make, Ledger(), random.Random(seed), MIX_HOARD if trial % 2 else MIX)
        problems: list = []
        files = CutFiles(cut_at=rng.randrange(int(per_step * steps * 1.1) + 1))
        finished_runs += await run_until_cut(workload, files, steps=steps)
        cuts += 1
        problems.extend(workload.problems)
        image = files.crash(rng, junk=trial % 3 == 0)
        if trial % PLAIN_FILES_EVERY == 0:
            # Reopen from a real directory: the backend on plain Files reads what the medium left.
            plain += 1
            await reopen_and_check(workload, image.materialize(str(tmp_path / ("t%d" % trial))), problems)
        else:
            await reopen_and_check(workload, image, problems)
            # Crash again while writing on the recovered medium.
            image.cut_at = rng.randrange(int(per_step * 40))
            try:
                await workload.run(rng.randrange(10, 40))
            except PowerCut:
                pass
            cuts += 1
            await reopen_and_check(workload, image.crash(rng, junk=trial % 3 == 1), problems)
        stats = await life_goes_on(workload, problems)
        seen["compacted"] += stats["counters"]["compacted"]
        seen["full_rejections"] += workload.full_rejections
        seen["segments_started"] += stats["wear"]["segments_started"]
        seen["landed"] += workload.ledger.inflight_landed
        seen["resurrected"] += workload.ledger.resurrected
        failures.extend("seed=%d: %s" % (seed, p) for p in problems)
        if len(failures) > 30:
            break
    line = "power cut, random: %d cuts in %d workloads (%d ran to the end, %d reopened via plain Files), %.1f s" % (
        cuts,
        trial + 1,
        finished_runs,
        plain,
        time.monotonic() - started,
    )
    print(line, seen)
    layer_summary(line)
    # The workloads reached the interesting paths (folds, a full budget, many segments).
    assert seen["compacted"] > 100 and seen["full_rejections"] > 10 and seen["segments_started"] > 5000, seen
    assert not failures, "%d broken promises:\n%s" % (len(failures), "\n".join(failures[:30]))


async def concurrent_rounds(workload: Workload, rng: random.Random, rounds: int) -> None:
    """Rounds of 1-4 appends at once (one sync between them), with acks and puts in between."""
    for _ in range(rounds):
        ops = [rng.choice(("telemetry", "telemetry", "event", "result")) for _ in range(rng.randrange(1, 5))]
        tasks = [asyncio.ensure_future(workload.step(op)) for op in ops]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
        if failed:
            # The power is gone: appends still waiting for the shared sync never hear back.
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks)
            raise failed[0].exception()  # type: ignore[misc]
        if rng.random() < 0.2:
            await workload.step(rng.choice(("ack", "ack_seqs", "put_a", "reopen")))


async def test_power_cuts_with_group_commit_and_concurrent_appenders(layer_summary):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    params = dict(LARGE)
    params["group_commit"] = True
    make = log_maker(params)
    probe = Workload(make, Ledger(ordered=False), random.Random(0))
    probe_files = CutFiles()
    await probe.open(probe_files)
    await concurrent_rounds(probe, random.Random(0), 40)
    per_round = probe_files.ticks / 40
    failures: list = []
    shared = 0
    for trial in range(GROUP_TRIALS):
        seed = 50000 + trial
        rng = random.Random(seed)
        workload = Workload(make, Ledger(ordered=False), random.Random(seed))
        problems: list = []
        files = CutFiles(cut_at=rng.randrange(int(per_round * 40)))
        try:
            await workload.open(files)
            await concurrent_rounds(workload, rng, 40)
        except PowerCut:
            pass
        shared += len(workload.ledger.inflight) > 1
        problems.extend(workload.problems)
        await reopen_and_check(workload, files.crash(rng, junk=trial % 3 == 0), problems)
        await life_goes_on(workload, problems)
        failures.extend("seed=%d: %s" % (seed, p) for p in problems)
        if len(failures) > 30:
            break
    line = "power cut, group commit: %d cuts (%d with several appends in flight), %.1f s" % (
        trial + 1,
        shared,
        time.monotonic() - started,
    )
    print(line)
    layer_summary(line)
    assert shared > GROUP_TRIALS // 10, "cuts rarely caught appends sharing a sync"
    assert not failures, "%d broken promises:\n%s" % (len(failures), "\n".join(failures[:30]))
