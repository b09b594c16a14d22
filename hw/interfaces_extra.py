"""More part interfaces (duck-typed, as in ``hw/interfaces.py``): the status LED, the bed's motor,
position sensor and buttons, the camera.

Kept apart from ``hw/interfaces.py`` so that a thermostat-only board, on a 128 KiB heap, does
not load classes it never uses.
"""


class StatusIndicator:
    """Shows the device's degraded-mode status to someone in the room (LED, display).

    ``show(mode)`` with ``mode`` one of ``"cloud_ok"``, ``"local_only"``, ``"fault"``
    (see ``device.core.health``); ``mode`` is the last shown. Drivers choose how
    (colour, blink pattern, text); showing must not block or raise on a bad LED.
    """

    mode = "local_only"

    def show(self, mode: str) -> None:
        raise NotImplementedError


class Motor:
    """A reversible motor (an adjustable bed base section).

    ``drive(direction)``: ``1`` up, ``-1`` down, ``0`` stop; ``direction`` is the
    last command. End stops cut the motor in hardware: driving past one is harmless.
    """

    direction = 0

    def drive(self, direction: int) -> None:
        raise NotImplementedError


class PositionSensor:
    """Reads a position in percent of travel (0 = flat); ``None`` when it does not answer."""

    def read_pct(self) -> float | None:
        raise NotImplementedError


class Buttons:
    """Local push buttons. ``take()`` returns the names pressed since the last call, oldest first.

    Presses are queued by the driver (an IRQ on a board) so none is lost between two control ticks.
    """

    def take(self) -> list:
        raise NotImplementedError


class Camera:
    """Takes greyscale frames of ``width`` x ``height`` pixels, one byte each, row by row.

    ``capture_into(buf)`` fills a preallocated ``bytearray(width * height)`` (no
    allocation per frame) and returns the capture time in the device clock's ms;
    it raises ``OSError`` when the camera does not answer.
    """

    width = 0
    height = 0

    def capture_into(self, buf: bytearray) -> int:
        raise NotImplementedError
