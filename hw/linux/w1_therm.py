"""DS18B20 through the kernel's 1-Wire driver (``dtoverlay=w1-gpio``), read without blocking.

Reading a sensor's ``temperature`` file makes the kernel run a conversion and
blocks for up to 750 ms. With ``therm_bulk_read`` (kernels from 5.10) the
driver instead triggers a conversion on the whole bus, and reads the result
once the conversion had its time: ``read_c()`` returns the last completed
conversion and never waits, like ``hw.mp.ds18b20``. ``None``: no sensor, a
read error, or the kernel's ``85000``/CRC failures (an empty file).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from hw.interfaces import TempSensor

CONVERT_MS = 750


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class W1Therm(TempSensor):
    def __init__(
        self, device_id: str | None = None, root: str = "/sys", now_ms: Callable[[], int] | None = None
    ) -> None:
        """``device_id`` ``28-xxxxxxxxxxxx``; None: the only DS18B20 on the bus."""
        self.devices = os.path.join(root, "bus", "w1", "devices")
        self.device_id = device_id
        self._now_ms = now_ms if now_ms is not None else _now_ms
        self._started_ms: int | None = None
        self._bulk: str | None = None
        self.last_c: float | None = None
        self.errors = 0

    def _device_dir(self) -> str | None:
        if self.device_id is not None:
            return os.path.join(self.devices, self.device_id)
        try:
            found = sorted(n for n in os.listdir(self.devices) if n.startswith("28-"))
        except OSError:
            return None
        return os.path.join(self.devices, found[0]) if len(found) == 1 else None

    def read_c(self) -> float | None:
        now = self._now_ms()
        if self._started_ms is not None and now - self._started_ms >= CONVERT_MS:
            self._started_ms = None
            self.last_c = self._read()
        if self._started_ms is None:
            if self._trigger():
                self._started_ms = now
            else:
                self.last_c = None
        return self.last_c

    def _trigger(self) -> bool:
        device = self._device_dir()
        if device is None:
            self.errors += 1
            return False
        # The bus master's bulk-read file; the device dir links to its master.
        bulk = os.path.join(os.path.dirname(os.path.realpath(device)), "therm_bulk_read")
        try:
            with open(bulk, "w") as f:
                f.write("trigger")
        except OSError:
            self.errors += 1
            return False
        self._bulk = device
        return True

    def _read(self) -> float | None:
        if self._bulk is None:
            return None
        try:
            with open(os.path.join(self._bulk, "temperature")) as f:
                text = f.read().strip()
            return int(text) / 1000.0
        except (OSError, ValueError):
            self.errors += 1
            return None
