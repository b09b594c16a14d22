"""Board profiles and the chip rules of ``tools/boardcheck.py``: every board file, and boards that break a rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.board import load_board, resolve_pin
from device.config import configure_apps
from tools.boardcheck import ERROR, WARNING, check_board, check_file
from tools.cli import main

REPO = Path(__file__).resolve().parents[2]
BOARDS = sorted((REPO / "boards").glob("*.json"))
CHIPRULES = REPO / "tests" / "data" / "boards" / "chiprules"
DEVICE_BOARDS = ("esp32_generic.json", "pico_w.json", "rpi_linux.json")


def _levels(findings: list) -> set[tuple[str, str]]:
    return {(f.level, f.path) for f in findings}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_every_board_passes_the_chip_check_without_errors(path: Path) -> None:
    findings = check_file(str(path))
    assert [f for f in findings if f.level == ERROR] == []


@pytest.mark.parametrize("name", DEVICE_BOARDS)
def test_device_boards_are_clean_and_complete(name: str) -> None:
    board = load_board(str(REPO / "boards" / name))
    assert check_board(board) == [], "shipped device boards carry no warnings either"
    hw = board["hw"]
    # the thermostat's wiring: sensor, both relays, a button, a status LED, the watchdog
    settings = configure_apps(board, ["thermostat"])["thermostat"]
    for role in ("sensor", "heater", "cooler"):
        assert settings[role] in hw
    drivers = {part: hw[part]["driver"] for part in hw}
    assert "button" in drivers["button"]
    assert "status_led" in drivers["status_led"]
    assert "watchdog" in drivers["watchdog"]
    storage = board["storage"]
    assert storage["path"] and storage["budget_bytes"] >= 65536
    if board["runtime"] == "micropython":
        assert storage["backend"] == "log"
        assert board["heap_budget_bytes"] and board["heap_budget_bytes"] <= 262144
        # getaddrinfo blocks the VM on MicroPython: such boards name UDP resolvers
        assert board["link"]["dns_servers"]
    else:
        assert storage["backend"] == "sqlite"
    roles = [ep["role"] for ep in board["link"]["endpoints"]]
    assert roles[:2] == ["primary", "secondary"]


@pytest.mark.parametrize("name", DEVICE_BOARDS)
def test_device_board_pins_resolve_to_distinct_numbers(name: str) -> None:
    board = load_board(str(REPO / "boards" / name))
    numbers = []
    for part, spec in board["hw"].items():
        if spec.get("pin") is not None:
            numbers.append(resolve_pin(board, spec["pin"], "hw.%s.pin" % part))
    assert len(numbers) == len(set(numbers)) >= 5


# (file, {(level, path)}) -- exactly these findings, nothing else
CASES = [
    (
        "esp32_output_on_input_only.json",
        {(ERROR, "hw.heater.pin"), (WARNING, "hw.button.pin")},
    ),
    (
        "esp32_strapping_and_adc2.json",
        {(WARNING, "hw.button.pin"), (WARNING, "hw.status_led.pin"), (WARNING, "hw.room_sensor.pin")},
    ),
    (
        "esp32_flash_and_missing_pins.json",
        {(ERROR, "hw.heater.pin"), (ERROR, "hw.cooler.pin"), (ERROR, "hw.room_sensor.pin")},
    ),
    (
        "pico_w_wireless_pins.json",
        {(ERROR, "hw.heater.pin"), (ERROR, "hw.button.pin"), (ERROR, "hw.room_sensor.pin")},
    ),
    ("pin_used_twice.json", {(ERROR, "hw.heater.pin")}),
    (
        "runtime_mismatch.json",
        {
            (ERROR, "hw.room_sensor.driver"),
            (ERROR, "hw.heater.driver"),
            (ERROR, "hw.cooler.colour"),
            (ERROR, "hw.cooler.pin"),
            (ERROR, "apps.thermostat.tick_ms"),
        },
    ),
]


@pytest.mark.parametrize(("name", "expected"), CASES, ids=[c[0] for c in CASES])
def test_chip_rules_name_the_path(name: str, expected: set[tuple[str, str]]) -> None:
    path = CHIPRULES / name
    assert load_board(str(path))["name"], "chip-rule boards pass the schema: only the chip check catches them"
    assert _levels(check_file(str(path))) == expected


def test_every_chip_rule_board_has_a_case() -> None:
    assert sorted(p.name for p in CHIPRULES.glob("*.json")) == sorted(c[0] for c in CASES)


def test_messages_say_what_is_wrong() -> None:
    by_path = {f.path: f.message for f in check_file(str(CHIPRULES / "esp32_output_on_input_only.json"))}
    assert "input-only" in by_path["hw.heater.pin"] and "GPIO35" in by_path["hw.heater.pin"]
    by_path = {f.path: f.message for f in check_file(str(CHIPRULES / "pin_used_twice.json"))}
    assert by_path["hw.heater.pin"] == "pin 26 is already used by hw.cooler.pin"
    by_path = {f.path: f.message for f in check_file(str(CHIPRULES / "pico_w_wireless_pins.json"))}
    assert "wireless" in by_path["hw.heater.pin"]


def test_errors_sort_before_warnings() -> None:
    findings = check_file(str(CHIPRULES / "esp32_output_on_input_only.json"))
    assert [f.level for f in findings] == [ERROR, WARNING]


def test_a_board_that_does_not_load_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "chip": "esp32", "hw": {"heater": {"driver": "relay", "pin": "nope"}}}))
    findings = check_file(str(bad))
    assert _levels(findings) == {(ERROR, "hw.heater.pin")}
    assert "unknown pin" in findings[0].message


def test_cli_board_check(capsys: pytest.CaptureFixture[str]) -> None:
    good = str(REPO / "boards" / "esp32_generic.json")
    assert main(["board", "check", good]) == 0
    assert capsys.readouterr().out.strip() == good + ": ok"
    warn_only = str(CHIPRULES / "esp32_strapping_and_adc2.json")
    assert main(["board", "check", warn_only]) == 0
    assert main(["board", "check", "--strict", warn_only]) == 1
    capsys.readouterr()
    bad = str(CHIPRULES / "esp32_output_on_input_only.json")
    assert main(["board", "check", good, bad]) == 1
    out = capsys.readouterr().out
    assert bad + ": error: hw.heater.pin: GPIO35 is input-only" in out
    assert main(["board", "check"]) == 2
