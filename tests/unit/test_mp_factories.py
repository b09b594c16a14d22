"""The driver table builds real boards' parts: hw/mp factories over a fake ``machine``, hw/linux over a fake sysfs."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from device.board import load_board
from device.errors import ConfigError
from hw.build import build_hw
from hw.mp.button import Button
from hw.mp.ds18b20 import DS18B20
from hw.mp.gpio import Relay
from hw.mp.status_led import StatusLed
from hw.mp.thermistor import ThermistorAdc
from hw.mp.watchdog import Watchdog

REPO = Path(__file__).resolve().parents[2]


class Pin:
    IN, OUT, PULL_UP, PULL_DOWN = 1, 2, 3, 4
    made: ClassVar[list[Pin]] = []

    def __init__(self, number: int, mode: int = 1, pull: int | None = None, value: int | None = None) -> None:
        self.number, self.mode, self.pull, self.level = number, mode, pull, value
        Pin.made.append(self)

    def value(self, v: int | None = None) -> int | None:
        if v is None:
            return self.level or 0
        self.level = v
        return None


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin: Pin) -> None:
        self.pin = pin
        self.attn: int | None = None

    def atten(self, a: int) -> None:
        self.attn = a

    def read_u16(self) -> int:
        return 32768


class WDT:
    def __init__(self, timeout: int) -> None:
        self.timeout = timeout

    def feed(self) -> None:
        pass


class OneWire:
    def __init__(self, pin: Pin) -> None:
        self.pin = pin


@pytest.fixture
def fake_machine(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    machine = types.ModuleType("machine")
    machine.Pin = Pin  # type: ignore[attr-defined]
    machine.ADC = ADC  # type: ignore[attr-defined]
    machine.WDT = WDT  # type: ignore[attr-defined]
    machine.PWM = object  # type: ignore[attr-defined]
    onewire = types.ModuleType("onewire")
    onewire.OneWire = OneWire  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "machine", machine)
    monkeypatch.setitem(sys.modules, "onewire", onewire)
    Pin.made = []
    return machine


def test_esp32_generic_builds_every_part_on_its_pins(fake_machine: types.ModuleType) -> None:
    board = load_board(str(REPO / "boards" / "esp32_generic.json"))
    parts = build_hw(board)
    sensor = parts.get("room_sensor")
    assert isinstance(sensor, DS18B20) and sensor.resolution_bits == 12
    assert sensor.bus.pin.number == 4  # the "onewire" alias
    heater = parts.get("heater")
    assert isinstance(heater, Relay) and heater.active_low
    assert heater.pin.number == 26 and heater.pin.mode == Pin.OUT
    assert heater.pin.level == 1  # active low: created high, never clicked on at boot
    assert heater.on is False
    floor = parts.get("floor_sensor")
    assert isinstance(floor, ThermistorAdc) and floor.adc.attn == ADC.ATTN_11DB
    button = parts.get("button")
    assert isinstance(button, Button) and button.pin.pull == Pin.PULL_UP and button.pin.number == 32
    assert isinstance(parts.get("status_led"), StatusLed)
    dog = parts.get("watchdog")
    assert isinstance(dog, Watchdog) and not dog.armed and dog.timeout_ms == 8000


def test_pico_w_builds(fake_machine: types.ModuleType) -> None:
    parts = build_hw(load_board(str(REPO / "boards" / "pico_w.json")))
    sensor = parts.get("room_sensor")
    assert isinstance(sensor, ThermistorAdc) and sensor.adc.pin.number == 26 and sensor.samples == 8
    heater = parts.get("heater")
    assert isinstance(heater, Relay) and heater.pin.number == 15 and heater.pin.level == 0


def test_bad_options_name_the_path(fake_machine: types.ModuleType) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"driver": "relay"}, "hw.p.pin"),
        ({"driver": "relay", "pin": 5, "active_low": "yes"}, "hw.p.active_low"),
        ({"driver": "ds18b20", "pin": 4, "resolution_bits": 14}, "hw.p.resolution_bits"),
        ({"driver": "ds18b20", "pin": 4, "rom": "28ff"}, "hw.p.rom"),
        ({"driver": "watchdog", "timeout_ms": 20000}, "hw.p.timeout_ms"),
        ({"driver": "button", "pin": 4, "pull": "sideways"}, "hw.p.pull"),
        ({"driver": "relay", "pin": "nope"}, "hw.p.pin"),
    ]
    for spec, path in cases:
        with pytest.raises(ConfigError) as info:
            build_hw({"hw": {"p": spec}, "pins": {}})
        assert info.value.path == path, (spec, info.value)


def test_without_machine_the_driver_says_not_available() -> None:
    with pytest.raises(ConfigError) as info:
        build_hw({"hw": {"w": {"driver": "watchdog"}}})
    assert info.value.path == "hw.w.driver"
    assert "not available" in info.value.message and "machine.WDT" in info.value.message


def _fake_sysfs(root: Path, base: int, lines: list[int]) -> None:
    gpio = root / "class" / "gpio"
    chip = gpio / ("gpiochip%d" % base)
    chip.mkdir(parents=True)
    (chip / "label").write_text("pinctrl-bcm2711\n")
    (chip / "base").write_text("%d\n" % base)
    (gpio / "export").write_text("")
    for line in lines:
        d = gpio / ("gpio%d" % (base + line))
        d.mkdir()
        (d / "direction").write_text("in\n")
        (d / "value").write_text("0\n")
    # as the kernel lays it out: bus/w1/devices/28-... links to the sensor under its bus master
    master = root / "devices" / "w1_bus_master1"
    (master / "28-000001").mkdir(parents=True)
    (master / "therm_bulk_read").write_text("")
    (master / "28-000001" / "temperature").write_text("21500\n")
    devices = root / "bus" / "w1" / "devices"
    devices.mkdir(parents=True)
    (devices / "28-000001").symlink_to(master / "28-000001")
    (devices / "w1_bus_master1").symlink_to(master)


def test_rpi_linux_builds_over_sysfs(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path, 512, [4, 17, 22, 23, 27])
    board = load_board(str(REPO / "boards" / "rpi_linux.json"))
    for part in ("room_sensor", "heater", "cooler", "button", "status_led"):
        board["hw"][part]["sysfs"] = str(tmp_path)
    del board["hw"]["watchdog"]
    parts = build_hw(board)
    gpio = tmp_path / "class" / "gpio"
    heater = parts.get("heater")
    assert isinstance(heater, Relay)
    assert (gpio / "gpio529" / "direction").read_text() == "high"  # BCM17 + base 512, off (active low)
    heater.set(True)
    assert (gpio / "gpio529" / "value").read_text() == "0"
    assert (gpio / "gpio534" / "direction").read_text() == "in"  # the button, BCM22
    sensor = parts.get("room_sensor")
    now = [0]
    sensor._now_ms = lambda: now[0]
    assert sensor.read_c() is None  # conversion triggered, nothing to read yet
    assert (tmp_path / "devices" / "w1_bus_master1" / "therm_bulk_read").read_text() == "trigger"
    now[0] = 750
    assert sensor.read_c() == 21.5


def test_linux_watchdog_arms_on_first_feed(tmp_path: Path) -> None:
    dev = tmp_path / "watchdog"
    dev.write_bytes(b"")
    dog = build_hw({"hw": {"w": {"driver": "linux_watchdog", "device": str(dev)}}}).get("w")
    assert isinstance(dog, Watchdog) and not dog.armed
    dog.feed()
    dog.feed()
    assert dog.armed and dev.read_bytes() == b"\0\0"
    os.close(dog._wdt.fd)  # type: ignore[attr-defined]


def test_linux_gpio_without_sysfs_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_hw({"hw": {"r": {"driver": "linux_relay", "pin": 17, "sysfs": str(tmp_path)}}})
    assert info.value.path == "hw.r.pin" and "sysfs" in info.value.message
