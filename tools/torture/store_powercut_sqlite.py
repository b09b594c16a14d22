"""The sqlite half of ``store-powercut``: SIGKILL a writer process at random points, reopen, check.

Python's sqlite3 has no VFS hook, so the power cannot be cut under SQLite from
here: this models a process crash (the OS keeps what was written), not a power
cut. SQLite's own crash-test VFS covers the latter for SQLite itself.

The writer (``python -m tools.torture.store_powercut_sqlite PATH SEED U0 N0``)
runs the workload's operations on a ``SqliteStore`` and prints one flushed line
before each operation starts and one when it returned::

    a U LANE / A SEQ | F     append of payload(U) (F: refused, the budget is full)
    k UPTO S,S.. / K         ack(UPTO); S: the seqs aggregates up to UPTO stand for ("-": none)
    p KEY N / P VERSION      put_state(KEY, {"n": N, "k": KEY})

The parent kills it after a random number of lines, reopens the store in its
own process and checks it with the same ledger as the log backend; the next
writer goes on from there (a chain of crashes on one database).
"""

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from tools.torture.store_powercut_ledger import Ledger, Tally, check
from tools.torture.store_powercut_work import covered_by

BUDGET = 8192  # small: telemetry gets folded
LINE_TIMEOUT_S = 20.0
STATE_KEYS = ("mode", "setpoint", "schedule")


def payload(u: int) -> tuple[str, dict[str, Any]]:
    """(lane, payload) of record ``u``: the same in the writer and in the parent."""
    if u % 5 == 0:
        return "event", {"u": u, "what": "event", "pad": "x" * (u % 90)}
    if u % 13 == 0:
        return "result", {"u": u, "what": "result"}
    return "telemetry", {"u": u, "temp": 180 + u % 60, "hum": u % 100}


def open_store(path: str) -> Any:
    from device.store.sqlite import SqliteStore

    return SqliteStore(path, budget_bytes=BUDGET, fsync=True)


async def _write(path: str, seed: int, u: int, n: int) -> None:
    from device.errors import StoreFullError

    rng = random.Random(seed)
    store = open_store(path)
    await store.open()
    say("B %d" % store.boot_id)
    while True:
        r = rng.randrange(20)
        if r < 15:
            u += 1
            lane, body = payload(u)
            say("a %d %s" % (u, lane))
            try:
                seq = await store.append(lane, body, u)
            except StoreFullError:
                say("F")
                continue
            say("A %d" % seq)
        elif r < 16:  # acks rare: the budget fills and telemetry gets folded
            held = await store.read_outbox(rng.randrange(1, 20))
            if held:
                covered = covered_by(held)  # acking an aggregate acks the run it stands for
                say("k %d %s" % (held[-1].seq, ",".join(str(seq) for seq in covered) or "-"))
                await store.ack(held[-1].seq)
                say("K")
        else:
            n += 1
            key = STATE_KEYS[n % len(STATE_KEYS)]
            say("p %s %d" % (key, n))
            entry = await store.put_state(key, {"n": n, "k": key}, "local", None)
            say("P %d" % entry.version)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Feed:
    """The writer's lines, told to the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.u = 0
        self.n = 0
        self.put = ("", 0)

    def line(self, text: str) -> None:
        parts = text.split()
        tag = parts[0]
        ledger = self.ledger
        if tag == "a":
            self.u = int(parts[1])
            ledger.begin_append(*payload(self.u))
        elif tag == "A":
            ledger.end_append(int(parts[1]))
        elif tag == "F":
            ledger.inflight = None
        elif tag == "k":
            self.upto = int(parts[1])
            self.covered = [] if parts[2] == "-" else [int(seq) for seq in parts[2].split(",")]
            ledger.begin_ack(self.upto, self.covered)
        elif tag == "K":
            ledger.end_ack(self.upto, self.covered)
        elif tag == "p":
            self.n = int(parts[2])
            self.put = (parts[1], self.n)
            ledger.begin_put(parts[1], {"n": self.n, "k": parts[1]})
        elif tag == "P":
            key, n = self.put
            ledger.end_put(key, {"n": n, "k": key}, int(parts[1]))


def _one_kill(path: str, seed: int, feed: _Feed, lines: int) -> bool:
    """Start a writer, feed ``lines`` of its output (or until it stops), SIGKILL it. False if it hung."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = [sys.executable, "-m", "tools.torture.store_powercut_sqlite", path, str(seed), str(feed.u), str(feed.n)]
    proc = subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ok = True
    buf = b""
    try:
        assert proc.stdout is not None
        seen = 0
        while seen < lines:
            ready, _, _ = select.select([proc.stdout], [], [], LINE_TIMEOUT_S)
            if not ready:
                ok = False
                break
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            seen = buf.count(b"\n")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            buf += proc.stdout.read()  # everything it printed before it died: the ledger must know all of it
            proc.stdout.close()
    for text in buf.split(b"\n")[:-1]:  # a torn last line: that operation had not started
        feed.line(text.decode())
    return ok


async def _reopen_and_check(path: str, ledger: Ledger, tally: Tally) -> bool:
    store = open_store(path)
    try:
        await store.open()
    except Exception as exc:
        tally.notes.append("sqlite did not reopen: %r" % (exc,))
        return False
    try:
        await check(store, ledger, tally)
    finally:
        await store.close()
    return True


def kill_runs(count: int, bound_s: float, seed: int, progress: Any = None) -> dict[str, Any]:
    """Up to ``count`` SIGKILLs (within ``bound_s``), each followed by a reopen and a check."""
    started = time.monotonic()
    tally = Tally()
    ledger = Ledger()
    feed = _Feed(ledger)
    rng = random.Random(seed)
    kills = not_reopened = 0
    with tempfile.TemporaryDirectory(prefix="tstore-sqlite-") as tmp:
        path = os.path.join(tmp, "store.sqlite")
        while kills < count and time.monotonic() - started < bound_s:
            if not _one_kill(path, rng.randrange(1 << 30), feed, rng.randrange(1, 300)):
                tally.notes.append("sqlite writer went silent for %.0f s" % LINE_TIMEOUT_S)
                not_reopened += 1
            kills += 1
            if not asyncio.run(_reopen_and_check(path, ledger, tally)):
                not_reopened += 1
                break
            if progress is not None and kills % 50 == 0:
                progress.write("store-powercut: %d sqlite kills\n" % kills)
    return {"kills": kills, "not_reopened": not_reopened, "tally": tally}


if __name__ == "__main__":
    asyncio.run(_write(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
