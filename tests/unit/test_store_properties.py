"""Property tests of MemoryStore's chunk layout under random append/ack/ack_seqs/compact sequences.

The contract every backend keeps is checked by ``test_store_machine.py``; this one
varies what only the memory backend has: the chunk size (tiny chunks make every
record oversize, small ones make folds and acks cut across chunk boundaries).
After every step each record is whole inside one chunk, neighbours that fit in
one chunk are merged, spare blocks are never in use, and the outbox still holds
what the model says.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from device.errors import StoreFullError
from device.store.memory import RECORD_HEADER_SIZE, MemoryStore
from tests.pure._store_check import payload_size
from tests.pure.test_memory_store import _check_layout, _Model


def drive(coro: Any) -> Any:
    """Run a store coroutine that must finish without suspending (MemoryStore never waits)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("MemoryStore suspended: it must never wait on anything")


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
telemetry = st.fixed_dictionaries(
    {"temp_c": st.one_of(st.integers(-50, 50), st.floats(-50, 50, allow_nan=False), st.none())},
    optional={"heat": st.booleans(), "note": texts},
)
others = st.fixed_dictionaries({"type": st.sampled_from(["door", "cmd"])}, optional={"note": texts})


class ChunkMachine(RuleBasedStateMachine):
    @initialize(
        budget=st.integers(min_value=100, max_value=1500),
        chunk_bytes=st.sampled_from([1, 2 * RECORD_HEADER_SIZE + 20, 100, 160, 1024]),
    )
    def setup(self, budget: int, chunk_bytes: int) -> None:
        self.store = MemoryStore(budget_bytes=budget, chunk_bytes=chunk_bytes)
        drive(self.store.open())
        self.budget = budget
        self.chunk_bytes = chunk_bytes
        self.model = _Model()
        self.now_ms = 0

    def records(self) -> list[Any]:
        return list(drive(self.store.read_outbox(10**6)))

    def append(self, lane: str, payload: dict[str, Any]) -> None:
        self.now_ms += 10
        try:
            seq = drive(self.store.append(lane, payload, now_ms=self.now_ms))
        except StoreFullError:
            assert self.store.depth()[1] + payload_size(payload) > self.budget
            return
        self.model.appended(seq, lane, payload, self.now_ms)

    @rule(payloads=st.lists(telemetry, min_size=1, max_size=10))
    def append_telemetry(self, payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            self.append("telemetry", payload)

    @rule(lane=st.sampled_from(["event", "result"]), payload=others)
    def append_other(self, lane: str, payload: dict[str, Any]) -> None:
        self.append(lane, payload)

    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        records = self.records()
        if not records:
            return
        upto = data.draw(st.sampled_from([r.seq for r in records]), label="upto")
        gone = [r for r in records if r.seq <= upto]
        assert drive(self.store.ack(upto)) == len(gone)
        self.model.removed(gone)

    @rule(data=st.data())
    def ack_seqs(self, data: st.DataObject) -> None:
        records = self.records()
        if not records:
            return
        chosen = data.draw(st.lists(st.sampled_from(records), max_size=5, unique_by=lambda r: r.seq), label="acked")
        assert drive(self.store.ack_seqs([r.seq for r in chosen])) == len(chosen)
        self.model.removed(chosen)

    @rule()
    def compact(self) -> None:
        drive(self.store.compact())

    @invariant()
    def layout_holds_and_records_match_the_model(self) -> None:
        if not hasattr(self, "store"):
            return
        _check_layout(self.store, self.chunk_bytes)
        self.model.check(self.records())
        assert self.store.depth()[1] <= self.budget


ChunkMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChunkLayout = ChunkMachine.TestCase
