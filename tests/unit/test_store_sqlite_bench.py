"""The outbox benchmarks run end to end, shrunk (``tools/bench/outbox.py``). Figures are never asserted."""

from __future__ import annotations

import json

import pytest

from tools.bench import outbox
from tools.cli import main


@pytest.fixture(autouse=True)
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "RECORDS", 300)
    monkeypatch.setattr(outbox, "PRODUCERS", 16)


def test_payloads_are_100_bytes_of_compact_json() -> None:
    for p in outbox.payloads(50):
        assert len(json.dumps(p, separators=(",", ":")).encode()) == outbox.PAYLOAD_BYTES


def test_outbox_append_reports_every_backend_beside_raw_sqlite3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "outbox-append", "--runs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    figures = result["figures"]
    assert result["name"] == "outbox-append"
    assert figures["records"] == 300
    for name in ("sqlite", "raw_sqlite3_batched", "raw_sqlite3_batched_preencoded"):
        assert figures[name + "_records_per_s"] > 0
    assert ("log_records_per_s" in figures) != ("log_skipped" in figures)
    assert figures["sqlite_records_per_commit"] > 1  # 16 producers share commits
    assert result["ratio"] > 0


def test_outbox_ack_drains_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "outbox-ack", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("outbox-ack:")
    assert "sqlite_records_per_s" in out and "raw_sqlite3_records_per_s" in out
