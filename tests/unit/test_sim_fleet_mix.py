"""Mixed fleets and a quiet fleet log: what ``brickproof sim --apps`` and ``brickproof run`` show for bed and camera."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cloud_shim.report_text import summary_table
from cloud_shim.scenario import ScenarioError, expand, fleet_for, load_scenario, with_apps
from cloud_shim.sim.fleet import FLEET_BOARDS, owner_app, state_for
from cloud_shim.sim.fleetlog import FleetLog
from device import log
from device.board import load_board
from device.config import configure_apps
from tools.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_every_fleet_board_loads_and_configures_its_app() -> None:
    for app, path in FLEET_BOARDS.items():
        board = load_board(str(REPO / path))
        assert app in configure_apps(board, [app])
        assert board["storage"]["backend"] == "memory"


def test_apps_split_the_fleet_evenly_and_keep_the_timeline() -> None:
    base = load_scenario("us-east-1-2025")
    mixed = with_apps(base, ["thermostat", "bed", "camera"])
    fleet = fleet_for(mixed, 9, seed=1)
    assert sorted(d["app"] for d in fleet) == ["bed"] * 3 + ["camera"] * 3 + ["thermostat"] * 3
    assert mixed["timeline"] == base["timeline"]
    assert len(expand(mixed, fleet, 1)) == len(expand(base, fleet_for(base, 9, 1), 1))


def test_an_unknown_app_names_the_field() -> None:
    with pytest.raises(ScenarioError, match=r"fleet\.mix\.oven: unknown app"):
        with_apps(load_scenario("flaky-wifi"), ["thermostat", "oven"])


def test_a_state_key_of_one_app_reaches_only_that_apps_devices() -> None:
    change = {"thermostat.setpoint_c": 21.0, "bed.left.setpoint_c": 30.0}
    assert state_for("thermostat", change) == {"thermostat.setpoint_c": 21.0}
    assert state_for("bed", change) == {"bed.left.setpoint_c": 30.0}
    assert state_for("camera", change) == {}
    assert state_for("thermostat", {"setpoint_c": 20.0}) == {"thermostat.setpoint_c": 20.0}
    assert owner_app("bed.set_base") == "bed" and owner_app("ping") is None and owner_app("x.y") is None


def test_the_fleet_log_shows_each_kind_once_and_counts_the_rest() -> None:
    out = io.StringIO()
    warn = log.get_logger("link")
    with FleetLog(out) as fleet_log:
        for i in range(100):
            warn.warning("%s at 127.0.0.%d is not our broker: %s", "primary", 2 + i % 3, "no CONNACK")
        log.get_logger("camera").warning("camera capture failed: %s", "timeout")
    shown = out.getvalue().splitlines()
    assert shown[0] == "WARN link: primary at 127.0.0.2 is not our broker: no CONNACK"
    assert shown[1] == "WARN camera: camera capture failed: timeout"
    assert len(shown) == 3 and shown[2].startswith("log: 100 lines like 'WARN link: primary at 127.0.0.2")
    assert sorted(fleet_log.repeats().values()) == [1, 100]
    # Leaving the block gives the log back to stderr.
    assert log._state["sink"] is not fleet_log.write


def test_the_summary_table_shows_apps_beds_clips_and_the_log() -> None:
    metrics = {
        "scenario": "x",
        "devices": 3,
        "apps": {"bed": 1, "camera": 1, "thermostat": 1},
        "bed": {"beds": 1, "breaches": 0, "pad_min_c": 24.0, "pad_max_c": 30.0, "longest_raised_s": 60.0,
                "stalled_sections": 0},
        "clips": {"cameras": 1, "made": 10, "delivered": 8, "waiting": 1, "dropped_on_device": 1, "lost": 0,
                  "duplicated": 0},
        "log_lines": {"WARN link: a": 100},
        "invariants": {"bed_envelope": True, "clips_exactly_once": True},
        "ok": True,
    }  # fmt: skip
    table = summary_table(metrics)
    assert "bed 1  camera 1  thermostat 1" in table
    assert "envelope breaches 0" in table
    assert "made 10  delivered 8  waiting 1  dropped on device 1  lost 0  duplicated 0" in table
    assert "100 lines of 1 kinds" in table
    assert table.splitlines()[-1].endswith("PASS")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, _ = capsys.readouterr()
    return code, out


def test_run_shows_the_bed_and_a_scheduled_stall_in_its_status_lines(capsys: pytest.CaptureFixture[str]) -> None:
    board = str(REPO / "boards" / "host_bed_sim.json")
    code, out = run_cli(capsys, "run", "--board", board, "--for", "600", "--speed", "max", "--status-every", "300",
                        "--fault", "head_motor:stall@100+200")  # fmt: skip
    assert code == 0
    status = [line for line in out.splitlines() if "health" in line and not line.startswith(" ")]
    assert len(status) == 2
    for field in ("left ", "right ", "set ", "head ", "foot ", "health ok"):
        assert field in status[0]
    assert "button presses" in out and "rejected by the envelope" in out


def test_run_shows_the_camera_in_its_status_lines(capsys: pytest.CaptureFixture[str]) -> None:
    board = str(REPO / "boards" / "host_camera_sim.json")
    code, out = run_cli(capsys, "run", "--board", board, "--for", "120", "--speed", "max", "--status-every", "60")
    assert code == 0
    status = [line for line in out.splitlines() if "health" in line and not line.startswith(" ")]
    assert len(status) == 2
    assert "events " in status[-1] and "clips " in status[-1] and "starting" not in status[-1]
    assert "evicted by the budget" in out


def test_sim_rejects_a_repeated_app(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--apps", "bed,bed"])
    _, err = capsys.readouterr()
    assert code == 2 and "--apps" in err
