"""``brickproof run --broker``: the thermostat syncs its records with a real broker."""

from __future__ import annotations

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.ledger import LedgerSubscriber
from tools.cli import main


def test_run_with_broker_delivers_the_outbox(
    broker: Mosquitto, unique_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with LedgerSubscriber("127.0.0.1", broker.port, [unique_id], client_id="ledger-" + unique_id) as ledger:
        code = main(
            [
                "run",
                "--board",
                "boards/host_sim.json",
                "--for",
                "600",
                "--speed",
                "120",
                "--quiet",
                "--broker",
                f"mqtt://127.0.0.1:{broker.port}",
                "--device-id",
                unique_id,
            ]
        )
        out, _ = capsys.readouterr()
        assert code == 0
        assert "  link " in out and "  sync " in out
        report = ledger.ledger.report(unique_id)
    # the outage receipt (boot) and telemetry every simulated minute arrived, nothing missing between
    assert report.delivered >= 5 and report.ok, report
    assert report.per_lane.get("event", 0) >= 1 and report.per_lane.get("telemetry", 0) >= 5
