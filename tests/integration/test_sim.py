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


MIXED = "mixed-home"  # the built-in mixed fleet: its own test below checks each app's invariants too


@pytest.mark.parametrize("name", [n for n in builtin_names() if n != MIXED])
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


def test_a_mixed_fleet_keeps_each_apps_invariants(tmp_path: Path) -> None:
    # 4 devices: 2 beds, 1 camera, 1 thermostat through a 2.5 h outage (the largest remainder goes to "bed").
    metrics, _ = simulate(
        load_scenario(MIXED), DEVICES, SPEED, seed=3, report_dir=tmp_path, recovery_speed=RECOVERY_SPEED, progress=None
    )
    assert metrics["apps"] == {"bed": 2, "camera": 1, "thermostat": 1}
    broken = [k for k, held in metrics["invariants"].items() if not held]
    assert broken == [], (broken, metrics)
    assert {"bed_envelope", "clips_exactly_once"} <= set(metrics["invariants"])
    accounted = metrics["records_delivered"] + metrics["compacted"] + metrics["records_pending"]
    assert accounted == metrics["records_created"]
    # The beds: an owner raised the head during the outage; the envelope flattened it after 2 h.
    bed = metrics["bed"]
    assert bed["beds"] == 2 and bed["breaches"] == 0
    assert 2 * 3600 <= bed["longest_raised_s"] <= 2 * 3600 + 300
    assert bed["pad_max_c"] <= 43.0 + 1.0
    # The camera: clips from before and after the outage arrived whole, once; the ring's budget dropped some.
    clips = metrics["clips"]
    assert clips["cameras"] == 1 and clips["delivered"] > 0
    assert clips["lost"] == 0 and clips["duplicated"] == 0
    assert clips["made"] == clips["delivered"] + clips["waiting"] + clips["dropped_on_device"]
    assert clips["dropped_on_device"] > 0
    # Commands meant for beds went to beds only; the ping went to everyone.
    assert metrics["commands"]["issued"] == 2 + DEVICES
    assert json.loads((tmp_path / "metrics.json").read_text())["clips"]["delivered"] == clips["delivered"]


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
    # (degraded: connected through a last-known-good address while DNS still answered wrong; the
    # link does not re-resolve while connected, so it stays degraded until its next reconnect)
    assert online[-1] + series["link_states"]["degraded"][-1] == 3
    assert metrics["commands"]["ok"] > 0


def _scenario_file(tmp_path: Path, **changes: object) -> Path:
    doc = json.loads((BUILTIN_DIR / "broker-restart.json").read_text())
    doc.update(changes)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_fleet_in_two_processes_merges_one_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # One broker, two shards of two devices each, a short refusal: the merged run accounts for all four.
    path = tmp_path / "short.json"
    path.write_text(
        json.dumps(
            {
                "name": "short-outage",
                "description": "the endpoint refuses for 5 minutes",
                "duration": "20m",
                "timeline": [
                    {"at": "3m", "do": "desired", "to": "all", "state": {"thermostat.setpoint_c": 21.0}},
                    {"at": "5m", "do": "proxy", "endpoint": "primary", "mode": "refuse", "for": "5m"},
                ],
            }
        )
    )
    argv = ["sim", "--scenario", str(path), "--devices", "4", "--shards", "2", "--speed", "600", "--quiet"]
    code = main([*argv, "--report", str(tmp_path / "report")])
    out = capsys.readouterr().out
    assert code == 0, out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["shards"] == 2 and metrics["devices"] == 4
    assert metrics["ok"] is True and metrics["lost"] == 0
    accounted = metrics["records_delivered"] + metrics["compacted"] + metrics["records_pending"]
    assert accounted == metrics["records_created"] > 0
    assert metrics["invariants"]["shadow_converged"] is True  # both shards' shadows, one verdict
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_broker_event_cannot_be_sharded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--scenario", "broker-restart", "--shards", "2"]) == 2
    assert "broker events need one process" in capsys.readouterr().err


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
