"""The outage simulator end to end: every built-in scenario at a reduced size, and its exit codes.

Each run spawns its own mosquitto, DNS and proxies (``brickproof sim`` does
not use the session broker). Speeds are high to keep CI short; the verdict
does not depend on them (invariants are counted, not timed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_shim.scenario import BUILTIN_DIR, builtin_names, load_scenario
from cloud_shim.sim.runner import simulate
from tools.cli import main

DEVICES = 4
SPEED = 3000.0
RECOVERY_SPEED = 60.0  # the drain limit (50/s per device) is real time: faster recovery would outrun the bounds


@pytest.mark.parametrize("name", builtin_names())
def test_builtin_scenario_keeps_every_invariant(name: str, tmp_path: Path) -> None:
    metrics, series = simulate(
        load_scenario(name), DEVICES, SPEED, seed=3, report_dir=tmp_path, recovery_speed=RECOVERY_SPEED, progress=None
    )
    broken = [k for k, held in metrics["invariants"].items() if not held]
    assert broken == [], (broken, metrics)
    assert metrics["ok"] is True
    assert metrics["devices"] == DEVICES
    assert metrics["records_created"] > 0
    # Every record created is delivered, folded into a delivered aggregate, or still waiting in its outbox.
    accounted = metrics["records_delivered"] + metrics["compacted"] + metrics["records_pending"]
    assert accounted == metrics["records_created"]
    assert metrics["lost"] == 0 and metrics["duplicated"] == 0 and metrics["control_gaps"] == 0
    assert len(series["t_s"]) >= metrics["sim_s"] // 60
    assert sum(series["link_states"]["online"]) > 0
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["scenario"] == name
    assert (tmp_path / "index.html").is_file()


def test_us_east_1_takes_the_fleet_offline_and_back(tmp_path: Path) -> None:
    metrics, series = simulate(
        load_scenario("us-east-1-2025"), 3, SPEED, seed=5, recovery_speed=RECOVERY_SPEED, progress=None
    )
    assert metrics["ok"], metrics
    # During the outage nobody is online (the devices know only the primary endpoint) ...
    t_s, online = series["t_s"], series["link_states"]["online"]
    during = [n for t, n in zip(t_s, online, strict=True) if 2 * 3600 <= t <= 14 * 3600]
    assert during and max(during) == 0
    # ... the backlog builds up, and after the recovery everyone is back and it drained.
    assert max(series["outbox_depth"]["total"]) > 100
    assert online[-1] == 3
    assert metrics["commands"]["ok"] > 0


def _scenario_file(tmp_path: Path, **changes: object) -> Path:
    doc = json.loads((BUILTIN_DIR / "broker-restart.json").read_text())
    doc.update(changes)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_broken_invariant_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The broker is down until the very end: the backlog cannot have drained within the bound.
    path = _scenario_file(
        tmp_path,
        duration="20m",
        bounds={"resync": "1s", "shadow_converged": "1s"},
        timeline=[{"at": "5m", "do": "broker", "action": "kill"}, {"at": "19m", "do": "broker", "action": "start"}],
    )
    code = main(["sim", "--scenario", str(path), "--devices", "2", "--speed", "3000", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "resynced" in out


def test_a_bad_scenario_file_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _scenario_file(tmp_path, timeline=[{"at": "1m", "do": "dns", "endpoint": "primary", "mode": "emtpy"}])
    code = main(["sim", "--scenario", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "timeline[0].mode" in err[0] and "emtpy" in err[0]


def test_an_unknown_scenario_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--scenario", "no-such-outage"]) == 2
    assert "us-east-1-2025" in capsys.readouterr().err  # the message lists the built-ins


def test_list_names_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list"]) == 0
    out = capsys.readouterr().out
    for name in builtin_names():
        assert name in out
