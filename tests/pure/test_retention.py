"""Retention maths: which telemetry runs fold, and what their aggregates say."""

from device.store.base import Record
from device.store.retention import (
    FOLD_GROUP,
    MEAN_DIGITS,
    find_run,
    fold,
    high_water,
    is_aggregate,
    low_water,
    over_high_water,
    samples_in,
    worth_folding,
)
from tests.pure._check import approx

T, E, R = 0, 1, 2  # lane indexes: telemetry, event, result


def _records(samples, first_seq=1, step_ms=1000):  # type: ignore[no-untyped-def]
    out = []
    for i in range(len(samples)):
        out.append(Record(first_seq + i, "telemetry", 1, (first_seq + i) * step_ms, samples[i], 0))
    return out


def test_water_marks():
    assert high_water(1000) == 800 and low_water(1000) == 600
    assert not over_high_water(700, 100, 1000)  # reaching the mark is fine
    assert over_high_water(700, 101, 1000)
    assert over_high_water(900, 0, 1000)


def test_find_run_needs_two_consecutive_telemetry_records():
    assert find_run([]) == (-1, -1)
    assert find_run([T]) == (-1, -1)
    assert find_run([T, E, T, R, T]) == (-1, -1)  # never across an event or a result
    assert find_run([T, T]) == (0, 2)
    assert find_run([E, T, T, E, T]) == (1, 3)
    assert find_run([T, E, T, T, T]) == (2, 5)
    assert find_run([R, R, E]) == (-1, -1)


def test_find_run_from_start_and_bounded_by_group():
    assert find_run([T, T, E, T, T], 1) == (3, 5)  # a lone tail of a run is no run
    assert find_run([T, T, E, T, T], 3) == (3, 5)
    assert find_run([T, T, E, T, T], 4) == (-1, -1)
    long = [T] * 40
    assert find_run(long) == (0, FOLD_GROUP)
    assert find_run(long, FOLD_GROUP) == (FOLD_GROUP, 2 * FOLD_GROUP)
    assert find_run(long, 39) == (-1, -1)
    assert find_run(long, 0, 3) == (0, 3)
    assert find_run(bytearray([E, T, T, T])) == (1, 4)  # any sequence of lane indexes


def test_fold_counts_min_max_mean_and_seq_range():
    agg = fold(_records([{"temp_c": 20.0}, {"temp_c": 22.5}, {"temp_c": 21.0}], first_seq=10))
    assert agg["agg"] == {"first": 10, "last": 12, "n": 3, "from_ms": 10000, "to_ms": 12000}
    assert agg["stats"] == {"temp_c": [3, 20.0, 22.5, 21.1667]}
    assert "last" not in agg  # no non-numeric field: nothing to keep
    assert is_aggregate(agg) and samples_in(agg) == 3


def test_fold_bool_is_a_duty_cycle_and_none_is_skipped():
    samples = [
        {"heat": True, "rh": 40, "fault": None},
        {"heat": False, "rh": None},
        {"heat": True, "rh": 44},
        {"heat": False},
    ]
    agg = fold(_records(samples))
    assert agg["stats"]["heat"] == [4, 0, 1, 0.5]
    assert agg["stats"]["rh"] == [2, 40, 44, 42.0]  # only where it was known
    assert "fault" not in agg["stats"] and "fault" not in agg.get("last", {})


def test_fold_keeps_the_latest_non_numeric_value():
    samples = [
        {"mode": "heat", "zones": [1], "err": "e1"},
        {"mode": "off", "zones": [1, 2]},
        {"mode": None, "fw": {"v": 3}},
    ]
    agg = fold(_records(samples))
    assert agg["last"] == {"mode": "off", "zones": [1, 2], "err": "e1", "fw": {"v": 3}}
    assert agg["stats"] == {}


def test_fold_mean_is_rounded():
    agg = fold(_records([{"x": 1}, {"x": 1}, {"x": 2}]))
    assert agg["stats"]["x"] == [3, 1, 2, round(4 / 3, MEAN_DIGITS)]


def test_folding_aggregates_again_is_exact():
    samples = [{"temp_c": 20.0 + i, "heat": i % 2 == 0, "mode": "m%d" % i} for i in range(8)]
    records = _records(samples, first_seq=100)
    whole = fold(records)
    halves = [fold(records[:4]), fold(records[4:])]
    again = fold(
        [
            Record(100, "telemetry", 1, 100000, halves[0], 0),
            Record(104, "telemetry", 1, 104000, halves[1], 0),
        ]
    )
    assert again == whole
    assert again["agg"] == {"first": 100, "last": 107, "n": 8, "from_ms": 100000, "to_ms": 107000}
    assert again["stats"]["temp_c"] == [8, 20.0, 27.0, 23.5]
    assert again["stats"]["heat"] == [8, 0, 1, 0.5]
    assert again["last"] == {"mode": "m7"}
    assert samples_in(again) == 8


def test_an_aggregate_and_plain_samples_fold_together():
    first = fold(_records([{"t": 10}, {"t": 20}, {"t": 30}], first_seq=5))  # n 3, mean 20
    records = [Record(5, "telemetry", 1, 5000, first, 0)] + _records([{"t": 40}, {"t": 0}], first_seq=9)
    agg = fold(records)
    assert agg["agg"] == {"first": 5, "last": 10, "n": 5, "from_ms": 5000, "to_ms": 10000}
    count, low, high, mean = agg["stats"]["t"]
    assert (count, low, high) == (5, 0, 40) and approx(mean, 20.0)


def test_uneven_means_weigh_by_count():
    a = fold(_records([{"v": 1}, {"v": 2}, {"v": 3}, {"v": 6}], first_seq=1))  # mean 3
    b = fold(_records([{"v": 9}, {"v": 11}], first_seq=5))  # mean 10
    agg = fold([Record(1, "telemetry", 1, 1000, a, 0), Record(5, "telemetry", 1, 5000, b, 0)])
    assert agg["stats"]["v"] == [6, 1, 11, round(32 / 6, MEAN_DIGITS)]


def test_samples_in_and_is_aggregate():
    assert samples_in({"temp_c": 20}) == 1 and not is_aggregate({"temp_c": 20})
    assert samples_in({"agg": {"n": 7}}) == 7
    assert samples_in({"agg": {"n": 0}}) == 1 and samples_in({"agg": {"n": "7"}}) == 1
    assert not is_aggregate({"agg": 3})


def test_worth_folding_only_when_smaller():
    assert worth_folding(100, 99)
    assert not worth_folding(100, 100)
    assert not worth_folding(100, 180)
