"""A bed's pure control loop on a fake clock with a tiny plant, for the envelope tests.

It wires ``bed_envelope`` and ``bed`` the way ``device.apps.bed`` does (requests through
``admit``, then ``side_limit``, ``side_step``, ``base_guard``, ``motor_direction``), with
no store, no asyncio and integer milliseconds, so it runs under MicroPython too.
Fault knobs: ``temp_fault[side]`` (a raw reading to return instead of the pad's),
``pos_fault[section]`` (``"none"`` or ``"stuck"``), ``stalled`` (sections whose motor does not move).
"""

from device.apps.bed_settings import SETTINGS_SPEC
from device.core import bed as law
from device.core import bed_envelope as rules
from device.schema import validate

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN


def settings(**overrides):  # type: ignore[no-untyped-def]
    return validate(SETTINGS_SPEC, overrides, "apps.bed")


class BedLoop:
    def __init__(self, **overrides) -> None:  # type: ignore[no-untyped-def]
        self.s = settings(**overrides)
        self.now = 0
        self.env = rules.Envelope(0)
        self.sides = {}
        self.temps = {}
        self.setpoints = {}
        self.effective = {}
        for side in law.SIDES:
            self.sides[side] = law.SideState(0)
            self.temps[side] = 27.0
            self.setpoints[side] = 27.0
            self.effective[side] = 27.0
        self.targets = {"head": 0.0, "foot": 0.0}
        self.pos = {"head": 0.0, "foot": 0.0}
        self.dirs = {"head": 0, "foot": 0}
        self.stalled: list = []
        self.pos_fault: dict = {}
        self.temp_fault: dict = {}
        self._stuck: dict = {}
        self.events: list = []
        self.up_after_timeout = 0  # ticks a motor was driven up while the base had to go flat
        self.heat_c_s = 0.01  # pad heating rate; a strong heater makes the max_c cut do the work

    def request(self, source: str, target: str, value=None):  # type: ignore[no-untyped-def]
        admitted, note = rules.admit(self.s, self.env, source, target, value, self.now)
        if admitted is None:
            return None, note
        if target == "base.stop":
            for name in law.SECTIONS:
                known = self.env.sections[name].position
                self.targets[name] = known if known is not None else self.targets[name]
        elif target.startswith("base."):
            self.targets[target[5:]] = admitted
        else:
            self.setpoints[target[: target.index(".")]] = admitted
        return admitted, note

    def tick(self) -> None:
        s = self.s
        for side in law.SIDES:
            sp, event = rules.side_limit(s, self.env, side, self.setpoints[side], self.now)
            if event:
                self.setpoints[side] = sp
                self.events.append(event)
            self.effective[side] = sp
            reading = self.temp_fault.get(side, self.temps[side])
            law.side_step(s, self.sides[side], reading, sp, self.now)
        readings = {}
        for name in law.SECTIONS:
            fault = self.pos_fault.get(name)
            if fault == "none":
                readings[name] = None
            elif fault == "stuck":
                readings[name] = self._stuck.setdefault(name, self.pos[name])
            else:
                readings[name] = self.pos[name]
        overrides, events = rules.base_guard(s, self.env, readings, self.dirs, self.targets, self.now)
        self.events += events
        for name in law.SECTIONS:
            how = overrides.get(name)
            if how == "stop":
                direction = 0
            elif how == "down":
                direction = -1
            else:
                position = rules.valid_position(s, readings[name])
                direction = law.motor_direction(s, position, self.targets[name], self.dirs[name])
            if direction > 0 and self.env.flatten is not None:
                self.up_after_timeout += 1
            self.dirs[name] = direction

    def plant(self, ms: int) -> None:
        for side in law.SIDES:
            st = self.sides[side]
            drive = (self.heat_c_s if st.heat else 0.0) - (0.01 if st.cool else 0.0)
            self.temps[side] += (drive + (24.0 - self.temps[side]) / 1800.0) * ms / 1000.0
        for name in law.SECTIONS:
            if name not in self.stalled:
                moved = self.pos[name] + self.dirs[name] * 2.0 * ms / 1000.0
                self.pos[name] = min(100.0, max(0.0, moved))
        self.now += ms

    def run(self, ms: int, step: int = SEC) -> None:
        end = self.now + ms
        while self.now < end:
            self.tick()
            self.plant(step)
