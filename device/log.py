"""A tiny logger: ``get_logger(name)`` with %-style arguments and one sink.

The sink is a function taking one finished line; the default writes to
stderr. Hosts and tests replace it with ``set_sink``.
"""

import sys

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40

_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARN", ERROR: "ERROR"}


def _stderr_sink(line: str) -> None:
    sys.stderr.write(line + "\n")


_state = {"level": WARNING, "sink": _stderr_sink, "clock": None}
_loggers: dict = {}


def set_level(level: int) -> None:
    _state["level"] = level


def set_sink(sink) -> None:  # type: ignore[no-untyped-def]
    """``sink(line)`` receives every emitted line; ``None`` restores stderr."""
    _state["sink"] = sink if sink is not None else _stderr_sink


def set_clock(clock) -> None:  # type: ignore[no-untyped-def]
    """Stamp lines with ``clock.now_ms()`` (simulated time in a simulation)."""
    _state["clock"] = clock


class Logger:
    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, level: int, msg: str, args: tuple) -> None:
        if level < _state["level"]:  # type: ignore[operator]
            return
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = msg + " " + repr(args)
        clock = _state["clock"]
        stamp = "%d " % clock.now_ms() if clock is not None else ""  # type: ignore[attr-defined]
        _state["sink"](stamp + _NAMES.get(level, str(level)) + " " + self.name + ": " + msg)  # type: ignore[operator]

    def debug(self, msg: str, *args: object) -> None:
        self._emit(DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        self._emit(INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        self._emit(WARNING, msg, args)

    def error(self, msg: str, *args: object) -> None:
        self._emit(ERROR, msg, args)


def get_logger(name: str) -> Logger:
    logger = _loggers.get(name)
    if logger is None:
        logger = Logger(name)
        _loggers[name] = logger
    return logger
