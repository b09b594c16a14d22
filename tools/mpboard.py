"""A MicroPython board on a serial port or ``socket://HOST:PORT``, through mpremote's transport.

Shared by ``brickproof flash`` and ``brickproof hil``. Failures are
``BoardError(code, message)`` with a one-line message: code 2 for a port
that is not there (nothing to talk to), 1 for a board that is there but
fails (does not answer, a full filesystem, a step that fails).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

EXIT_NO_PORT = 2
EXIT_BOARD = 1


class BoardError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_port(port: str, timeout_s: float = 3.0) -> None:
    """Raise ``BoardError(2)`` when ``port`` names nothing: no such device, nothing listening."""
    if port.startswith("socket://"):
        host, sep, num = port[len("socket://") :].rpartition(":")
        if not sep or not num.isdigit():
            raise BoardError(EXIT_NO_PORT, f"bad port {port!r}: expected socket://HOST:PORT")
        try:
            socket.create_connection((host, int(num)), timeout=timeout_s).close()
        except OSError as exc:
            raise BoardError(EXIT_NO_PORT, f"no board at {port}: {exc.strerror or exc}") from None
    elif "://" not in port and not Path(port).exists():
        raise BoardError(EXIT_NO_PORT, f"port {port} not found (no such serial device)")


class Board:
    """An open raw-REPL session: ``exec``/``eval`` code, read and write files, reset."""

    def __init__(self, port: str, timeout_s: float = 10.0) -> None:
        from mpremote.transport import TransportError  # type: ignore[import-untyped]
        from mpremote.transport_serial import SerialTransport  # type: ignore[import-untyped]

        check_port(port)
        self.port = port
        self.timeout_s = timeout_s
        try:
            self.transport: Any = SerialTransport(port, baudrate=115200)
        except Exception as exc:  # serial/socket layers raise many kinds
            raise BoardError(EXIT_NO_PORT, f"cannot open {port}: {exc}") from None
        try:
            self.transport.enter_raw_repl(soft_reset=True, timeout_overall=timeout_s)
        except TransportError:
            self.close()
            raise BoardError(
                EXIT_BOARD, f"board on {port} does not answer (no raw REPL within {timeout_s:g} s)"
            ) from None

    def close(self) -> None:
        try:
            self.transport.close()
        except Exception:  # closing a dead link must not mask the real error
            pass

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, code: str, timeout_s: float | None = None) -> str:
        """Execute ``code`` on the board; its printed output. A board-side exception raises BoardError(1)."""
        from mpremote.transport import TransportError, TransportExecError

        try:
            self.transport.exec_raw_no_follow(code)
            out, err = self.transport.follow(timeout_s or self.timeout_s)
        except TransportExecError as exc:
            raise BoardError(EXIT_BOARD, "board error: " + _last_line(exc.error_output)) from None
        except TransportError as exc:
            raise BoardError(EXIT_BOARD, f"board on {self.port} stopped answering: {exc}") from None
        if err:
            raise BoardError(EXIT_BOARD, "board error: " + _last_line(err.decode(errors="replace")))
        return str(out.decode(errors="replace"))

    def soft_reset(self) -> None:
        """Soft reset into the raw REPL (fresh heap, ``boot.py`` runs, ``main.py`` does not)."""
        from mpremote.transport import TransportError

        try:
            self.transport.enter_raw_repl(soft_reset=True, timeout_overall=self.timeout_s)
        except TransportError:
            raise BoardError(EXIT_BOARD, f"board on {self.port} did not come back from a soft reset") from None

    def reset_and_run(self) -> None:
        """Hard reset (``machine.reset()``): the board boots as at power-on and runs ``main.py``.

        A soft reset would not do: ``main.py`` does not start the device after one
        (it leaves the REPL to ``mpremote``).
        """
        from mpremote.transport import TransportError

        try:
            self.transport.exec_raw_no_follow("import machine\nmachine.reset()")
        except TransportError:
            pass  # the board went down before it acknowledged: it is resetting


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()
