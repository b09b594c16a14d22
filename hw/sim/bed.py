"""Simulated smart bed: per side a water pad with a heater and a cooler, a base with motors.

Each side's pad follows ``dT/dt = (ambient - T) / tau + heat_rate * heat - cool_rate * cool``,
stepped exactly (exponential) between switchings, like the room model. Each base section
(head, foot) has a motor moving at ``speed_pct_s`` between end stops at 0 and ``max_pct``
and a position sensor. Models live on the ``SimWorld`` (``bed_models(world)``) and move
lazily: every part call first advances its model to the clock's now.

Fault knobs (``world.inject(part, kind)``): pad thermometers take the thermometer faults
(``stuck``, ``nan``, ``out_of_range``, ``disconnected``); a motor ``stall`` (commanded but not
moving); a position sensor ``disconnected`` (``None``) or ``stuck``. ``SimButtons.press``
queues a button press the way a test or a person in the room would.
"""

import math

from hw.interfaces import Switch, TempSensor
from hw.interfaces_extra import Buttons, Motor, PositionSensor

PAD_SENSOR_FAULTS = ("stuck", "nan", "out_of_range", "disconnected")
MOTOR_FAULTS = ("stall",)
POSITION_FAULTS = ("disconnected", "stuck")


def bed_models(world) -> dict:  # type: ignore[no-untyped-def]
    """The world's bed models by name (``pad.left``, ``section.head``), created on first use."""
    models = getattr(world, "bed_models", None)
    if models is None:
        models = {}
        world.bed_models = models
    return models  # type: ignore[no-any-return]


class Pad:
    """One side's water pad temperature."""

    def __init__(self, clock, initial_c: float, ambient_c: float, tau_s: float, heat_c_s: float, cool_c_s: float):  # type: ignore[no-untyped-def]
        self.clock = clock
        self.temp_c = float(initial_c)
        self.ambient_c = float(ambient_c)
        self.tau_ms = float(tau_s) * 1000.0
        self.heat_c_ms = float(heat_c_s) / 1000.0
        self.cool_c_ms = float(cool_c_s) / 1000.0
        self.heat = False
        self.cool = False
        self.last_ms = clock.now_ms()
        self.max_c = self.temp_c
        self.min_c = self.temp_c

    def advance(self) -> None:
        now = self.clock.now_ms()
        dt = now - self.last_ms
        if dt <= 0:
            return
        drive = (self.heat_c_ms if self.heat else 0.0) - (self.cool_c_ms if self.cool else 0.0)
        eq = self.ambient_c + drive * self.tau_ms
        t0 = self.temp_c
        self.temp_c = eq + (t0 - eq) * math.exp(-dt / self.tau_ms)
        # The path is monotonic between switchings: the ends bound it.
        self.max_c = max(self.max_c, self.temp_c, t0)
        self.min_c = min(self.min_c, self.temp_c, t0)
        self.last_ms = now


class Section:
    """One base section: a motor between end stops, and where it is."""

    def __init__(self, clock, speed_pct_s: float, max_pct: float) -> None:  # type: ignore[no-untyped-def]
        self.clock = clock
        self.position = 0.0
        self.speed_pct_ms = float(speed_pct_s) / 1000.0
        self.max_pct = float(max_pct)
        self.direction = 0
        self.stalled = False
        self.last_ms = clock.now_ms()
        self.raised_since_ms: int | None = None  # the truth, for tests: since when off flat
        self.longest_raised_ms = 0

    def advance(self) -> None:
        now = self.clock.now_ms()
        dt = now - self.last_ms
        if dt <= 0:
            return
        start = self.last_ms
        if self.direction and not self.stalled:
            moved = self.position + self.direction * self.speed_pct_ms * dt
            self.position = min(self.max_pct, max(0.0, moved))
        self.last_ms = now
        if self.position > 0.0:
            if self.raised_since_ms is None:
                self.raised_since_ms = start
            self.longest_raised_ms = max(self.longest_raised_ms, now - self.raised_since_ms)
        else:
            self.raised_since_ms = None


def _pad(world, side: str, options: dict) -> Pad:  # type: ignore[no-untyped-def]
    models = bed_models(world)
    key = "pad." + side
    if key not in models:
        models[key] = Pad(
            world.clock,
            options.get("initial_c", 24.0),
            options.get("ambient_c", 24.0),
            options.get("tau_s", 1800.0),
            options.get("heat_c_s", 0.01),
            options.get("cool_c_s", 0.01),
        )
    return models[key]  # type: ignore[no-any-return]


def _section(world, name: str, options: dict) -> Section:  # type: ignore[no-untyped-def]
    models = bed_models(world)
    key = "section." + name
    if key not in models:
        models[key] = Section(world.clock, options.get("speed_pct_s", 2.0), options.get("max_pct", 100.0))
    return models[key]  # type: ignore[no-any-return]


class SimPadThermometer(TempSensor):
    def __init__(self, world, name: str, side: str, options: dict) -> None:  # type: ignore[no-untyped-def]
        self._world = world
        self.name = name
        self.pad = _pad(world, side, options)
        self._stuck: tuple | None = None  # (fault serial, value)
        world.register_part(name, PAD_SENSOR_FAULTS)

    def read_c(self) -> float | None:
        self.pad.advance()
        fault = self._world.fault_record(self.name)
        if fault is None:
            return self.pad.temp_c
        kind = fault[0]
        if kind == "stuck":
            if self._stuck is None or self._stuck[0] != fault[3]:
                self._stuck = (fault[3], self.pad.temp_c)
            return self._stuck[1]  # type: ignore[no-any-return]
        if kind == "nan":
            return float("nan")
        if kind == "out_of_range":
            return float(fault[1]) if fault[1] is not None else 150.0
        return None  # disconnected


class SimPadSwitch(Switch):
    """A side's heater or cooler (``role``)."""

    def __init__(self, world, name: str, side: str, role: str) -> None:  # type: ignore[no-untyped-def]
        self.pad = _pad(world, side, {})
        self.name = name
        self.role = role
        self.on = False
        self.switch_count = 0
        world.register_part(name, ())

    def set(self, on: bool) -> None:
        self.pad.advance()  # physics up to now runs with the old state
        on = bool(on)
        if on != self.on:
            self.switch_count += 1
        self.on = on
        if self.role == "heat":
            self.pad.heat = on
        else:
            self.pad.cool = on


class SimBaseMotor(Motor):
    def __init__(self, world, name: str, section: str, options: dict) -> None:  # type: ignore[no-untyped-def]
        self._world = world
        self.name = name
        self.section = _section(world, section, options)
        self.direction = 0
        self.commands = 0
        world.register_part(name, MOTOR_FAULTS)

    def drive(self, direction: int) -> None:
        sec = self.section
        self._sync_stall()
        sec.advance()
        direction = 1 if direction > 0 else (-1 if direction < 0 else 0)
        if direction != self.direction:
            self.commands += 1
        self.direction = direction
        sec.direction = direction

    def _sync_stall(self) -> None:
        # A stall injected by hand starts now; physics up to now ran without it.
        stalled = self._world.fault_record(self.name) is not None
        if stalled != self.section.stalled:
            self.section.advance()
            self.section.stalled = stalled


class SimPosition(PositionSensor):
    def __init__(self, world, name: str, section: str, motor_name: str) -> None:  # type: ignore[no-untyped-def]
        self._world = world
        self.name = name
        self.section = _section(world, section, {})
        self.motor_name = motor_name
        self._stuck: tuple | None = None
        world.register_part(name, POSITION_FAULTS)

    def read_pct(self) -> float | None:
        sec = self.section
        stalled = self._world.fault_record(self.motor_name) is not None
        if stalled != sec.stalled:
            sec.advance()
            sec.stalled = stalled
        sec.advance()
        fault = self._world.fault_record(self.name)
        if fault is None:
            return sec.position
        if fault[0] == "stuck":
            if self._stuck is None or self._stuck[0] != fault[3]:
                self._stuck = (fault[3], sec.position)
            return self._stuck[1]  # type: ignore[no-any-return]
        return None


class SimButtons(Buttons):
    """Buttons a test (or the simulation) presses: ``press(name)``; unknown names are kept too."""

    def __init__(self, world, name: str) -> None:  # type: ignore[no-untyped-def]
        self.name = name
        self._queue: list = []
        self.pressed = 0
        world.register_part(name, ())

    def press(self, button: str) -> None:
        self._queue.append(button)
        self.pressed += 1

    def take(self) -> list:
        out = self._queue
        self._queue = []
        return out
