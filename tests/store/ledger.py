"""What a store promised, and the check that a reopened store kept those promises.

A ``Ledger`` is told about every store operation twice: when it starts
(``begin_*``) and when it returned (``end_*``). What returned was reported
durable and must survive any crash; what began and never returned (the
operation a power cut or a SIGKILL interrupted) may or may not have happened,
but nothing else may appear. ``check(store, ledger)`` compares a freshly
opened store with the ledger and returns the list of broken promises (empty
when all is well), then folds what it saw into the ledger so a test can go
on writing and crash again.

Invariants checked (the issue's "no record reported durable is lost,
sequences never go backwards or repeat, snapshots old or new, never mixed"):

* every appended record not acked is there with identical lane, payload and
  boot id, or (telemetry) inside the seq range of an aggregate that is there;
  no record appears that was never appended;
* the outbox reads in strictly increasing seq order; ``depth``/``seq_range``
  agree with it; ``next_seq`` is above every seq ever handed out;
* each state key holds exactly the last entry whose put returned, or the
  entry of the put that was interrupted (next version), never anything else;
* every inbox id whose add returned is there (unless expired), no unknown id;
* the boot id is the previous boot's + 1 (+ 2 when an open was interrupted
  after it may have counted its boot).
"""

import json

from device.store.retention import is_aggregate


class Ledger:
    """``ordered=False`` when appends run concurrently: their returns may be reported out of seq order."""

    def __init__(self, ordered: bool = True) -> None:
        self.ordered = ordered
        self.acked_upto = 0  # the largest ``upto`` of an ack that returned
        self.maybe_acked_upto = 0  # ... of an ack that started
        self.records: dict = {}  # seq -> (lane, payload, boot): appends that returned, not known gone
        self.gone: set = set()  # seqs acked and seen absent at a check (their records are dropped from here)
        self.acked: set = set()  # seqs surely gone (an ack that returned covered them)
        self.maybe_acked: set = set()  # seqs an interrupted ack may have removed
        self.max_seq = 0  # the largest seq handed out or seen
        self.inflight: dict = {}  # token -> (lane, payload, boot, min_seq): appends that never returned
        self.states: dict = {}  # key -> StateEntry dict of the last put that returned
        self.state_inflight: dict = {}  # key -> (value, origin): a put that never returned
        self.max_stamp = 0
        self.inbox: dict = {}  # command id -> expires_ms, for adds that returned
        self.inbox_inflight: set = set()
        self.inbox_maybe_gone: set = set()  # ids an interrupted expire may have dropped
        self.last_boot = 0
        self.open_inflight = False
        self.resurrected = 0  # acked records seen again after a crash (duplicates; allowed, counted)
        self.inflight_landed = 0  # interrupted appends found durable after all
        self.checks = 0

    # -- what the workload tells us ------------------------------------------

    def begin_open(self) -> None:
        self.open_inflight = True

    def end_open(self, boot_id: int) -> None:
        self.open_inflight = False
        self.last_boot = boot_id

    def begin_append(self, token, lane: str, payload: dict, boot: int) -> None:  # type: ignore[no-untyped-def]
        self.inflight[token] = (lane, payload, boot, self.max_seq + 1)

    def end_append(self, token, seq: int) -> str | None:  # type: ignore[no-untyped-def]
        """Note a returned append; returns a problem when its seq is not new."""
        lane, payload, boot, _ = self.inflight.pop(token)
        problem = None
        if seq in self.records or seq in self.gone:
            problem = "append returned seq %d, which was handed out before" % seq
        elif self.ordered and seq <= self.max_seq:
            problem = "append returned seq %d, not above the largest seq so far %d" % (seq, self.max_seq)
        self.records[seq] = (lane, payload, boot)
        # A concurrent ack(upto) may have taken it before its append was reported.
        if seq <= self.acked_upto:
            self.acked.add(seq)
        elif seq <= self.maybe_acked_upto:
            self.maybe_acked.add(seq)
        self.max_seq = max(self.max_seq, seq)
        return problem

    def fail_append(self, token) -> None:  # type: ignore[no-untyped-def]
        """The append raised a StoreError: it did not happen."""
        self.inflight.pop(token, None)

    def begin_ack(self, seqs, upto: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.maybe_acked.update(seqs)
        self.maybe_acked_upto = max(self.maybe_acked_upto, upto)

    def end_ack(self, seqs, upto: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.acked_upto = max(self.acked_upto, upto)
        for seq in seqs:
            self.maybe_acked.discard(seq)
            self.acked.add(seq)

    def begin_put(self, key: str, value, origin: str) -> None:  # type: ignore[no-untyped-def]
        self.state_inflight[key] = (value, origin)

    def end_put(self, entry) -> str | None:  # type: ignore[no-untyped-def]
        self.state_inflight.pop(entry.key, None)
        old = self.states.get(entry.key)
        problem = None
        version = 1 if old is None else old["version"] + 1
        if entry.version != version:
            problem = "put_state(%r) gave version %d, expected %d" % (entry.key, entry.version, version)
        if entry.stamp <= self.max_stamp:
            problem = "put_state(%r) stamp %d not above the largest so far %d" % (
                entry.key,
                entry.stamp,
                self.max_stamp,
            )
        self.max_stamp = entry.stamp
        self.states[entry.key] = entry.to_dict()
        return problem

    def fail_put(self, key: str) -> None:
        self.state_inflight.pop(key, None)

    def begin_inbox_add(self, command_id: str) -> None:
        self.inbox_inflight.add(command_id)

    def end_inbox_add(self, command_id: str, expires_ms: int) -> None:
        self.inbox_inflight.discard(command_id)
        self.inbox[command_id] = expires_ms
        self.inbox_maybe_gone.discard(command_id)

    def begin_expire(self, now_ms: int) -> None:
        for cid in self.inbox:
            if self.inbox[cid] <= now_ms:
                self.inbox_maybe_gone.add(cid)

    def end_expire(self, now_ms: int) -> None:
        for cid in [c for c in self.inbox if self.inbox[c] <= now_ms]:
            del self.inbox[cid]
            self.inbox_maybe_gone.discard(cid)

    def acked_by(self, upto: int, read: list) -> list:
        """Seqs an ``ack(upto)`` removes, given the outbox as last read: aggregates take their whole range."""
        seqs = [seq for seq in self.records if seq <= upto]
        for record in read:
            if record.seq <= upto and is_aggregate(record.payload):
                seqs.extend(self._range_telemetry(record.payload["agg"]))
        return seqs

    def acked_by_seqs(self, chosen: list, read: list) -> list:
        seqs = list(chosen)
        for record in read:
            if record.seq in chosen and is_aggregate(record.payload):
                seqs.extend(self._range_telemetry(record.payload["agg"]))
        return seqs

    def _range_telemetry(self, agg: dict) -> list:
        out = []
        for seq in range(agg["first"], agg["last"] + 1):
            known = self.records.get(seq)
            if known is not None and known[0] == "telemetry":
                out.append(seq)
        return out


def compact_size(payload: dict) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


async def read_all(store, batch: int = 500) -> list:  # type: ignore[no-untyped-def]
    out: list = []
    after = 0
    while True:
        part = await store.read_outbox(batch, after)
        out.extend(part)
        if len(part) < batch:
            return out
        after = part[-1].seq


async def check(store, ledger: Ledger, fresh: bool = True) -> list:  # type: ignore[no-untyped-def]
    """Problems with a just-opened ``store`` against ``ledger`` (empty list: all promises kept).

    ``fresh=False`` checks a store that stayed open (no new boot). Afterwards
    the ledger describes the store as it now is (interrupted operations settled).
    """
    ledger.checks += 1
    problems: list = []
    records = await read_all(store)
    if fresh:
        _check_boot(store, ledger, problems)
    covered = _check_outbox(records, ledger, problems)
    _check_shape(store, records, ledger, problems)
    _check_state(store, ledger, problems)
    _check_inbox(store, ledger, problems)
    # From here on, what we saw is the truth: interrupted operations are settled.
    present = set(covered)
    for seq in list(ledger.maybe_acked):
        if seq not in present:
            ledger.acked.add(seq)
    ledger.maybe_acked.clear()
    ledger.inflight.clear()
    for record in records:
        ledger.max_seq = max(ledger.max_seq, record.seq)
    for seq in ledger.acked:
        if seq not in present:
            ledger.records.pop(seq, None)
            ledger.gone.add(seq)
    ledger.acked.intersection_update(present)
    ledger.inbox_inflight.clear()
    ledger.inbox_maybe_gone.clear()
    return problems


def _check_boot(store, ledger: Ledger, problems: list) -> None:  # type: ignore[no-untyped-def]
    allowed = [ledger.last_boot + 1]
    if ledger.open_inflight:
        allowed.append(ledger.last_boot + 2)
    if store.boot_id not in allowed:
        problems.append("boot id %d after a boot of %d (allowed %s)" % (store.boot_id, ledger.last_boot, allowed))
    ledger.end_open(store.boot_id)


def _check_outbox(records: list, ledger: Ledger, problems: list) -> set:
    covered: set = set()
    previous = 0
    landed = []
    for record in records:
        if record.seq <= previous:
            problems.append("outbox out of order: seq %d after %d" % (record.seq, previous))
        previous = record.seq
        if record.seq in ledger.gone:
            ledger.resurrected += 1
            covered.add(record.seq)
            continue
        known = ledger.records.get(record.seq)
        if known is not None:
            lane, payload, boot = known
            if record.seq in ledger.acked:
                ledger.resurrected += 1
            if record.lane == lane and record.payload == payload:
                if record.boot != boot:
                    problems.append("seq %d has boot %d, was appended in boot %d" % (record.seq, record.boot, boot))
                covered.add(record.seq)
                continue
            if lane == "telemetry" and record.lane == "telemetry" and is_aggregate(record.payload):
                covered.update(_check_aggregate(record, ledger, problems))
                continue
            problems.append(
                "seq %d holds %s %r, but %s %r was appended" % (record.seq, record.lane, record.payload, lane, payload)
            )
            continue
        token = _find_inflight(ledger, record)
        if token is not None:
            landed.append(token)
            covered.add(record.seq)
            continue
        problems.append("seq %d (%s %r) was never appended" % (record.seq, record.lane, record.payload))
    for token in landed:
        lane, payload, boot, _ = ledger.inflight.pop(token)
        for record in records:
            if record.payload == payload and record.lane == lane:
                ledger.records[record.seq] = (lane, payload, boot)
        ledger.inflight_landed += 1
    for seq in sorted(ledger.records):
        if seq in covered or seq in ledger.acked or seq in ledger.maybe_acked:
            continue
        lane, payload, _ = ledger.records[seq]
        problems.append("seq %d (%s %r) reported durable, not acked, missing" % (seq, lane, payload))
    return covered


def _find_inflight(ledger: Ledger, record) -> object:  # type: ignore[no-untyped-def]
    for token in ledger.inflight:
        lane, payload, boot, min_seq = ledger.inflight[token]
        if record.lane == lane and record.payload == payload and record.seq >= min_seq and record.boot == boot:
            return token  # type: ignore[no-any-return]
    return None


def _adopt_folded_inflight(ledger: Ledger, first: int, last: int) -> None:
    """Interrupted telemetry appends an aggregate swallowed (a concurrent append folded them before the cut).

    Their seqs are the ones in the aggregate's range the ledger never heard
    of; concurrent appends take seqs in the order they started, so the
    oldest interrupted append gets the lowest unknown seq.
    """
    unknown = [seq for seq in range(first, last + 1) if seq not in ledger.records and seq not in ledger.gone]
    if not unknown:
        return
    tokens = sorted(token for token in ledger.inflight if ledger.inflight[token][0] == "telemetry")
    for seq, token in zip(unknown, tokens, strict=False):
        lane, payload, boot, min_seq = ledger.inflight[token]
        if seq >= min_seq:
            ledger.records[seq] = (lane, payload, boot)
            del ledger.inflight[token]
            ledger.inflight_landed += 1


def _check_aggregate(record, ledger: Ledger, problems: list) -> list:  # type: ignore[no-untyped-def]
    agg = record.payload["agg"]
    first, last, n = agg.get("first"), agg.get("last"), agg.get("n")
    if first != record.seq or not isinstance(last, int) or last < first:
        problems.append("aggregate at seq %d has a bad range %r" % (record.seq, agg))
        return [record.seq]
    _adopt_folded_inflight(ledger, first, last)
    telemetry = ledger._range_telemetry(agg)
    if not isinstance(n, int) or n < 2 or n > len(telemetry):
        problems.append("aggregate at seq %d claims n=%r over %d telemetry seqs" % (record.seq, n, len(telemetry)))
    values = [ledger.records[seq][1]["v"] for seq in telemetry if "v" in ledger.records[seq][1]]
    stat = record.payload.get("stats", {}).get("v")
    if values and stat is not None and (stat[1] < min(values) or stat[2] > max(values)):
        problems.append("aggregate at seq %d: v in [%r, %r], outside its samples" % (record.seq, stat[1], stat[2]))
    return telemetry


def _check_shape(store, records: list, ledger: Ledger, problems: list) -> None:  # type: ignore[no-untyped-def]
    size = 0
    for record in records:
        if record.size != compact_size(record.payload):
            problems.append(
                "seq %d: size %d, payload JSON is %d bytes" % (record.seq, record.size, compact_size(record.payload))
            )
        size += record.size
    if store.depth() != (len(records), size):
        problems.append("depth() %r, read %d records of %d bytes" % (store.depth(), len(records), size))
    want = (records[0].seq, records[-1].seq) if records else (None, None)
    if store.seq_range() != want:
        problems.append("seq_range() %r, read %r" % (store.seq_range(), want))
    top = ledger.max_seq
    if records and records[-1].seq > top:
        top = records[-1].seq
    if store.next_seq() <= top:
        problems.append("next_seq() %d is not above seq %d handed out before" % (store.next_seq(), top))
    store.stats()  # must not raise


def _check_state(store, ledger: Ledger, problems: list) -> None:  # type: ignore[no-untyped-def]
    keys = set(ledger.states) | set(ledger.state_inflight) | set(store._state)
    for key in sorted(keys):
        entry = store._state.get(key)
        old = ledger.states.get(key)
        pending = ledger.state_inflight.get(key)
        seen = entry.to_dict() if entry is not None else None
        if seen == old:
            pass
        elif pending is not None and seen is not None and _is_inflight_entry(seen, old, pending, ledger):
            ledger.states[key] = seen
        else:
            problems.append("state %r is %r; expected %r or the interrupted put %r" % (key, seen, old, pending))
        if seen is not None and seen["stamp"] > ledger.max_stamp:
            ledger.max_stamp = seen["stamp"]
    ledger.state_inflight.clear()
    if store.hlc.last < ledger.max_stamp:
        problems.append("the clock restarted at %d, below stamp %d" % (store.hlc.last, ledger.max_stamp))


def _is_inflight_entry(seen: dict, old, pending: tuple, ledger: Ledger) -> bool:  # type: ignore[no-untyped-def]
    value, origin = pending
    version = 1 if old is None else old["version"] + 1
    return (
        seen["value"] == value
        and seen["origin"] == origin
        and seen["version"] == version
        and seen["stamp"] > ledger.max_stamp
    )


def _check_inbox(store, ledger: Ledger, problems: list) -> None:  # type: ignore[no-untyped-def]
    have = dict(store._inbox)
    for cid in ledger.inbox:
        if cid not in have and cid not in ledger.inbox_maybe_gone:
            problems.append("inbox id %r (added, not expired) is missing" % cid)
    for cid in have:
        if cid not in ledger.inbox and cid not in ledger.inbox_inflight and cid not in ledger.inbox_maybe_gone:
            problems.append("inbox id %r was never added (or was expired)" % cid)
    ledger.inbox = have
