"""A Hypothesis state machine over every store backend: append, ack, ack_seqs, reboot, compact, put_state.

Each backend runs the same rules against a simple model: seqs strictly increase
and are never reused (across reboots too), every event and result appended and
not acked is held unchanged, every telemetry sample not acked is held or
covered by an aggregate that states it correctly, depth matches what is read
back and stays in budget, and state equals the model. ``reboot`` closes and
reopens the store on the same storage (durable backends only: a memory store
starts empty, so it never reboots here). Bounded: a few examples of a few dozen
steps per backend, seconds each.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from device.errors import StoreFullError
from device.store import open_store
from device.store.base import ORIGINS, Store
from tests.pure._store_check import forget_removed, payload_size, telemetry_accounted

# Text a store can hold: UTF-8 has no lone surrogates.
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
numbers = st.one_of(
    st.integers(-1000, 1000),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
telemetry_payloads = st.fixed_dictionaries(
    {"temp_c": numbers},
    optional={"heat": st.booleans(), "rh": numbers, "mode": st.sampled_from(["heat", "off", "cool"])},
)
other_payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["door", "alarm", "cmd"])},
    optional={"n": st.integers(0, 10**6), "note": texts},
)
state_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.lists(st.integers(0, 9), max_size=3),
)


class StoreMachine(RuleBasedStateMachine):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.root = tempfile.mkdtemp(prefix="brickproof-machine-")
        self.store: Store | None = None
        self.budget = 0
        self.now_ms = 0
        self.last_seq = 0
        self.boot = 0
        self.others: dict[int, tuple[str, dict[str, Any], int, int]] = {}  # seq -> lane, payload, created, boot
        self.telemetry: dict[int, tuple[dict[str, Any], int]] = {}  # seq -> payload, created_ms
        self.state: dict[str, tuple[Any, int, str]] = {}  # key -> value, version, origin
        self.highest_stamp = 0

    # -- plumbing --------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"backend": self.backend, "budget_bytes": self.budget, "fsync": True}
        if self.backend == "sqlite":
            cfg["path"] = self.root + "/store.sqlite"
        elif self.backend == "log":
            cfg["path"] = self.root + "/store"
            cfg["segment_bytes"] = 512  # many segments within a short run
        return cfg

    def open(self) -> Store:
        store = open_store(self.config())
        self.run(store.open())
        return store

    def records(self) -> list[Any]:
        assert self.store is not None
        return list(self.run(self.store.read_outbox(10**6)))

    def removed(self, records: list[Any]) -> None:
        forget_removed(records, self.telemetry, self.others)

    def teardown(self) -> None:
        try:
            if self.store is not None:
                self.run(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.root, ignore_errors=True)

    # -- rules -------------------------------------------------------------------

    @initialize(budget=st.integers(min_value=200, max_value=1200), prefill=st.integers(0, 40))
    def start(self, budget: int, prefill: int) -> None:
        self.budget = budget
        self.store = self.open()
        self.boot = self.store.boot_id
        for i in range(prefill):  # start near (or past) the high water now and then
            self.append("telemetry", {"temp_c": 20 + i % 5, "heat": i % 3 == 0, "mode": "heat"})

    @rule(payload=telemetry_payloads)
    def append_telemetry(self, payload: dict[str, Any]) -> None:
        self.append("telemetry", payload)

    @rule(payloads=st.lists(telemetry_payloads, min_size=2, max_size=12))
    def append_telemetry_burst(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:  # a sampling task catching up: enough bytes to pass the high water
            self.append("telemetry", payload)

    @rule(lane=st.sampled_from(["event", "result"]), payload=other_payloads)
    def append_other(self, lane: str, payload: dict[str, Any]) -> None:
        self.append(lane, payload)

    def append(self, lane: str, payload: dict[str, Any]) -> None:
        assert self.store is not None
        self.now_ms += 7
        compacted = self.store.counters["compacted"]
        try:
            seq = self.run(self.store.append(lane, payload, self.now_ms))
        except StoreFullError:
            assert self.store.depth()[1] + payload_size(payload) > self.budget
            event("append refused: budget full")
            return
        if self.store.counters["compacted"] > compacted:
            event("append folded telemetry")
        assert seq > self.last_seq
        self.last_seq = seq
        if lane == "telemetry":
            self.telemetry[seq] = (json.loads(json.dumps(payload)), self.now_ms)
        else:
            self.others[seq] = (lane, payload, self.now_ms, self.boot)

    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        assert self.store is not None
        upto = data.draw(st.integers(min_value=0, max_value=self.last_seq + 2), label="upto")
        gone = [r for r in self.records() if r.seq <= upto]
        assert self.run(self.store.ack(upto)) == len(gone)
        self.removed(gone)

    @rule(data=st.data())
    def ack_seqs(self, data: st.DataObject) -> None:
        assert self.store is not None
        held = self.records()
        chosen = []
        if held:
            chosen = data.draw(st.lists(st.sampled_from(held), max_size=4, unique_by=lambda r: r.seq), label="acked")
        absent = data.draw(st.lists(st.integers(self.last_seq + 1, self.last_seq + 50), max_size=2), label="absent")
        seqs = [r.seq for r in chosen] + absent
        assert self.run(self.store.ack_seqs(seqs)) == len(chosen)
        self.removed(chosen)

    @rule()
    def compact(self) -> None:
        assert self.store is not None
        count, before = self.store.depth()[0], self.store.counters["compacted"]
        folded = self.run(self.store.compact())
        assert folded >= 0
        if folded:
            event("compact folded telemetry")
        assert self.store.counters["compacted"] == before + folded
        assert self.store.depth()[0] == count - folded

    @rule(key=st.sampled_from(["setpoint_c", "mode", "schedule"]), value=state_values, origin=st.sampled_from(ORIGINS))
    def put_state(self, key: str, value: Any, origin: str) -> None:
        assert self.store is not None
        entry = self.run(self.store.put_state(key, value, origin))
        version = self.state[key][1] + 1 if key in self.state else 1
        assert (entry.value, entry.version, entry.origin) == (value, version, origin)
        assert entry.stamp > self.highest_stamp  # across reboots too
        self.highest_stamp = entry.stamp
        self.state[key] = (value, version, origin)

    @rule(limit=st.integers(0, 8), after=st.integers(0, 60))
    def read(self, limit: int, after: int) -> None:
        assert self.store is not None
        expected = [r for r in self.records() if r.seq > after][:limit]
        assert self.run(self.store.read_outbox(limit, after)) == expected

    # -- invariants ----------------------------------------------------------------

    @invariant()
    def outbox_matches_the_model(self) -> None:
        if self.store is None:
            return
        records = self.records()
        seqs = [r.seq for r in records]
        assert seqs == sorted(set(seqs))
        assert all(0 < seq <= self.last_seq for seq in seqs)
        assert self.store.next_seq() > self.last_seq
        others = [(r.seq, r.lane, r.payload, r.created_ms, r.boot) for r in records if r.lane != "telemetry"]
        assert others == [(seq, *self.others[seq]) for seq in sorted(self.others)]
        telemetry_accounted(records, self.telemetry, set())
        assert self.store.depth() == (len(records), sum(r.size for r in records))
        assert all(r.size == payload_size(r.payload) for r in records)
        assert self.store.depth()[1] <= self.budget
        first_last = (seqs[0], seqs[-1]) if seqs else (None, None)
        assert self.store.seq_range() == first_last

    @invariant()
    def state_matches_the_model(self) -> None:
        if self.store is None:
            return
        state = self.run(self.store.load_state())
        assert {key: (e.value, e.version, e.origin) for key, e in state.items()} == self.state


class DurableStoreMachine(StoreMachine):
    """A backend whose storage outlives the store: it may reboot at any step."""

    @rule()
    def reboot(self) -> None:
        assert self.store is not None
        held, span = self.records(), self.store.seq_range()
        self.run(self.store.close())
        self.store = None
        self.store = self.open()
        assert self.store.boot_id == self.boot + 1
        self.boot = self.store.boot_id
        assert self.records() == held and self.store.seq_range() == span
        assert self.store.next_seq() > self.last_seq


class LogStoreMachine(DurableStoreMachine):
    backend = "log"


class SqliteStoreMachine(DurableStoreMachine):
    backend = "sqlite"


def _bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


StoreMachine.TestCase.settings = _bounded(40)
LogStoreMachine.TestCase.settings = _bounded(15)
SqliteStoreMachine.TestCase.settings = _bounded(15)

TestMemoryStore = StoreMachine.TestCase
TestLogStore = LogStoreMachine.TestCase
TestSqliteStore = SqliteStoreMachine.TestCase
