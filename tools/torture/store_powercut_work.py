"""The store workload the power is cut under: appends on every lane, acks, folds, state puts, reboots.

``Workload(make_store, rng)`` drives a store through seeded steps and tells a
``Ledger`` what it started and what returned. The ``log`` backend without
group commit never suspends, so steps are driven without an event loop
(``drive``): thousands of crashes a second stay affordable.
"""

import random
from typing import Any

from device.errors import StoreError
from tools.torture.store_powercut_ledger import Ledger

# (step, weight): telemetry dominates (it is what folds); acks rare enough that the budget fills.
MIX = (
    ("telemetry", 30),
    ("event", 10),
    ("result", 5),
    ("ack", 6),
    ("ack_seqs", 3),
    ("put", 10),
    ("compact", 3),
    ("reopen", 2),
    ("reboot", 1),
)
_TOTAL = sum(weight for _, weight in MIX)
STATE_KEYS = ("mode", "setpoint", "schedule")


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends to its end; its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the store suspended: this workload drives stores that do blocking I/O only")


def covered_by(records: list[Any]) -> list[int]:
    """The seqs the aggregates among ``records`` stand for."""
    out: list[int] = []
    for record in records:
        agg = record.payload.get("agg")
        if isinstance(agg, dict):
            out.extend(range(agg["first"], agg["last"] + 1))
    return out


def pick(rng: random.Random) -> str:
    r = rng.randrange(_TOTAL)
    for name, weight in MIX:
        if r < weight:
            return name
        r -= weight
    raise AssertionError("unreachable")


class Workload:
    def __init__(self, make_store: Any, rng: random.Random) -> None:
        self.make_store = make_store  # files -> an unopened store
        self.rng = rng
        self.ledger = Ledger()
        self.store: Any = None
        self.files: Any = None
        self.u = 0  # unique id of the next appended record
        self.now_ms = 0
        self.puts = 0

    def open(self, files: Any) -> None:
        self.files = files
        store = self.make_store(files)
        drive(store.open())
        self.store = store

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step(pick(self.rng))

    def step(self, name: str) -> None:
        store = self.store
        ledger = self.ledger
        rng = self.rng
        self.now_ms += rng.randrange(1, 5000)
        if name in ("telemetry", "event", "result"):
            self.u += 1
            if name == "telemetry":
                payload: dict[str, Any] = {"u": self.u, "temp": 180 + rng.randrange(60), "hum": rng.randrange(100)}
            else:
                payload = {"u": self.u, "what": name, "pad": "x" * rng.randrange(1, 120)}
            ledger.begin_append(name, payload)
            try:
                seq = drive(store.append(name, payload, self.now_ms))
            except StoreError:  # full budget (events are never folded): refused, did not happen
                ledger.inflight = None
                return
            ledger.end_append(seq)
        elif name in ("ack", "ack_seqs"):
            held = drive(store.read_outbox(rng.randrange(1, 24)))
            if not held:
                return
            if name == "ack":
                upto = held[-1].seq
                covered = covered_by(held)  # acking an aggregate acks the run it stands for
                ledger.begin_ack(upto, covered)
                drive(store.ack(upto))
                ledger.end_ack(upto, covered)
            else:
                chosen = [r for r in held if rng.randrange(2)]
                seqs = [r.seq for r in chosen]
                covered = seqs + covered_by(chosen)
                ledger.begin_ack(0, covered)
                drive(store.ack_seqs(seqs))
                ledger.end_ack(0, covered)
        elif name == "put":
            key = STATE_KEYS[rng.randrange(len(STATE_KEYS))]
            self.puts += 1
            value = {"n": self.puts, "k": key}
            ledger.begin_put(key, value)
            entry = drive(store.put_state(key, value, "local", 1760918400000 + self.now_ms))
            ledger.end_put(key, entry.value, entry.version)
        elif name == "compact":
            drive(store.compact())
        elif name == "reopen":
            drive(store.close())
            self.open(self.files)
        elif name == "reboot":  # dropped without a close: a watchdog reset with the power on
            self.open(self.files)
        else:
            raise ValueError("unknown step %r" % name)
