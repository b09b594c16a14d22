"""DS18B20 over a fake 1-Wire bus: non-blocking conversions, CRC, bus errors, resolution."""

from hw.mp.ds18b20 import DS18B20, crc8
from tests.pure._check import raises
from tests.pure._fake_machine import ManualTime


def scratchpad(celsius: float, config: int = 0x7F) -> bytearray:
    raw = int(celsius * 16) & 0xFFFF
    data = bytearray([raw & 0xFF, raw >> 8, 0, 0, config, 0xFF, 0x0C, 0x10])
    data.append(crc8(data))
    return data


class FakeBus:
    """One DS18B20 on a 1-Wire bus, as far as the driver's byte traffic goes."""

    def __init__(self, celsius: float = 21.5) -> None:
        self.celsius = celsius
        self.present = True
        self.raise_on_reset = False
        self.corrupt = False
        self.log: list = []
        self.scratch = bytearray(scratchpad(85.0))  # power-on value
        self._pending = None

    def reset(self) -> bool:
        if self.raise_on_reset:
            raise OSError(110)
        self.log.append("reset")
        return self.present

    def writebyte(self, b: int) -> None:
        self.log.append(b)
        if self._pending is not None:
            self._pending.append(b)
            if len(self._pending) == 3:
                self.log.append(("config", self._pending[2]))
                self._pending = None
            return
        if b == 0x44:
            self.scratch = scratchpad(self.celsius)
        elif b == 0x4E:
            self._pending = []

    def select_rom(self, rom) -> None:  # type: ignore[no-untyped-def]
        self.log.append(("rom", bytes(rom)))

    def readinto(self, buf) -> None:  # type: ignore[no-untyped-def]
        data = bytearray(self.scratch)
        if self.corrupt:
            data[0] ^= 0x01
        for i in range(len(buf)):
            buf[i] = data[i]


def test_crc8_known_vector():
    # ROM code example from Maxim application note 27: CRC of the first 7 bytes is the 8th.
    rom = bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xA2])
    assert crc8(rom, 7) == 0xA2
    assert crc8(rom) == 0


def test_first_read_starts_a_conversion_and_returns_none():
    bus = FakeBus(21.5)
    t = ManualTime()
    sensor = DS18B20(bus, now_ms=t)
    assert sensor.read_c() is None
    assert 0x44 in bus.log and ("config", 0x7F) in bus.log
    assert 0xBE not in bus.log  # never reads before the conversion had its time


def test_reading_arrives_after_the_conversion_time_without_waiting():
    bus = FakeBus(21.5)
    t = ManualTime()
    sensor = DS18B20(bus, now_ms=t)
    sensor.read_c()
    t.t = 500
    assert sensor.read_c() is None  # 12-bit conversion still running: no bus read
    assert 0xBE not in bus.log
    bus.celsius = -10.125  # the next conversion, started right after the read, sees this
    t.t = 750
    assert sensor.read_c() == 21.5
    assert bus.log.count(0x44) == 2  # the next conversion started at once
    t.t = 1000
    assert sensor.read_c() == 21.5  # still the last completed one
    t.t = 1500
    assert sensor.read_c() == -10.125


def test_lower_resolution_converts_faster():
    bus = FakeBus(30.0)
    t = ManualTime()
    sensor = DS18B20(bus, resolution_bits=9, now_ms=t)
    sensor.read_c()
    assert ("config", 0x1F) in bus.log
    t.t = 94
    assert sensor.read_c() == 30.0
    raises(ValueError, DS18B20, bus, None, 13)


def test_bad_crc_and_missing_sensor_read_none_then_recover():
    bus = FakeBus(20.0)
    t = ManualTime()
    sensor = DS18B20(bus, now_ms=t)
    sensor.read_c()
    bus.corrupt = True
    t.t = 800
    assert sensor.read_c() is None
    assert sensor.crc_errors == 1
    bus.corrupt = False
    t.t = 1600
    assert sensor.read_c() == 20.0
    bus.present = False
    t.t = 2400
    assert sensor.read_c() is None
    assert sensor.bus_errors >= 1
    bus.raise_on_reset = True
    t.t = 3200
    assert sensor.read_c() is None
    bus.raise_on_reset = False
    bus.present = True
    t.t = 4000
    assert sensor.read_c() is None  # conversion restarted
    t.t = 4800
    assert sensor.read_c() == 20.0


def test_power_on_value_is_not_a_reading_and_rom_is_selected():
    bus = FakeBus(85.0)
    t = ManualTime()
    rom = bytes([0x28, 1, 2, 3, 4, 5, 6, 0x99])
    sensor = DS18B20(bus, rom=rom, now_ms=t)
    sensor.read_c()
    bus.celsius = 84.0
    t.t = 750
    # 85.0 with no reading near it before is the power-on value (the sensor reset)
    assert sensor.read_c() is None
    assert ("rom", rom) in bus.log and 0xCC not in bus.log
    bus.celsius = 85.0
    t.t = 1500
    assert sensor.read_c() == 84.0
    bus.celsius = 21.0
    t.t = 2250
    assert sensor.read_c() == 85.0  # a real 85, reached from 84
    t.t = 3000
    assert sensor.read_c() == 21.0
    bus.scratch = scratchpad(85.0)  # the sensor browned out: power-on value instead of a reading
    t.t = 3750
    assert sensor.read_c() is None  # 85 straight after 21 is not believed


def test_all_zero_scratchpad_is_a_shorted_bus():
    bus = FakeBus(0.0)
    t = ManualTime()
    sensor = DS18B20(bus, now_ms=t)
    sensor.read_c()
    bus.scratch = bytearray(9)
    t.t = 800
    # the driver starts a conversion that rewrites scratch; read path sees the zeros first
    assert sensor.read_c() is None
    assert sensor.crc_errors == 1
