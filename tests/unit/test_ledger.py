"""The cloud ledger (cloud_shim/ledger.py): exactly-once and in-order verdicts from envelopes."""

from __future__ import annotations

import json
from typing import Any

from cloud_shim.ledger import Ledger

DEV = "d1"


def env(seq: int, lane: str = "telemetry", p: dict[str, Any] | None = None, **extra: Any) -> bytes:
    body = {"dev": DEV, "boot": 1, "seq": seq, "lane": lane, "t_ms": seq * 10, "wall_ms": None}
    body["p"] = p if p is not None else {"i": seq}
    body.update(extra)
    return json.dumps(body).encode()


def feed(ledger: Ledger, seq: int, lane: str = "telemetry", **kw: Any) -> None:
    ledger.feed("bp/%s/out/%s" % (DEV, lane), env(seq, lane, **kw))


def test_every_record_once_in_order_is_ok() -> None:
    ledger = Ledger()
    for seq in (1, 3, 4):
        feed(ledger, seq)
    feed(ledger, 2, "event")
    report = ledger.report(DEV, expected=range(1, 5))
    assert report.ok and report.lost == [] and report.delivered == 4
    assert report.per_lane == {"telemetry": 3, "event": 1}
    assert ledger.arrivals(DEV, "telemetry") == [1, 3, 4]
    assert ledger.delivered(DEV) == [1, 2, 3, 4]


def test_redelivery_is_a_duplicate_other_content_is_a_conflict() -> None:
    ledger = Ledger()
    feed(ledger, 1)
    feed(ledger, 1, wall_ms=123)  # wall time is derived at publish: not content
    feed(ledger, 2)
    feed(ledger, 2, p={"i": "something else"})
    report = ledger.report(DEV)
    assert report.duplicates == 1 and report.conflicts == [("telemetry", 2)] and not report.ok


def test_order_violations_gaps_and_lost() -> None:
    ledger = Ledger()
    for seq in (1, 2, 5, 4, 7):
        feed(ledger, seq)
    report = ledger.report(DEV)
    assert report.order_violations == [("telemetry", 4, 5)]
    assert report.gaps == [(3, 3), (6, 6)]
    report = ledger.report(DEV, expected=[(1, s) for s in range(1, 9)])
    assert report.lost == [3, 6, 8] and not report.ok


def test_aggregates_explain_gaps_and_a_refold_is_absorbed() -> None:
    ledger = Ledger()
    feed(ledger, 1)
    feed(ledger, 2)  # delivered raw, then folded while in flight: the aggregate comes again at seq 2
    agg = {"agg": {"first": 2, "last": 6, "n": 5, "from_ms": 20, "to_ms": 60}, "stats": {}}
    feed(ledger, 2, p=agg)
    feed(ledger, 7)
    report = ledger.report(DEV, expected=range(1, 8))
    assert report.ok and report.refolds == 1 and report.folded == 4 and report.lost == []
    assert ledger.count(DEV) == 7


def test_latency_results_reported_status_and_malformed() -> None:
    ledger = Ledger(clock_ms=lambda: 10_000)
    feed(ledger, 1, wall_ms=9_000)
    feed(ledger, 2, "result", p={"id": "c1", "status": "ok"}, wall_ms=9_900)
    ledger.feed("bp/%s/out/event" % DEV, b"not json")
    ledger.feed("bp/%s/out/event" % DEV, env(3, "telemetry"))  # lane and topic disagree
    ledger.feed("bp/%s/shadow/reported" % DEV, b'{"version": 2, "state": {}}')
    ledger.feed("bp/%s/status" % DEV, b"online")
    ledger.feed("elsewhere/x", b"{}")
    report = ledger.report(DEV)
    assert report.latency_ms == {"n": 2, "p50": 1000, "p95": 1000, "max": 1000}
    assert ledger.malformed == 2 and ledger.messages == 4
    assert ledger.results[DEV]["c1"]["status"] == "ok"
    assert ledger.reported[DEV]["version"] == 2 and ledger.status[DEV] == "online"
    assert ledger.wait_for(lambda led: led.count(DEV) == 2, timeout_s=1)
