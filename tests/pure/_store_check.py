"""Helpers for store tests, portable: what a record weighs and whether telemetry is all accounted for."""

import json

MEAN_TOLERANCE = 1e-3  # aggregate means are rounded to 4 digits at each fold


def payload_size(payload) -> int:  # type: ignore[no-untyped-def]
    """Bytes of the payload's compact UTF-8 JSON: the figure budgets count."""
    try:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    except TypeError:  # MicroPython: no ensure_ascii, writes UTF-8 as it is
        text = json.dumps(payload, separators=(",", ":"))
    return len(text.encode())


async def read_all(store) -> list:  # type: ignore[no-untyped-def]
    return await store.read_outbox(10**6)


def forget_removed(records: list, telemetry: dict, others: dict) -> None:
    """Drop from a test's model what acked ``records`` stood for (every seq an aggregate covers)."""
    for r in records:
        agg = r.payload.get("agg") if r.lane == "telemetry" else None
        if isinstance(agg, dict):
            for seq in range(agg["first"], agg["last"] + 1):
                telemetry.pop(seq, None)
        else:
            telemetry.pop(r.seq, None)
            others.pop(r.seq, None)


def _as_is(value):  # type: ignore[no-untyped-def]
    return value


def telemetry_accounted(records: list, telemetry: dict, acked: set, lookup=_as_is) -> None:  # type: ignore[no-untyped-def]
    """Every telemetry seq appended and not acked is held as itself or inside one aggregate.

    ``telemetry``: seq -> what ``lookup`` turns into ``(payload, created_ms)`` (by default
    it is that pair; a small key saves a board-sized heap). Aggregates are checked against
    the samples they cover: seq range, count, min/max/mean per numeric field, the latest
    other values.
    """
    order = sorted(seq for seq in telemetry if seq not in acked)
    covered: set = set()
    for r in records:
        if r.lane != "telemetry":
            continue
        agg = r.payload.get("agg")
        if not isinstance(agg, dict):
            assert (r.payload, r.created_ms) == lookup(telemetry[r.seq]), r.seq
            assert r.seq not in covered
            covered.add(r.seq)
            continue
        first, last = agg["first"], agg["last"]
        assert r.seq == first and first <= last
        inside = [seq for seq in order if first <= seq <= last]
        assert inside and inside[0] == first, (first, last)
        assert agg["n"] == len(inside)
        assert r.created_ms == lookup(telemetry[first])[1] == agg["from_ms"]
        assert agg["to_ms"] == lookup(telemetry[inside[-1]])[1]
        for seq in inside:
            assert seq not in covered, seq
            covered.add(seq)
        samples = [lookup(telemetry[seq])[0] for seq in inside]
        for field in r.payload["stats"]:
            values = [p[field] for p in samples if p.get(field) is not None]
            numbers = [1 if v is True else (0 if v is False else v) for v in values]
            count, low, high, mean = r.payload["stats"][field]
            assert count == len(numbers), field
            assert low == min(numbers) and high == max(numbers), field
            assert abs(mean - sum(numbers) / len(numbers)) <= MEAN_TOLERANCE, (field, mean)
        for field, value in r.payload.get("last", {}).items():
            latest = [p[field] for p in samples if field in p and isinstance(p[field], str)]
            assert value == latest[-1], field
    assert sorted(covered) == order, [seq for seq in order if seq not in covered]
