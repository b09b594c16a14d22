"""A small seeded PRNG (xorshift32) that gives the same numbers on every interpreter.

Simulations and jitter take randomness from ``env.rand`` so a run is
reproducible from its seed on CPython and MicroPython alike.
"""

import math

_MASK32 = 0xFFFFFFFF


class Rand:
    def __init__(self, seed: int = 1) -> None:
        self.seed(seed)

    def seed(self, seed: int) -> None:
        self._state = (seed & _MASK32) or 0x9E3779B9
        self._spare: float | None = None

    def next_u32(self) -> int:
        x = self._state
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        self._state = x
        return x

    def random(self) -> float:
        """A float in [0, 1)."""
        return self.next_u32() / 4294967296.0

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def randint(self, low: int, high: int) -> int:
        """An int in [low, high], both ends included."""
        return low + self.next_u32() % (high - low + 1)

    def gauss(self, mu: float, sigma: float) -> float:
        """Normal deviate (Box-Muller)."""
        spare = self._spare
        if spare is not None:
            self._spare = None
            return mu + sigma * spare
        u1 = 1.0 - self.random()  # (0, 1]: log is defined
        u2 = self.random()
        radius = math.sqrt(-2.0 * math.log(u1))
        self._spare = radius * math.sin(2.0 * math.pi * u2)
        return mu + sigma * radius * math.cos(2.0 * math.pi * u2)
