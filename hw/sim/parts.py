"""Simulated parts wired to a ``SimWorld``: a thermometer and a relay, with fault knobs.

Thermometer faults: ``stuck`` (the reading taken when the fault began, the
exact same float every time), ``nan``, ``out_of_range`` (the fault's value,
default 150.0) and ``disconnected`` (``None``). Relay faults: ``stuck_off`` and
``stuck_on`` act on the physical load only; ``on`` still shows the command and
``sensed_on`` the truth, the way a relay with a feedback contact would.
"""

from hw.interfaces import Switch, TempSensor
from hw.sim.faults import RELAY_FAULTS, THERMOMETER_FAULTS

_OUT_OF_RANGE_C = 150.0


class SimThermometer(TempSensor):
    FAULT_KINDS = THERMOMETER_FAULTS

    def __init__(self, world, name: str, noise_c: float = 0.05, resolution_c: float = 0.0) -> None:  # type: ignore[no-untyped-def]
        self._world = world
        self.name = name
        self.noise_c = float(noise_c)
        self.resolution_c = float(resolution_c)
        self.read_count = 0
        self._stuck_serial: int | None = None
        self._stuck_c = 0.0
        world.register_part(name, THERMOMETER_FAULTS)

    def read_c(self) -> float | None:
        world = self._world
        now = world.clock.now_ms()
        self.read_count += 1
        fault = world.fault_record(self.name, now)
        if fault is None:
            world.advance_to(now)
            return self._sample()
        kind = fault[0]
        if kind == "stuck":
            if fault[3] != self._stuck_serial:
                # Freeze what the sensor saw at the fault's start (or now, if the
                # room has already moved past it: physics cannot go back).
                world.advance_to(fault[2])
                self._stuck_c = self._sample()
                self._stuck_serial = fault[3]
            return self._stuck_c
        if kind == "nan":
            return float("nan")
        if kind == "out_of_range":
            return float(fault[1]) if fault[1] is not None else _OUT_OF_RANGE_C
        if kind == "disconnected":
            return None
        world.advance_to(now)
        return self._sample()

    def _sample(self) -> float:
        temp = self._world.room.temp_c
        if self.noise_c > 0:
            temp += self._world.rand.gauss(0.0, self.noise_c)
        res = self.resolution_c
        if res > 0:
            temp = round(temp / res) * res
        return temp


class SimRelay(Switch):
    FAULT_KINDS = RELAY_FAULTS

    def __init__(self, world, name: str, load: str) -> None:  # type: ignore[no-untyped-def]
        world.room.power_w(load)  # raises ConfigError naming the known loads
        self._world = world
        self.name = name
        self.load = load
        self.on = False
        self.switch_count = 0
        world.register_relay(self)

    def set(self, on: bool) -> None:
        world = self._world
        now = world.clock.now_ms()
        world.advance_to(now)  # physics up to the switching moment runs with the old state
        on = bool(on)
        if on != self.on:
            self.switch_count += 1
        self.on = on
        world.room.set_load(self.load, self.physical_at(now))

    @property
    def sensed_on(self) -> bool:  # type: ignore[override]
        return self.physical_at(self._world.clock.now_ms())

    def physical_at(self, t_ms: int) -> bool:
        """Whether the load really is on at ``t_ms`` given the command and any fault."""
        fault = self._world.fault_record(self.name, t_ms)
        if fault is not None:
            if fault[0] == "stuck_on":
                return True
            if fault[0] == "stuck_off":
                return False
        return self.on
