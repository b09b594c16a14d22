"""Capped exponential backoff for restarts and reconnects (pure: no clock, no I/O).

The n-th delay (n counted from 0 since the last reset) is
``min(cap_ms, base_ms * factor**n)``. With ``jitter=True`` it is "full jitter":
a whole number drawn uniformly from ``[0, that delay]`` with the caller's
``device.rand.Rand``, so a fleet that lost the same broker does not come back
in lock-step.

The attempt count resets only after a run that lasted ``healthy_ms`` or more:
a task that crashes a moment after every restart keeps backing off instead of
hammering at ``base_ms`` forever.
"""

from device.errors import ConfigError


class Backoff:
    def __init__(
        self,
        base_ms: int = 1000,
        cap_ms: int = 60000,
        factor: float = 2,
        jitter: bool = False,
        healthy_ms: int = 30000,
    ) -> None:
        if base_ms <= 0:
            raise ConfigError("backoff.base_ms", "must be > 0, got %r" % (base_ms,))
        if cap_ms < base_ms:
            raise ConfigError("backoff.cap_ms", "must be >= base_ms (%r), got %r" % (base_ms, cap_ms))
        if factor < 1:
            raise ConfigError("backoff.factor", "must be >= 1, got %r" % (factor,))
        if healthy_ms < 0:
            raise ConfigError("backoff.healthy_ms", "must be >= 0, got %r" % (healthy_ms,))
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.factor = factor
        self.jitter = jitter
        self.healthy_ms = healthy_ms
        self.attempts = 0

    def ceiling_ms(self) -> int:
        """The delay the next attempt would get without jitter (does not count an attempt)."""
        delay: float = self.base_ms
        # Multiply step by step and stop at the cap: no huge powers after many attempts.
        for _ in range(self.attempts):
            delay = delay * self.factor
            if delay >= self.cap_ms:
                return self.cap_ms
        return int(min(delay, self.cap_ms))

    def next_delay_ms(self, rand=None) -> int:  # type: ignore[no-untyped-def]
        """Count one attempt and return how long to wait before it, in ms."""
        delay = self.ceiling_ms()
        self.attempts += 1
        if not self.jitter:
            return delay
        if rand is None:
            raise ValueError("Backoff(jitter=True) needs a device.rand.Rand: pass next_delay_ms(rand)")
        return rand.randint(0, delay)

    def record_success(self, ran_ms: int) -> bool:
        """Report that the last attempt ran ``ran_ms``; reset if that was healthy. Returns whether it reset."""
        if ran_ms >= self.healthy_ms:
            self.attempts = 0
            return True
        return False

    def reset(self) -> None:
        self.attempts = 0


def device_phase_ms(device_id: str, spread_ms: int) -> int:
    """A stable offset in ``[0, spread_ms)`` from the device id (32-bit FNV-1a).

    The same id gives the same phase on every boot and interpreter, and a
    fleet's ids spread evenly, so devices coming back from a long outage
    reconnect in their own slot instead of in the same second.
    """
    if spread_ms <= 0:
        return 0
    h = 0x811C9DC5
    for byte in device_id.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % spread_ms


def align_to_phase_ms(now_ms: int, delay_ms: int, phase_ms: int, spread_ms: int) -> int:
    """The smallest delay >= ``delay_ms`` that lands on ``phase_ms`` modulo ``spread_ms``."""
    if spread_ms <= 0:
        return delay_ms
    at = now_ms + delay_ms
    wait = (phase_ms - at) % spread_ms
    return delay_ms + wait
