"""``store-powercut``: power cuts under the ``log`` backend at every I/O operation; SIGKILLs under ``sqlite``.

Log backend (``store_powercut_media``: held writes, sector damage, out of
order): a fixed seeded workload is cut at EVERY I/O operation, each cut
reopened under every damage variant; then random workloads cut at random
operations, half of them cut a second time while writing on the recovered
medium. Each reopened store is checked against a ledger
(``store_powercut_ledger``), written to a little more and reopened once more.

Sqlite backend: Python's sqlite3 has no VFS hook, so no power cut can be
simulated; ``store_powercut_sqlite`` SIGKILLs a writer process at random
points and reopens (a process crash, not a power cut). Same ledger, same goals.
"""

import copy
import random
import time
from typing import Any

from tools.torture.store_powercut_ledger import Tally, check
from tools.torture.store_powercut_media import VARIANTS, Crash, CrashFiles
from tools.torture.store_powercut_work import Workload, drive

NAME = "store-powercut"
SUMMARY = (
    "log store: power cut at every I/O op + random cuts (held writes, sector damage, out of order); "
    "sqlite: SIGKILL of a writer process (a process crash: sqlite3 has no VFS hook)"
)

# Scaled-down flash for the sweep (small segments rotate often; 128-byte sectors so one unsynced
# run spans several), and a board's own geometry (4 KiB segments and erase blocks).
SMALL = {"budget_bytes": 1500, "segment_bytes": 512, "erase_block_bytes": 128}
BOARD = {"budget_bytes": 16384, "segment_bytes": 4096, "erase_block_bytes": 4096}
SWEEP_SEED = 7
SWEEP_STEPS = {"ci": 60, "long": 160}
RANDOM = {"ci": (5000, 30.0), "long": (100000, 3 * 3600.0)}  # (random crashes, time bound s)
SQLITE = {"ci": (30, 20.0), "long": (500, 1800.0)}  # (SIGKILLs, time bound s)
AFTER_STEPS = 4  # writes after recovery, before the final clean reopen


def log_maker(params: dict[str, Any], store_class: Any = None) -> Any:
    """files -> an unopened ``LogStore`` (``store_class``: a subclass, for tests that seed a bug)."""
    from device.store.log import LogStore

    cls = store_class or LogStore

    def make(files: Any) -> Any:
        return cls(files, fsync=True, **params)

    return make


class Figures:
    def __init__(self) -> None:
        self.points = 0
        self.not_reopened = 0
        self.tally = Tally()

    def reopen_and_check(self, work: Workload, medium: CrashFiles) -> bool:
        """Open a store on ``medium`` (it must not raise) and check it; then write a little and check again."""
        self.points += 1
        try:
            work.open(medium)
        except Exception as exc:  # any exception is a store that did not reopen
            self.not_reopened += 1
            self.tally.notes.append("did not reopen: %r" % (exc,))
            return False
        before = self.tally.broken()
        drive(check(work.store, work.ledger, self.tally))
        try:
            for name in ("telemetry", "event", "put", "telemetry")[:AFTER_STEPS]:
                work.step(name)
            drive(work.store.close())
            work.open(medium)
            drive(check(work.store, work.ledger, self.tally))
        except Exception as exc:
            self.not_reopened += 1
            self.tally.notes.append("recovered store failed to go on: %r" % (exc,))
            return False
        return self.tally.broken() == before


def run_until_crash(work: Workload, medium: CrashFiles, steps: int) -> bool:
    """Open and run ``steps``; True if the power died on the way."""
    try:
        if work.store is None:
            work.open(medium)
        work.run(steps)
        drive(work.store.close())
    except Crash:
        return True
    return False


def count_ops(make_store: Any, seed: int, steps: int, sector: int) -> int:
    medium = CrashFiles(sector)
    run_until_crash(Workload(make_store, random.Random(seed)), medium, steps)
    return medium.ops


def sweep(make_store: Any, params: dict[str, int], steps: int, figures: Figures, progress: Any = None) -> int:
    """Cut the fixed workload at every I/O operation; reopen each cut under every variant. Operations swept."""
    sector = params["erase_block_bytes"]
    total = count_ops(make_store, SWEEP_SEED, steps, sector)
    for k in range(total):
        medium = CrashFiles(sector, crash_at=k)
        work = Workload(make_store, random.Random(SWEEP_SEED))
        if not run_until_crash(work, medium, steps):
            raise RuntimeError("the sweep workload is not deterministic: no crash at op %d" % k)
        work.store = work.files = None  # the crashed store is gone; the ledger and the rng are copied per variant
        for i in range(len(VARIANTS)):
            trial = copy.deepcopy(work)
            figures.reopen_and_check(trial, medium.survivor(random.Random(k * 31 + i), VARIANTS[i]))
        if progress is not None and k % 200 == 0:
            progress.write("store-powercut: sweep op %d/%d\n" % (k, total))
    return total


def random_crashes(
    make_store: Any, count: int, bound_s: float, seed: int, figures: Figures, progress: Any = None
) -> int:
    """Random workloads on both geometries, cut at random operations (half twice). Crashes done."""
    started = time.monotonic()
    probes = {}
    done = 0
    trial = 0
    while done < count and time.monotonic() - started < bound_s:
        rng = random.Random(seed * 1000003 + trial)
        params = SMALL if trial % 4 else BOARD
        maker = make_store(params)
        key = id(params)
        if key not in probes:
            probes[key] = count_ops(maker, 1, 100, params["erase_block_bytes"]) / 100.0
        per_step = probes[key]
        steps = rng.randrange(10, 120)
        medium = CrashFiles(params["erase_block_bytes"], crash_at=rng.randrange(int(per_step * steps) + 2))
        work = Workload(maker, rng)
        run_until_crash(work, medium, steps)
        survivor = medium.survivor(rng, VARIANTS[rng.randrange(len(VARIANTS))])
        work.store = None
        ok = figures.reopen_and_check(work, survivor)
        done += 1
        if ok and trial % 2:
            # Crash again while writing on the recovered medium: recovery must leave a log that survives it.
            survivor.crash_at = survivor.ops + rng.randrange(int(per_step * 30) + 2)
            run_until_crash(work, survivor, 30)
            again = survivor.survivor(rng, VARIANTS[rng.randrange(len(VARIANTS))])
            work.store = None
            figures.reopen_and_check(work, again)
            done += 1
        trial += 1
        if progress is not None and trial % 1000 == 0:
            progress.write("store-powercut: %d random crashes, %.0f s\n" % (done, time.monotonic() - started))
    return done


def run(size: str, seed: int, progress: Any = None) -> dict[str, Any]:
    return run_with(size, seed, progress, log_maker, sqlite=True)


def run_with(size: str, seed: int, progress: Any, make_store: Any, sqlite: bool = True) -> dict[str, Any]:
    """``run`` with the store maker injectable (``params -> files -> store``): tests seed bugs through it."""
    started = time.monotonic()
    figures = Figures()
    swept = sweep(make_store(SMALL), SMALL, SWEEP_STEPS[size], figures, progress)
    sweep_points = figures.points
    sweep_s = time.monotonic() - started
    count, bound = RANDOM[size]
    mark = time.monotonic()
    randoms = random_crashes(make_store, count, bound, seed, figures, progress)
    random_s = time.monotonic() - mark
    out = {
        "log_ops_swept": swept,
        "log_sweep_crash_points": sweep_points,
        "log_random_crashes": randoms,
        "log_random_target": count,
        "crash_points_tried": figures.points,
        "acknowledged_lost": figures.tally.counts["lost"],
        "stores_not_reopened": figures.not_reopened,
        "partial_records_seen": figures.tally.counts["partial"],
        "duplicates_after_replay": figures.tally.counts["duplicates"],
        "state_keys_regressed": figures.tally.counts["regressed"],
        "state_keys_wrong": figures.tally.counts["state_wrong"],
        "aggregates_read_back": figures.tally.aggregates,
        "interrupted_appends_landed": figures.tally.landed,
        "log_sweep_s": round(sweep_s, 1),
        "log_random_s": round(random_s, 1),
    }
    if sqlite:
        from tools.torture.store_powercut_sqlite import kill_runs

        kills, kill_s_bound = SQLITE[size]
        mark = time.monotonic()
        sq = kill_runs(kills, kill_s_bound, seed, progress)
        out["sqlite_kills"] = sq["kills"]
        out["sqlite_kill_target"] = kills
        out["crash_points_tried"] += sq["kills"]
        out["stores_not_reopened"] += sq["not_reopened"]
        for figure, name in (
            ("lost", "acknowledged_lost"),
            ("partial", "partial_records_seen"),
            ("duplicates", "duplicates_after_replay"),
            ("regressed", "state_keys_regressed"),
            ("state_wrong", "state_keys_wrong"),
        ):
            out[name] += sq["tally"].counts[figure]
        figures.tally.notes.extend("sqlite: " + note for note in sq["tally"].notes)
        out["sqlite_s"] = round(time.monotonic() - mark, 1)
    out["wall_s"] = round(time.monotonic() - started, 1)
    goals = {name: ["==", 0] for name in out if name.split("_")[0] in ("acknowledged", "stores", "partial")}
    for name in ("duplicates_after_replay", "state_keys_regressed", "state_keys_wrong"):
        goals[name] = ["==", 0]
    goals["log_random_crashes"] = [">=", min(count, 1000)]
    if progress is not None:
        for note in figures.tally.notes[:10]:
            progress.write("store-powercut: %s\n" % note)
    return {"name": NAME, "size": size, "seed": seed, "figures": out, "goals": goals, "notes": figures.tally.notes[:10]}
