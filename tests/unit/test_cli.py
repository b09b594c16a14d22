"""The ``brickproof`` CLI as a user meets it: run, bench, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.cli import main

REPO = Path(__file__).resolve().parents[2]
BOARD = str(REPO / "boards" / "host_sim.json")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_prints_one_status_line_per_simulated_minute_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "--board", BOARD, "--app", "thermostat", "--for", "3600", "--speed", "max")
    assert code == 0
    lines = out.splitlines()
    status = [line for line in lines if "room" in line and "health" in line]
    assert len(status) == 60
    assert status[0].startswith("00:01:00 00:01")  # elapsed, then simulated wall time of day
    assert status[-1].startswith("01:00:00 01:00")
    for field in ("set ", "heat ", "cool ", "mode ", "health "):
        assert field in status[0]
    assert any(line.startswith("summary: 1.00 simulated hours") for line in lines)
    assert any("0 / 0 violations" in line for line in lines)


def test_run_json_summary_reports_control_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "--board", BOARD, "--for", "7200", "--speed", "max", "--json", "--quiet")
    assert code == 0
    summary = json.loads(out)
    assert summary["sim_ms"] == 7_200_000
    assert summary["thermostat"]["ticks"] == 7201  # one per second, both ends included
    assert summary["thermostat"]["min_on_violations"] == 0
    assert summary["thermostat"]["min_off_violations"] == 0
    assert summary["task_crashes"] == 0
    assert summary["outbox_records"] > 0  # telemetry queued for the cloud while offline


def test_run_reports_an_injected_sensor_fault(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "run",
        "--board",
        BOARD,
        "--for",
        "1800",
        "--speed",
        "max",
        "--fault",
        "room_sensor:disconnected@600+600",
    )
    assert code == 0
    status = [line for line in out.splitlines() if "health" in line]
    assert any("health fault:sensor_missing" in line for line in status[11:20])
    assert "health ok" in status[-1]
    assert "heat off" in status[15]  # safe state while the sensor is gone
    assert "fault: sensor_missing" in err


def test_run_paces_simulated_time_by_speed(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "--board", BOARD, "--for", "120", "--speed", "600", "--json", "--quiet")
    assert code == 0
    assert json.loads(out)["real_s"] >= 0.2 - 0.01  # 120 s at 600x cannot take less than 0.2 s


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--board", BOARD, "--for", "-5"], "must be a positive number of seconds"),
        (["run", "--board", BOARD, "--for", "ten"], "expected seconds"),
        (["run", "--board", BOARD, "--for", "60", "--speed", "0"], "must be > 0"),
        (["run", "--board", BOARD, "--for", "60", "--app", "toaster"], "invalid choice"),
        (["run", "--for", "60"], "--board"),
        (["run", "--board", "boards/nope.json", "--for", "60"], "cannot read board file"),
        (["run", "--board", BOARD, "--for", "60", "--fault", "room_sensor:melted@10"], "unknown fault kind"),
        (["run", "--board", BOARD, "--for", "60", "--fault", "kettle:nan@10"], "names no part 'kettle'"),
        (["frobnicate"], "invalid choice"),
        (["bench", "nope"], "unknown benchmark"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err


def test_bad_board_files_give_one_line_naming_the_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = {
        "unknown_key.json": ({"name": "x", "colour": "red"}, "unknown key 'colour'"),
        "wrong_type.json": ({"name": "x", "storage": {"budget_bytes": "lots"}}, "storage.budget_bytes: expected int"),
        "unknown_pin.json": (
            {"name": "x", "pins": {"HEAT": 4}, "hw": {"heater": {"driver": "relay", "pin": "HEAT2"}}},
            "hw.heater.pin",
        ),
        "bad_setting.json": (
            {
                "name": "x",
                "hw": {
                    "room_sensor": {"driver": "sim_thermometer"},
                    "heater": {"driver": "sim_relay", "load": "heater"},
                },
                "apps": {"thermostat": {"hysteresis_c": "wide"}},
                "sim": {},
            },
            "apps.thermostat.hysteresis_c",
        ),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(data))
        code, _, err = run_cli(capsys, "run", "--board", str(path), "--for", "60", "--speed", "max")
        assert code == 2, name
        assert len(err.strip().splitlines()) == 1, err
        assert expected in err, (name, err)
        assert name in err


def test_setpoint_of_500_in_a_board_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A board file is checked before boot; 500 in the *state* is clamped at run time (tests/pure/test_thermostat_app).
    board = json.loads(Path(BOARD).read_text())
    board["extends"] = str(REPO / "boards" / "host_base.json")
    board["apps"]["thermostat"]["default_setpoint_c"] = 500
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(board))
    code, _, err = run_cli(capsys, "run", "--board", str(path), "--for", "60", "--speed", "max")
    assert code == 2
    assert "apps.thermostat.default_setpoint_c: must be <= 32" in err


def test_bench_list_names_every_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "bench", "--list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    from tools.bench import BENCHMARKS

    assert names == sorted(BENCHMARKS)
    assert {"boot", "drain", "resume", "tick", "camera-fps", "fleet"} <= set(names)


def test_bench_boot_json_has_figures_and_a_null_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "bench", "boot", "--runs", "1", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["name"] == "boot"
    assert result["ratio"] is None
    assert result["figures"]["cpython_process_to_decision_ms"] > 0
    assert result["figures"]["cpython_in_process_boot_ms"] > 0
