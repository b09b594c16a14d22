"""A DC motor on an H-bridge (two direction pins) with an end stop at each end of travel.

For the bed's incline actuator. The motor never drives into a closed end
stop: ``drive()`` refuses the move and ``poll()`` stops a running motor the
moment the end stop in its direction closes. Both bridge inputs are never
high together (that shorts some bridges); stop is both low (coast).
"""

UP = 1
DOWN = -1
STOP = 0


class EndStopMotor:
    def __init__(self, in_up, in_down, stop_up=None, stop_down=None) -> None:  # type: ignore[no-untyped-def]
        """``in_up``/``in_down``: ``Pin``-like outputs; ``stop_up``/``stop_down``: ``DigitalIn``-like (or None)."""
        self.in_up = in_up
        self.in_down = in_down
        self.stop_up = stop_up
        self.stop_down = stop_down
        self.direction = STOP
        self.end_stop_hits = 0
        self._write(STOP)

    def _write(self, direction: int) -> None:
        # Lower the active side first so the two inputs are never high together.
        if direction != UP:
            self.in_up.value(0)
        if direction != DOWN:
            self.in_down.value(0)
        if direction == UP:
            self.in_up.value(1)
        elif direction == DOWN:
            self.in_down.value(1)
        self.direction = direction

    def at_end(self, direction: int) -> bool:
        stop = self.stop_up if direction == UP else self.stop_down if direction == DOWN else None
        return stop is not None and bool(stop.value())

    def drive(self, direction: int) -> bool:
        """Start moving UP or DOWN (or STOP); False if that end stop is already closed."""
        if direction not in (UP, DOWN, STOP):
            raise ValueError("direction must be UP (1), DOWN (-1) or STOP (0)")
        if direction != STOP and self.at_end(direction):
            self._write(STOP)
            return False
        self._write(direction)
        return True

    def stop(self) -> None:
        self._write(STOP)

    def poll(self) -> bool:
        """Call often while moving; stops at an end stop. True if it stopped the motor now."""
        if self.direction != STOP and self.at_end(self.direction):
            self._write(STOP)
            self.end_stop_hits += 1
            return True
        return False
