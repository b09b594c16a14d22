"""What a store promised before a crash, and the count of promises a reopened store broke.

The workload tells a ``Ledger`` about each operation when it starts and when it
returns. What returned was reported durable; the one operation the crash
interrupted may or may not have happened; nothing else may appear.
``check(store, ledger)`` reads a freshly opened store and returns a ``Tally``
of broken promises, by the figures the harness reports:

* ``lost``: an append that returned, not acked, is not in the outbox (a
  telemetry record may sit inside an aggregate's seq range instead);
* ``partial``: a record that is not exactly what was appended at its seq
  (torn, garbled, another payload, a lane or boot mixed up), a phantom never
  appended, or a malformed aggregate;
* ``duplicates``: one appended record (its unique ``u``) under two seqs, a
  seq listed twice or out of order, a seq handed out again (``next_seq`` not
  above every seq given), or a record an ack that returned removed coming back;
* ``regressed``: a state key older than its last put that returned;
  ``state_wrong``: a state key holding anything but that put or the interrupted one.
"""

from typing import Any

from device.store.retention import is_aggregate

FIGURES = ("lost", "partial", "duplicates", "regressed", "state_wrong")


class Tally:
    def __init__(self) -> None:
        self.counts = dict.fromkeys(FIGURES, 0)
        self.notes: list[str] = []  # the first few, for a person
        self.aggregates = 0  # aggregates read back (the workload reached the folding paths)
        self.landed = 0  # interrupted appends found there after the crash (allowed)

    def add(self, figure: str, note: str) -> None:
        self.counts[figure] += 1
        if len(self.notes) < 5:
            self.notes.append("%s: %s" % (figure, note))

    def broken(self) -> int:
        return sum(self.counts.values())


class Ledger:
    def __init__(self) -> None:
        self.records: dict[
            int, tuple[str, Any]
        ] = {}  # seq -> (lane, payload) of appends that returned (or were seen after a crash)
        self.inflight: tuple[str, Any] | None = None  # (lane, payload) of an append that never returned
        self.acked: set[int] = set()  # seqs an ack that returned removed
        self.acked_upto = 0
        self.maybe_acked: set[int] = set()  # seqs an interrupted ack may have removed
        self.maybe_acked_upto = 0
        self.max_seq = 0
        self.states: dict[str, Any] = {}  # key -> (value, version) of the last put that returned
        self.state_inflight: dict[str, Any] = {}  # key -> value of a put that never returned

    def begin_append(self, lane: str, payload: dict[str, Any]) -> None:
        self.inflight = (lane, payload)

    def end_append(self, seq: int) -> None:
        if self.inflight is not None:
            self.records[seq] = self.inflight
        self.inflight = None
        self.max_seq = max(self.max_seq, seq)

    def begin_ack(self, upto: int, seqs: Any) -> None:
        self.maybe_acked_upto = max(self.maybe_acked_upto, upto)
        self.maybe_acked.update(seqs)

    def end_ack(self, upto: int, seqs: Any) -> None:
        self.acked_upto = max(self.acked_upto, upto)
        self.acked.update(seqs)
        for seq in self.records:
            if seq <= upto:
                self.acked.add(seq)

    def begin_put(self, key: str, value: Any) -> None:
        self.state_inflight[key] = value

    def end_put(self, key: str, value: Any, version: int) -> None:
        self.state_inflight.pop(key, None)
        self.states[key] = (value, version)

    def gone(self, seq: int) -> bool:
        """Acked, surely or maybe: absent is fine."""
        return seq in self.acked or seq <= self.maybe_acked_upto or seq in self.maybe_acked


async def read_all(store: Any) -> list[Any]:
    out: list[Any] = []
    after = 0
    while True:
        part = await store.read_outbox(64, after)
        if not part:
            return out
        out.extend(part)
        after = part[-1].seq


async def check(store: Any, ledger: Ledger, tally: Tally) -> None:
    """Compare the reopened ``store`` with ``ledger``; count what broke in ``tally``; update the ledger to it."""
    records = await read_all(store)
    present: dict[int, Any] = {}
    covered: set[int] = set()  # seqs inside an aggregate's range
    seen_u: dict[Any, int] = {}
    previous = 0
    landed = None
    for record in records:
        seq = record.seq
        if seq <= previous:
            tally.add("duplicates", "seq %d listed after %d" % (seq, previous))
        previous = seq
        present[seq] = record
        payload = record.payload
        if record.lane == "telemetry" and is_aggregate(payload):
            tally.aggregates += 1
            _check_aggregate(record, ledger, covered, tally)
            continue
        u = payload.get("u") if isinstance(payload, dict) else None
        if u is not None:
            if u in seen_u:
                tally.add("duplicates", "record u=%r under seqs %d and %d" % (u, seen_u[u], seq))
            seen_u[u] = seq
        known = ledger.records.get(seq)
        if known is None and ledger.inflight is not None and seq > ledger.max_seq:
            known = ledger.inflight  # the interrupted append landed
            landed = seq
            tally.landed += 1
        if known is None:
            tally.add("partial", "seq %d (%s %r) was never appended" % (seq, record.lane, payload))
        elif known != (record.lane, payload):
            tally.add("partial", "seq %d holds %s %r, %s %r was appended" % (seq, record.lane, payload, *known))
        if seq in ledger.acked:
            tally.add("duplicates", "seq %d came back after an ack returned" % seq)
    for seq in ledger.records:
        if seq in present or seq in ledger.acked or ledger.gone(seq):
            continue
        if ledger.records[seq][0] == "telemetry" and seq in covered:
            continue
        tally.add("lost", "seq %d (%s) acknowledged, not acked, missing" % (seq, ledger.records[seq][0]))
    if store.next_seq() <= max(ledger.max_seq, previous):
        tally.add("duplicates", "next_seq %d reuses a seq (max %d)" % (store.next_seq(), ledger.max_seq))
    await _check_state(store, ledger, tally)
    # Life goes on from what is there now (the survivor is all durable: what is there stays).
    ledger.inflight = None
    ledger.records = {seq: (present[seq].lane, present[seq].payload) for seq in present}
    ledger.max_seq = max(ledger.max_seq, previous, landed or 0)
    ledger.acked = set()
    ledger.maybe_acked = set()
    ledger.maybe_acked_upto = 0


def _check_aggregate(record: Any, ledger: Ledger, covered: set[int], tally: Tally) -> None:
    agg = record.payload["agg"]
    first, last, n = agg.get("first"), agg.get("last"), agg.get("n")
    if not (isinstance(first, int) and isinstance(last, int) and isinstance(n, int)) or first != record.seq:
        tally.add("partial", "seq %d: malformed aggregate %r" % (record.seq, agg))
        return
    if n < 1 or last < first:
        tally.add("partial", "seq %d: aggregate range %d..%d n=%d" % (record.seq, first, last, n))
    for seq in range(first, last + 1):
        covered.add(seq)
        known = ledger.records.get(seq)
        # An acked event or result may sit inside the range (ack_seqs took it, the run closed over it).
        if known is not None and known[0] != "telemetry" and not ledger.gone(seq):
            tally.add("partial", "aggregate at %d covers %s seq %d" % (record.seq, known[0], seq))


async def _check_state(store: Any, ledger: Ledger, tally: Tally) -> None:
    keys = set(ledger.states) | set(ledger.state_inflight)
    for key in sorted(keys):
        entry = await store.get_state(key)
        got = None if entry is None else (entry.value, entry.version)
        want = ledger.states.get(key)
        allowed = [want]
        if key in ledger.state_inflight:
            allowed.append((ledger.state_inflight[key], 1 if want is None else want[1] + 1))
        if got in allowed:
            if got is not None:
                ledger.states[key] = got
        elif want is not None and (got is None or got[1] < want[1]):
            tally.add("regressed", "state %r is %r, a put of %r had returned" % (key, got, want))
        else:
            tally.add("state_wrong", "state %r is %r, allowed %r" % (key, got, allowed))
    ledger.state_inflight.clear()
