"""DS18B20 temperature sensor on a 1-Wire bus, read without blocking.

A conversion takes up to 750 ms at 12 bits. ``read_c()`` never waits for
one: it returns the last completed conversion and, when the previous one
has had its time, reads it and starts the next. So with a 1 s control tick
each reading is at most one tick old, and the first call returns ``None``.

The bus is a ``onewire.OneWire``-like object: ``reset() -> bool`` (a device
answered), ``writebyte(b)``, ``readinto(buf)``, ``select_rom(rom)``. With no
``rom`` the driver addresses the only sensor on the bus (Skip ROM).

``None`` means the sensor did not answer: no presence pulse, a bus
exception, a bad CRC or an all-zero scratchpad (shorted bus). 85.0 °C is the
scratchpad's power-on value: a sensor that reset (brown-out on parasite
power) shows it instead of a reading, so 85.0 counts only when the last
good reading was within ``_NEAR_85_C`` of it.
"""

from device import compat
from hw.interfaces import TempSensor

_SKIP_ROM = 0xCC
_CONVERT_T = 0x44
_READ_SCRATCH = 0xBE
_WRITE_SCRATCH = 0x4E
_POWER_ON_RAW = 0x0550  # 85.0 °C
_NEAR_85_C = 5.0
# Conversion time by resolution (datasheet maxima).
_CONVERT_MS = {9: 94, 10: 188, 11: 375, 12: 750}


def crc8(data, length: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected): 0 over data + its CRC byte."""
    crc = 0
    n = len(data) if length is None else length
    for i in range(n):
        byte = data[i]
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


class DS18B20(TempSensor):
    def __init__(self, bus, rom=None, resolution_bits: int = 12, now_ms=None) -> None:  # type: ignore[no-untyped-def]
        if resolution_bits not in _CONVERT_MS:
            raise ValueError("resolution_bits must be 9..12, got %r" % (resolution_bits,))
        self.bus = bus
        self.rom = rom
        self.resolution_bits = resolution_bits
        self.convert_ms = _CONVERT_MS[resolution_bits]
        self._now_ms = now_ms if now_ms is not None else compat.monotonic_ms
        self._buf = bytearray(9)
        self._started_ms: int | None = None
        self._configured = False
        self._last_good: float | None = None
        self.last_c: float | None = None
        self.bus_errors = 0
        self.crc_errors = 0

    def read_c(self) -> float | None:
        now = self._now_ms()
        if self._started_ms is not None and now - self._started_ms >= self.convert_ms:
            self._started_ms = None
            self.last_c = self._read_scratchpad()
            if self.last_c is not None:
                self._last_good = self.last_c
        if self._started_ms is None:
            if self._start_conversion():
                self._started_ms = now
            else:
                self.last_c = None
        return self.last_c

    # -- bus transactions --------------------------------------------------

    def _address(self) -> bool:
        if not self.bus.reset():
            return False
        if self.rom is None:
            self.bus.writebyte(_SKIP_ROM)
        else:
            self.bus.select_rom(self.rom)
        return True

    def _start_conversion(self) -> bool:
        try:
            if not self._configured:
                if not self._address():
                    self.bus_errors += 1
                    return False
                # TH, TL (alarm bytes, unused), then the resolution in bits 5-6 of the config byte.
                self.bus.writebyte(_WRITE_SCRATCH)
                self.bus.writebyte(0)
                self.bus.writebyte(0)
                self.bus.writebyte(((self.resolution_bits - 9) << 5) | 0x1F)
                self._configured = True
            if not self._address():
                self.bus_errors += 1
                return False
            self.bus.writebyte(_CONVERT_T)
            return True
        except Exception:  # onewire raises its own error class, fakes raise OSError
            self.bus_errors += 1
            return False

    def _read_scratchpad(self) -> float | None:
        buf = self._buf
        try:
            if not self._address():
                self.bus_errors += 1
                return None
            self.bus.writebyte(_READ_SCRATCH)
            self.bus.readinto(buf)
        except Exception:
            self.bus_errors += 1
            return None
        if crc8(buf) != 0 or not any(buf):
            self.crc_errors += 1
            return None
        raw = buf[0] | (buf[1] << 8)
        if raw == _POWER_ON_RAW:
            good = self._last_good
            if good is None or not abs(85.0 - good) <= _NEAR_85_C:
                return None
        if raw & 0x8000:
            raw -= 0x10000
        return raw / 16.0
