"""A stand-in ``onewire`` with one DS18B20 at 21.5 C on the bus (tests only)."""


def _crc8(data):
    crc = 0
    for value in data:
        byte = value
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


class OneWire:
    def __init__(self, pin):
        self.pin = pin
        pad = bytearray([0x58, 0x01, 0, 0, 0x7F, 0xFF, 0x08, 0x10])  # 0x0158 / 16 = 21.5
        pad.append(_crc8(pad))
        self.pad = pad

    def reset(self, required=False):
        return True

    def writebyte(self, b):
        pass

    def select_rom(self, rom):
        pass

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.pad[i]
