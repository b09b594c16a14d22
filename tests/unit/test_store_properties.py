"""Property tests: random append/ack/read sequences against MemoryStore's contract."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from device.errors import StoreFullError
from device.store.base import ORIGINS
from device.store.memory import MemoryStore


def drive(coro):  # type: ignore[no-untyped-def]
    """Run a store coroutine that must finish without suspending (MemoryStore never waits)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("MemoryStore suspended: it must never wait on anything")


def size_of(payload: dict) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
)
payloads = st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=4)
lanes = st.sampled_from(["telemetry", "telemetry", "event", "result"])


class OutboxMachine(RuleBasedStateMachine):
    @initialize(budget=st.integers(min_value=16, max_value=1500), chunk_bytes=st.sampled_from([1, 40, 100, 1024]))
    def setup(self, budget: int, chunk_bytes: int) -> None:
        # Small chunks make records cross chunk boundaries within a short run.
        self.store = MemoryStore(budget_bytes=budget, chunk_bytes=chunk_bytes)
        self.budget = budget
        self.appended: dict = {}  # seq -> (lane, payload)
        self.acked: set = set()
        self.last_seq = 0
        self.now_ms = 0

    def outbox(self) -> list:
        return drive(self.store.read_outbox(10**6))

    @rule(lane=lanes, payload=payloads)
    def append(self, lane: str, payload: dict) -> None:
        self.now_ms += 10
        before = self.outbox()
        protected = sum(r.size for r in before if r.lane != "telemetry")
        try:
            seq = drive(self.store.append(lane, payload, now_ms=self.now_ms))
        except StoreFullError:
            # Refused only when dropping every telemetry record could not make room.
            assert protected + size_of(payload) > self.budget
            assert self.outbox() == before  # and nothing was dropped for nothing
            return
        assert seq > self.last_seq
        self.last_seq = seq
        self.appended[seq] = (lane, payload)
        after = self.outbox()
        assert after[-1].seq == seq
        assert after[-1].payload == payload
        assert after[-1].created_ms == self.now_ms

    @precondition(lambda self: self.appended)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        upto = data.draw(st.integers(min_value=0, max_value=self.last_seq + 2))
        present = [r.seq for r in self.outbox() if r.seq <= upto]
        assert drive(self.store.ack(upto)) == len(present)
        self.acked.update(present)
        assert all(r.seq > upto for r in self.outbox())

    @rule(limit=st.integers(min_value=0, max_value=20))
    def read(self, limit: int) -> None:
        got = drive(self.store.read_outbox(limit))
        assert got == self.outbox()[:limit]

    @invariant()
    def seqs_strictly_increase_and_match_what_was_appended(self) -> None:
        if not hasattr(self, "store"):
            return
        seqs = [r.seq for r in self.outbox()]
        assert seqs == sorted(set(seqs))
        for r in self.outbox():
            assert (r.lane, r.payload) == self.appended[r.seq]
            assert r.size == size_of(r.payload)

    @invariant()
    def no_event_or_result_is_ever_lost(self) -> None:
        if not hasattr(self, "store"):
            return
        held = {r.seq for r in self.outbox()}
        missing = [s for s in self.appended if s not in held and s not in self.acked]
        for seq in missing:
            assert self.appended[seq][0] == "telemetry", seq
        assert self.store.counters["dropped"] == len(missing)
        for seq in missing:
            assert any(lo <= seq <= hi for lo, hi in self.store.dropped_ranges), seq

    @invariant()
    def depth_is_the_sum_of_sizes_within_budget(self) -> None:
        if not hasattr(self, "store"):
            return
        records = self.outbox()
        assert self.store.depth() == (len(records), sum(r.size for r in records))
        assert self.store.depth()[1] <= self.budget

    @invariant()
    def counters_add_up(self) -> None:
        if not hasattr(self, "store"):
            return
        c = self.store.counters
        assert c["appended"] == len(self.appended)
        assert c["acked"] == len(self.acked)
        assert c["appended"] - c["acked"] - c["dropped"] == self.store.depth()[0]


OutboxMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestOutbox = OutboxMachine.TestCase


@settings(max_examples=100, deadline=None)
@given(puts=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), json_values, st.sampled_from(ORIGINS))))
def test_state_version_counts_puts_per_key(puts: list) -> None:
    store = MemoryStore()
    counts: dict = {}
    for i, (key, value, origin) in enumerate(puts):
        counts[key] = counts.get(key, 0) + 1
        entry = drive(store.put_state(key, value, origin=origin, now_ms=i))
        assert (entry.version, entry.origin, entry.stamp_ms) == (counts[key], origin, i)
        assert entry.value == value
    state = drive(store.load_state())
    assert sorted(state) == sorted(counts)
    for key, count in counts.items():
        assert state[key].version == count
