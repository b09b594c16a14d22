"""The fleet's device log: each kind of line shown once, the repeats counted.

A fleet of N devices living through one fault logs the same line N times
(at the 15 h mark of us-east-1-2025 every device says its endpoint "is not
our broker"). ``FleetLog`` is a ``device.log`` sink for the simulator: the
first line of each kind goes to the terminal as it happens, the rest are
only counted, and leaving the ``with`` block prints one line per repeated
kind with its count. A *kind* is the line with every run of digits taken
as the same (device ids, addresses, times). ``brickproof run`` (one device)
keeps the plain sink and shows every line.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any

from device import log

_DIGITS = re.compile(r"\d+")
_STAMP = re.compile(r"^\d+ ")  # device.log's clock stamp, when one is set
SHOWN_KINDS = 50  # past this many kinds a run is broken anyway: count them, print no more


class FleetLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def __enter__(self) -> FleetLog:
        log.set_sink(self.write)
        return self

    def __exit__(self, *exc: object) -> None:
        log.set_sink(None)
        for line in self.summary_lines():
            self._show(line)

    def write(self, line: str) -> None:
        kind = _DIGITS.sub("#", _STAMP.sub("", line))
        seen = self.counts.get(kind, 0)
        self.counts[kind] = seen + 1
        if seen == 0 and len(self.first) < SHOWN_KINDS:
            self.first[kind] = line
            self._show(line)

    def repeats(self) -> dict[str, int]:
        """``{first line of a kind: how many lines of that kind}``, for metrics.json."""
        return {self.first.get(kind, kind): n for kind, n in sorted(self.counts.items())}

    def summary_lines(self) -> list[str]:
        out = []
        for kind, n in sorted(self.counts.items()):
            if n > 1:
                first = self.first.get(kind, kind)
                out.append("log: %d lines like %r (the first shown above, the rest counted)" % (n, first))
        return out

    def _show(self, line: str) -> None:
        stream: Any = self.stream if self.stream is not None else sys.stderr
        tty = getattr(stream, "isatty", lambda: False)()
        stream.write(("\r\x1b[K" if tty else "") + line + "\n")  # on a terminal: over the progress bar
        stream.flush()
