"""``store-powercut`` can fail: seeded store bugs make it miss its goals; its crash layer damages what it should."""

import random

import pytest

from device.store.base import Record
from device.store.log import LogStore
from device.store.logstate import STATE_FILE, frame_snapshot
from tools.torture import failed_goals
from tools.torture import store_powercut as harness
from tools.torture.store_powercut_ledger import Ledger, Tally, check
from tools.torture.store_powercut_media import Crash, CrashFiles
from tools.torture.store_powercut_sqlite import kill_runs
from tools.torture.store_powercut_work import drive


@pytest.fixture
def small(monkeypatch):  # type: ignore[no-untyped-def]
    """A short sweep and a few hundred random crashes: seconds, not the ci size's half minute."""
    monkeypatch.setitem(harness.SWEEP_STEPS, "ci", 30)
    monkeypatch.setitem(harness.RANDOM, "ci", (300, 60.0))


def run_log_only(store_class):  # type: ignore[no-untyped-def]
    return harness.run_with("ci", 3, None, lambda params: harness.log_maker(params, store_class), sqlite=False)


class ForgetsToSync(LogStore):
    """Appends and acks return before their record is synced."""

    async def _durable(self, ticket: int) -> None:
        return None


class SnapshotInPlace(LogStore):
    """Rewrites state.json in place, unsynced, instead of temp + sync + rename."""

    def _write_snapshot(self, body: bytes) -> None:
        handle = self.files.create(STATE_FILE)
        handle.write(frame_snapshot(body))
        handle.close()


def test_the_real_log_store_meets_every_goal(small):  # type: ignore[no-untyped-def]
    result = run_log_only(None)
    assert failed_goals(result) == [], result["notes"]
    figures = result["figures"]
    assert figures["log_sweep_crash_points"] == figures["log_ops_swept"] * 5  # every op, every variant
    assert figures["crash_points_tried"] > 500


def test_a_store_that_forgets_to_sync_loses_acknowledged_records(small):  # type: ignore[no-untyped-def]
    result = run_log_only(ForgetsToSync)
    assert result["figures"]["acknowledged_lost"] > 0
    assert any(miss.startswith("acknowledged_lost") for miss in failed_goals(result))


def test_a_snapshot_written_in_place_regresses_state(small):  # type: ignore[no-untyped-def]
    result = run_log_only(SnapshotInPlace)
    assert result["figures"]["state_keys_regressed"] > 0
    assert any(miss.startswith("state_keys_regressed") for miss in failed_goals(result))


def test_the_crash_layer_keeps_synced_bytes_and_damages_the_rest_by_sector():
    medium = CrashFiles(sector=16)
    handle = medium.open_append("f")
    handle.write(b"a" * 20)
    handle.sync()
    handle.write(b"b" * 30)  # unsynced: bytes 20..49, sectors 1 (20..31), 2 (32..47), 3 (48..49)
    medium.sync_dir()
    assert medium.survivor(random.Random(1), "keep").read("f") == b"a" * 20 + b"b" * 30
    assert medium.survivor(random.Random(1), "drop").read("f") == b"a" * 20
    garbage = medium.survivor(random.Random(1), "garbage").read("f")
    assert garbage[:20] == b"a" * 20 and len(garbage) == 64  # the last sector programmed to its end
    torn_lengths = {len(medium.survivor(random.Random(s), "torn").read("f")) for s in range(50)}
    assert min(torn_lengths) >= 20 and len(torn_lengths) > 5
    shuffled = [medium.survivor(random.Random(s), "shuffle").read("f") for s in range(60)]
    assert all(data[:20] == b"a" * 20 for data in shuffled)
    # Out of order: some survivor lost sector 1 (erased) but kept a later one.
    assert any(len(data) > 32 and data[20:32] == b"\xff" * 12 for data in shuffled)


def test_the_crash_layer_cuts_at_the_named_operation_and_then_stays_dead():
    medium = CrashFiles(sector=16, crash_at=2)
    handle = medium.open_append("f")  # op 0: create
    handle.write(b"x")  # op 1
    with pytest.raises(Crash):
        handle.sync()  # op 2: the power dies before it
    with pytest.raises(Crash):
        medium.listdir()
    assert medium.crashed_in == "sync"
    # The new file was never committed: "drop" loses it, "keep" has it with its in-flight byte.
    assert medium.survivor(random.Random(0), "drop").listdir() == []
    assert medium.survivor(random.Random(0), "keep").read("f") == b"x"


def test_sqlite_sigkills_reopen_and_check():
    out = kill_runs(3, 60.0, 5)
    assert out["kills"] == 3 and out["not_reopened"] == 0
    assert out["tally"].broken() == 0, out["tally"].notes


class _Outbox:
    """Just enough of a store for the ledger check: fixed records, no state."""

    def __init__(self, records: list) -> None:  # type: ignore[type-arg]
        self.records = records

    async def read_outbox(self, limit: int, after: int = 0) -> list:  # type: ignore[type-arg]
        return [r for r in self.records if r.seq > after][:limit]

    def next_seq(self) -> int:
        return 100

    async def get_state(self, key: str) -> None:
        return None


def _ledger_with_an_event_inside_a_telemetry_run(event_acked: bool) -> Tally:
    ledger = Ledger()
    for seq, lane in ((10, "telemetry"), (11, "telemetry"), (12, "event"), (13, "telemetry")):
        ledger.begin_append(lane, {"u": seq})
        ledger.end_append(seq)
    if event_acked:
        ledger.begin_ack(0, [12])
        ledger.end_ack(0, [12])
    aggregate = {"agg": {"first": 10, "last": 13, "n": 3, "from_ms": 0, "to_ms": 0}, "stats": {}}
    tally = Tally()
    drive(check(_Outbox([Record(10, "telemetry", 1, 0, aggregate, 60)]), ledger, tally))
    return tally


def test_an_aggregate_may_span_an_acked_event_but_not_a_live_one():
    assert _ledger_with_an_event_inside_a_telemetry_run(True).broken() == 0
    tally = _ledger_with_an_event_inside_a_telemetry_run(False)
    assert tally.counts["partial"] == 1 and tally.counts["lost"] == 1, tally.notes  # and the event is missing
