"""The store conformance suite (``store_conformance.py``) on ``LogStore``, under pytest and MicroPython.

Each test gets fresh directories under ``/tmp`` (a random name, removed afterwards, pass
or fail), built through ``open_store`` as a board would: ``fsync`` on, small segments so
the records of one check span several of them. Reopening a directory is a reboot.
"""

from device.store import open_store
from tests.pure import store_conformance as conformance
from tests.pure._tmpdirs import remove_tree, unique_dir

SEGMENT_BYTES = 1024
_made = []  # directories of the running test


def make(budget_bytes):  # type: ignore[no-untyped-def]
    path = unique_dir("logconf")
    _made.append(path)
    cfg = {"backend": "log", "path": path, "budget_bytes": budget_bytes, "fsync": True, "segment_bytes": SEGMENT_BYTES}

    async def open_fn(readonly=False):  # type: ignore[no-untyped-def]
        store = open_store(cfg)
        await store.open(readonly=readonly)
        return store

    return open_fn


def cleanup() -> None:
    while _made:
        remove_tree(_made.pop())


def run(check):  # type: ignore[no-untyped-def]
    conformance.run(check, make, durable=True, cleanup=cleanup)


def test_every_check_has_a_test():
    assert conformance.unwrapped(globals()) == []


def test_state_versions_origins_and_stamps():
    run(conformance.check_state_versions_origins_and_stamps)


def test_state_values_are_copies_of_plain_json():
    run(conformance.check_state_values_are_copies_of_plain_json)


def test_bad_state_is_refused_and_changes_nothing():
    run(conformance.check_bad_state_is_refused_and_changes_nothing)


def test_state_survives_reopen_and_stamps_keep_increasing():
    run(conformance.check_state_survives_reopen_and_stamps_keep_increasing)


def test_seq_strictly_increases_and_is_never_reused():
    run(conformance.check_seq_strictly_increases_and_is_never_reused)


def test_read_outbox_oldest_first_and_after_seq():
    run(conformance.check_read_outbox_oldest_first_and_after_seq)


def test_read_outbox_lanes_filter():
    run(conformance.check_read_outbox_lanes_filter)


def test_ack_upto_and_ack_seqs():
    run(conformance.check_ack_upto_and_ack_seqs)


def test_depth_and_seq_range():
    run(conformance.check_depth_and_seq_range)


def test_bad_lane_and_payload_are_refused():
    run(conformance.check_bad_lane_and_payload_are_refused)


def test_records_survive_reopen_unchanged():
    run(conformance.check_records_survive_reopen_unchanged)


def test_boot_id_counts_opens():
    run(conformance.check_boot_id_counts_opens)


def test_telemetry_folds_into_aggregates_within_budget():
    run(conformance.check_telemetry_folds_into_aggregates_within_budget)


def test_acked_seqs_inside_a_fold_are_not_counted():
    run(conformance.check_acked_seqs_inside_a_fold_are_not_counted)


def test_events_are_never_folded_and_a_full_budget_refuses():
    run(conformance.check_events_are_never_folded_and_a_full_budget_refuses)


def test_compact_folds_only_past_high_water():
    run(conformance.check_compact_folds_only_past_high_water)


def test_inbox_seen_add_expire():
    run(conformance.check_inbox_seen_add_expire)


def test_inbox_evicts_the_soonest_to_expire():
    run(conformance.check_inbox_evicts_the_soonest_to_expire)


def test_counters_and_stats_shape():
    run(conformance.check_counters_and_stats_shape)


def test_close_twice_and_reopen():
    run(conformance.check_close_twice_and_reopen)


def test_readonly_open_reads_and_refuses_writes():
    run(conformance.check_readonly_open_reads_and_refuses_writes)
