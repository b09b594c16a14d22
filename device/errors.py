"""Brickproof's error tree. Everything the runtime raises on purpose is one of these::

    BrickproofError
     +-- ConfigError          a board file or setting is wrong (names the path)
     +-- StoreError           the local store failed
     |    +-- StoreFullError  the byte budget is spent and the record may not be dropped
     +-- HardwareError        a driver could not talk to its part
     |    +-- SensorError     a sensor gave no usable answer
     +-- TaskError            a supervised task failed for good

Standard exceptions (``OSError``, ``ValueError``) are converted at the edge
with ``raise XError(...) from None``. ``CancelledError`` always propagates.
"""


class BrickproofError(Exception):
    pass


class ConfigError(BrickproofError):
    """A board file or a setting is invalid. ``path`` names where, e.g. ``hw.heater.pin``."""

    def __init__(self, path: str, message: str, source: str = "") -> None:
        self.path = path
        self.message = message
        self.source = source
        where = path if path else "(top)"
        text = where + ": " + message
        if source:
            text = source + ": " + text
        super().__init__(text)


class StoreError(BrickproofError):
    pass


class StoreFullError(StoreError):
    pass


class HardwareError(BrickproofError):
    pass


class SensorError(HardwareError):
    pass


class TaskError(BrickproofError):
    pass
