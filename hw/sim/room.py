"""A lumped thermal model of one room: ``C dT/dt = UA (T_out - T) + gain + sum(load powers)``.

Time moves lazily: nothing happens until someone calls ``advance_to(now_ms)``,
which integrates from the last time in sub-steps of at most 10 s. Each sub-step
uses the exact exponential solution with the outside temperature taken at the
sub-step's middle, so any step length is stable and one big jump lands where
many small ones would. Load states are constant between two calls: advance to
the moment of a switch before changing a load (``SimWorld`` does this).
"""

import math

from device.compat import const
from device.errors import ConfigError

_MAX_STEP_MS = const(10000)


class Room:
    def __init__(
        self,
        clock,  # type: ignore[no-untyped-def]
        outside,  # type: ignore[no-untyped-def]
        *,
        initial_c: float = 18.0,
        thermal_mass_j_per_k: float = 2.0e6,
        loss_w_per_k: float = 100.0,
        internal_gain_w: float = 100.0,
        start_day_ms: int = 0,
    ) -> None:
        if not thermal_mass_j_per_k > 0:
            raise ConfigError("sim.room.thermal_mass_j_per_k", "must be > 0 (J/K), got %r" % (thermal_mass_j_per_k,))
        if not loss_w_per_k >= 0:
            raise ConfigError("sim.room.loss_w_per_k", "must be >= 0 (W/K), got %r" % (loss_w_per_k,))
        self.clock = clock
        self.outside = outside
        self.thermal_mass_j_per_k = float(thermal_mass_j_per_k)
        self.loss_w_per_k = float(loss_w_per_k)
        self.internal_gain_w = float(internal_gain_w)
        self.start_day_ms = int(start_day_ms)
        self.temp_c = float(initial_c)
        self.min_c = self.temp_c
        self.max_c = self.temp_c
        self.last_ms = clock.now_ms()
        self._power_w: dict = {}
        self._on: dict = {}
        self._on_ms: dict = {}
        self._heat_w = self.internal_gain_w

    # -- loads ---------------------------------------------------------------

    def add_load(self, name: str, power_w: float) -> None:
        """A load that adds ``power_w`` watts of heat while on (negative: a cooler). Starts off."""
        self._power_w[name] = float(power_w)
        self._on[name] = False
        self._on_ms.setdefault(name, 0)
        self._update_heat()

    def load_names(self) -> list:
        return sorted(self._power_w)

    def power_w(self, name: str) -> float:
        self._check(name)
        return self._power_w[name]

    def set_load(self, name: str, on: bool) -> None:
        """Switch a load. Call ``advance_to`` up to the switching moment first."""
        self._check(name)
        self._on[name] = bool(on)
        self._update_heat()

    def load_on(self, name: str) -> bool:
        self._check(name)
        return self._on[name]

    def load_on_ms(self, name: str) -> int:
        """How long the load has been on, up to the last ``advance_to``."""
        self._check(name)
        return self._on_ms[name]

    def energy_j(self, name: str) -> float:
        """Heat the load has moved (J, a magnitude: a cooler's is positive too)."""
        self._check(name)
        return abs(self._power_w[name]) * self._on_ms[name] / 1000.0

    def heat_w(self) -> float:
        """Internal gain plus every load that is on now."""
        return self._heat_w

    # -- physics -------------------------------------------------------------

    def outside_c(self, now_ms: int) -> float:
        return self.outside.temp_c(self.start_day_ms + now_ms)

    def equilibrium_c(self, outside_c: float) -> float:
        """Where the room would settle with this outside temperature and the current loads."""
        if self.loss_w_per_k <= 0:
            if self._heat_w == 0:
                return outside_c
            return float("inf") if self._heat_w > 0 else float("-inf")
        return outside_c + self._heat_w / self.loss_w_per_k

    def advance_to(self, now_ms: int) -> None:
        """Integrate up to ``now_ms``. Times before the last one are ignored (time never goes back)."""
        start = self.last_ms
        if now_ms <= start:
            return
        ua = self.loss_w_per_k
        mass = self.thermal_mass_j_per_k
        heat = self._heat_w
        temp = self.temp_c
        low = self.min_c
        high = self.max_c
        t = start
        while t < now_ms:
            step = now_ms - t
            step = min(step, _MAX_STEP_MS)
            dt_s = step / 1000.0
            if ua > 0:
                settle = self.outside_c(t + step // 2) + heat / ua
                temp = settle + (temp - settle) * math.exp(-ua * dt_s / mass)
            else:
                temp += heat * dt_s / mass
            low = min(low, temp)
            high = max(high, temp)
            t += step
        self.temp_c = temp
        self.min_c = low
        self.max_c = high
        self.last_ms = now_ms
        elapsed = now_ms - start
        on = self._on
        for name in on:
            if on[name]:
                self._on_ms[name] += elapsed

    def advance_to_now(self) -> float:
        """Advance to the clock's now; return the true temperature."""
        self.advance_to(self.clock.now_ms())
        return self.temp_c

    def _update_heat(self) -> None:
        heat = self.internal_gain_w
        for name in sorted(self._on):
            if self._on[name]:
                heat += self._power_w[name]
        self._heat_w = heat

    def _check(self, name: str) -> None:
        if name not in self._power_w:
            known = ", ".join(self.load_names()) or "none"
            raise ConfigError("sim.loads." + name, "no such load in the room (known: %s)" % known)
