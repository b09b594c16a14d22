"""``brickproof boot`` (tools/hostboot.py) and the trial health gate (device/ota/health.py) on the host.

The boot loop runs real ``brickproof run`` children: a run that ends cleanly
ends the loop after one boot; one that keeps failing is booted again, as a
crash, at most ``--max-boots`` times. The health gate watches a real device
(host_sim, no network, simulated time): healthy for ``health_ms`` passes; a
sensor fault fails at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from device.board import load_board
from device.boot import Device, build_env
from device.config import configure_apps
from device.ota.health import PASS, HealthGate
from tools.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_boot_without_run_arguments_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boot", "--root", str(tmp_path / "root")]) == 2
    assert "after --" in capsys.readouterr().err


def test_a_clean_run_is_booted_once_from_factory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    board = str(REPO / "boards/host_sim.json")
    code = main(
        ["boot", "--root", str(tmp_path / "root"), "--", "--board", board, "--for", "5", "--speed", "max", "--quiet"]
    )
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ota boot=")]
    assert lines == ["ota boot=1 slot=factory cause=power note=no boot record"]


def test_a_booted_ota_device_keeps_its_store_in_its_root_and_reports_the_agent(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from tools.otakey import make_or_load

    root = tmp_path / "root"
    make_or_load(root)  # ota_pub.json in the device root, where host_ota_sim looks for it
    elsewhere = tmp_path / "started-here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    board = str(REPO / "boards/host_ota_sim.json")
    code = main(["boot", "--root", str(root), "--", "--board", board, "--for", "5", "--speed", "max", "--json"])
    assert code == 0
    out = capfd.readouterr().out
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert summary["ota"]["state"] == "idle" and summary["ota"]["booted"] == "factory", summary["ota"]
    assert (root / "ota_store.sqlite").exists()  # the board's relative store path, under the root
    assert list(elsewhere.iterdir()) == []


def test_a_run_that_keeps_failing_is_booted_at_most_max_boots_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["boot", "--root", str(tmp_path / "root"), "--max-boots", "3", "--", "--board", "no-such.json", "--for", "1"]
    )
    assert code == 2  # the child's own exit code (its bad argument)
    out = capsys.readouterr().out
    assert [line.split()[2] for line in out.splitlines() if line.startswith("ota boot=")] == [
        "slot=factory",
        "slot=factory",
        "slot=factory",
    ]
    assert "cause=crash" in out and "stopped after 3 boots" in out


async def _device(faults: list[dict[str, object]]) -> Device:
    board = load_board(str(REPO / "boards/host_sim.json"))
    board["sim"]["faults"] = faults
    env, world = build_env(board, 0.0)
    device = Device(env, configure_apps(board, ["thermostat"]), world)
    await device.start()
    return device


async def _verdict(device: Device, gate: HealthGate, limit_ms: int) -> str:
    clock = device.env.clock
    end = clock.now_ms() + limit_ms
    while clock.now_ms() < end:
        verdict = await gate.step(clock.now_ms())
        if verdict:
            return verdict
        await clock.run_until(clock.now_ms() + 1000)  # type: ignore[attr-defined]
    return ""


async def test_the_health_gate_passes_a_healthy_device_after_health_ms() -> None:
    device = await _device([])
    try:
        gate = HealthGate(device, 5000, require_link=True)  # no link on this device: not required
        assert await _verdict(device, gate, 60_000) == PASS
        assert device.env.clock.now_ms() - gate.start_ms >= 5000
        assert gate.checks >= 5
        entry = await device.env.store.get_state("_ota.probe")
        assert entry is not None and entry.value == gate.checks
    finally:
        await device.stop()


async def test_the_health_gate_fails_on_an_app_fault() -> None:
    device = await _device([{"at_s": 0.0, "for_s": None, "part": "room_sensor", "kind": "disconnected", "value": None}])
    try:
        gate = HealthGate(device, 600_000, require_link=False)
        verdict = await _verdict(device, gate, 600_000)
        assert verdict.startswith("app thermostat reports fault"), verdict
    finally:
        await device.stop()
