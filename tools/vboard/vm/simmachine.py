"""Simulated hardware for the virtual board: a ``machine`` module (and ``onewire``) wired to a tiny room.

``install()`` puts this module in ``sys.modules`` as ``machine`` (the unix
port's own ``machine`` has no ``Pin``), and a ``onewire`` module whose bus
answers as one DS18B20 reading the room. The wiring comes from the board
profile (the bridge writes it, see ``tools/vboard/wiring.py``): which output
pins switch a heater or cooler (watts), which ADC pins read an NTC thermistor
in the room, which pins carry a 1-Wire sensor. The room warms and cools in
real time with lumped constants fast enough that a HIL run of a few seconds
sees control work. Its temperature is kept in a host file, so it survives
resets like a real room does.
"""

import json
import math
import sys
import time

# Pin modes and constants as on the ports (values do not matter to drivers, names do).
BOARD_NAME = "vboard"
CHIP = "host"
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

_wiring: dict = {}
_levels: dict = {}  # pin number -> output level 0/1
_duty: dict = {}  # pin number -> PWM duty 0..65535 (overrides the level)
_room = None
_ctl = None
_cause = PWRON_RESET


class HardReset(BaseException):
    hard_reset = True


def _now_ms() -> int:
    return time.time_ns() // 1000000


class Room:
    """One lumped room: dT/dt = (loads + loss_w_per_k * (outside - T)) / mass_j_per_k."""

    def __init__(self, cfg: dict, state_file) -> None:  # type: ignore[no-untyped-def]
        self.outside_c = cfg.get("outside_c", 5.0)
        self.mass = cfg.get("mass_j_per_k", 20000.0)
        self.loss = cfg.get("loss_w_per_k", 100.0)
        self.file = state_file
        self.temp_c = cfg.get("initial_c", 16.0)
        self.at_ms = _now_ms()
        self.saved_ms = 0
        try:
            state_file.seek(0)
            text = state_file.read().strip()
            if text:
                temp, at = text.split()
                self.temp_c, self.at_ms = float(temp), int(at)
        except (OSError, ValueError):
            pass

    def power_w(self) -> float:
        total = 0.0
        loads = _wiring.get("loads", {})
        low = _wiring.get("active_low", ())
        for pin in loads:
            number = int(pin)
            if number in _duty:
                share = _duty[number] / 65535
            elif number in _levels:  # an active-low relay is energised by a low line
                share = 1 - _levels[number] if pin in low else _levels[number]
            else:
                share = 0  # a pin never driven: the relay is off
            total += loads[pin] * share
        return total

    def update(self) -> float:
        """Advance to now (exact exponential step for constant power) and return the temperature."""
        now = _now_ms()
        dt_s = (now - self.at_ms) / 1000.0
        if dt_s > 0:
            k = self.loss / self.mass
            target = self.outside_c + self.power_w() / self.loss
            self.temp_c = target + (self.temp_c - target) * math.exp(-k * dt_s)
            self.at_ms = now
        if self.file is not None and now - self.saved_ms >= 500:
            self.saved_ms = now
            self.file.seek(0)
            self.file.write(("%.4f %d" % (self.temp_c, now)).encode() + b" " * 16)
            self.file.flush()
        return self.temp_c


def _room_temp() -> float:
    return _room.update() if _room is not None else 20.0


def _pin_number(pin) -> int:  # type: ignore[no-untyped-def]
    return pin.id if isinstance(pin, Pin) else int(pin)


class Pin:
    IN, OUT, OPEN_DRAIN, ALT = 1, 3, 7, 2
    PULL_UP, PULL_DOWN = 1, 2
    IRQ_RISING, IRQ_FALLING = 1, 2

    def __init__(self, id, mode=-1, pull=-1, value=None) -> None:  # type: ignore[no-untyped-def]
        self.id = int(id)
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None) -> None:  # type: ignore[no-untyped-def]
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):  # type: ignore[no-untyped-def]
        if v is None:
            if self.id in _levels:
                return _levels[self.id]
            return 1 if getattr(self, "pull", None) == Pin.PULL_UP else 0
        _room_temp()  # settle the room at the old power before it changes
        _levels[self.id] = 1 if v else 0
        return None

    def __call__(self, v=None):  # type: ignore[no-untyped-def]
        return self.value(v)

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(self, handler=None, trigger=3):  # type: ignore[no-untyped-def]
        return None


class Signal:
    def __init__(self, pin, invert=False) -> None:  # type: ignore[no-untyped-def]
        self.pin, self.invert = pin, invert

    def value(self, v=None):  # type: ignore[no-untyped-def]
        if v is None:
            return self.pin.value() ^ self.invert
        self.pin.value(bool(v) ^ self.invert)
        return None


class ADC:
    ATTN_0DB, ATTN_2_5DB, ATTN_6DB, ATTN_11DB = 0, 1, 2, 3
    WIDTH_12BIT = 3

    def __init__(self, pin, atten=None) -> None:  # type: ignore[no-untyped-def]
        self.id = _pin_number(pin)

    def atten(self, value) -> None:  # type: ignore[no-untyped-def]
        self._atten = value

    def width(self, value) -> None:  # type: ignore[no-untyped-def]
        self._width = value

    def read_u16(self) -> int:
        spec = _wiring.get("thermistors", {}).get(str(self.id))
        if spec is None:
            return 0
        return thermistor_raw(_room_temp(), spec)

    def read(self) -> int:
        return self.read_u16() >> 4

    def read_uv(self) -> int:
        return self.read_u16() * 3300000 // 65535


def thermistor_raw(temp_c: float, spec: dict) -> int:
    """The ADC reading an NTC divider gives at ``temp_c`` (the Beta equation, inverted)."""
    t0 = spec.get("t0_c", 25.0) + 273.15
    r = spec.get("r0_ohm", 10000.0) * math.exp(spec.get("beta", 3950.0) * (1 / (temp_c + 273.15) - 1 / t0))
    series = spec.get("series_ohm", 10000.0)
    share = r / (r + series) if spec.get("thermistor_low", True) else series / (r + series)
    return int(share * 65535 + 0.5)


class PWM:
    def __init__(self, dest, freq=None, duty_u16=None) -> None:  # type: ignore[no-untyped-def]
        self.id = _pin_number(dest)
        self._freq = freq or 1000
        self.duty_u16(duty_u16 or 0)

    def freq(self, value=None):  # type: ignore[no-untyped-def]
        if value is None:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value=None):  # type: ignore[no-untyped-def]
        if value is None:
            return _duty.get(self.id, 0)
        _room_temp()
        _duty[self.id] = max(0, min(65535, int(value)))
        return None

    def duty(self, value=None):  # type: ignore[no-untyped-def]
        if value is None:
            return self.duty_u16() >> 6
        self.duty_u16(int(value) << 6)
        return None

    def deinit(self) -> None:
        _room_temp()
        _duty.pop(self.id, None)


class WDT:
    """Armed once, never stopped: the bridge resets the board when a feed is ``timeout`` late."""

    def __init__(self, id=0, timeout=5000) -> None:  # type: ignore[no-untyped-def]
        self.timeout = timeout
        self.feed()

    def feed(self) -> None:
        _write_ctl("wdt %d" % (_now_ms() + self.timeout))


def _write_ctl(text: str) -> None:
    if _ctl is not None:
        _ctl.seek(0)
        _ctl.write(text.encode() + b" " * (40 - len(text)))
        _ctl.flush()


def reset() -> None:
    raise HardReset()


def soft_reset() -> None:
    raise SystemExit()


def reset_cause() -> int:
    return _cause


def unique_id() -> bytes:
    return bytes.fromhex(_wiring.get("uid", "7662")) if hasattr(bytes, "fromhex") else b"vb"


def freq(value=None):  # type: ignore[no-untyped-def]
    return 240000000 if value is None else None


def idle() -> None:
    time.sleep_ms(1)  # type: ignore[attr-defined]


def disable_irq() -> int:
    return 0


def enable_irq(state=0) -> None:  # type: ignore[no-untyped-def]
    return None


def room_c() -> float:
    """The true room temperature (a test hook, not part of ``machine``)."""
    return _room_temp()


class OneWire:
    """A 1-Wire bus with one DS18B20 on it, answering Skip ROM / Convert T / Read Scratchpad."""

    def __init__(self, pin) -> None:  # type: ignore[no-untyped-def]
        self.id = _pin_number(pin)
        self._out = b""
        self._temp = 85.0

    def reset(self, required=False) -> bool:  # type: ignore[no-untyped-def]
        return str(self.id) in _wiring.get("onewire", [])

    def select_rom(self, rom) -> None:  # type: ignore[no-untyped-def]
        return None

    def writebyte(self, value: int) -> None:
        if value == 0x44:
            self._temp = _room_temp()
        elif value == 0xBE:
            raw = int(self._temp * 16) & 0xFFFF
            pad = bytearray([raw & 0xFF, raw >> 8, 0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
            self._out = bytes(pad) + bytes([_crc8(pad)])

    def write(self, buf) -> None:  # type: ignore[no-untyped-def]
        for b in buf:
            self.writebyte(b)

    def readinto(self, buf) -> None:  # type: ignore[no-untyped-def]
        n = len(buf)
        buf[:n] = (self._out + b"\xff" * n)[:n]
        self._out = self._out[n:]

    def readbyte(self) -> int:
        b = bytearray(1)
        self.readinto(b)
        return b[0]

    def scan(self) -> list:
        return [b"\x28vboard\x00"] if self.reset() else []


def _crc8(data) -> int:  # type: ignore[no-untyped-def]
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


class _Module:
    pass


def install(wiring_path: str, ctl_path: str, cause: int) -> None:
    """Load the wiring, open the host-side files (before ``/`` is remounted) and become ``machine``."""
    global _wiring, _room, _ctl, _cause, BOARD_NAME, CHIP
    with open(wiring_path) as f:
        _wiring = json.load(f)
    BOARD_NAME = _wiring.get("name", BOARD_NAME)
    CHIP = _wiring.get("chip", CHIP)
    _cause = cause
    _ctl = open(ctl_path, "wb")
    room_path = _wiring.get("room_path")
    if room_path:
        try:
            state = open(room_path, "r+b")
        except OSError:
            state = open(room_path, "w+b")
        _room = Room(_wiring.get("room", {}), state)
    me = sys.modules[__name__]
    sys.modules["machine"] = me
    onewire = _Module()
    onewire.OneWire = OneWire  # type: ignore[attr-defined]
    sys.modules["onewire"] = onewire


def ready() -> None:
    _write_ctl("up")
