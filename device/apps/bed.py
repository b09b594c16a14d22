"""The smart bed app: a thin task around ``device.core.bed`` (law) and ``bed_envelope`` (safety).

Each tick: local button presses, each side's schedule, and any request key the cloud or
the LAN changed in the state cache all become requests through ``request``, which runs
the envelope's ``admit`` and keeps the admitted value in the state cache; then the
envelope's time rules and the law drive the pads and the base motors. It awaits only
local things (the clock and the store): the buttons work with no network at all.
"""

from device import compat
from device.apps.bed_requests import KEY_LIMITS, BedRequests, base_key, setpoint_key
from device.core import bed as law
from device.core import bed_envelope as env_rules
from device.errors import StoreError
from device.log import get_logger
from device.tickmeter import TickMeter, run_ticks

_log = get_logger("bed")


def _policies() -> dict:
    # Requests: the owner's last word wins, local or cloud (the envelope limits it either way).
    # Safety limits and schedule book-keeping are the device's: the cloud cannot move them.
    out = {KEY_LIMITS: "device_wins"}
    for side in law.SIDES:
        out[setpoint_key(side)] = "latest_wins"
        out["bed." + side + ".schedule"] = "latest_wins"
        out["bed." + side + ".schedule_applied"] = "device_wins"
    for section in law.SECTIONS:
        out[base_key(section)] = "latest_wins"
    return out


class BedApp(BedRequests):
    name = "bed"
    shadow_policies = _policies()

    def __init__(self, env: object, settings: dict) -> None:
        self.env = env
        self.settings = settings
        hw = env.hw  # type: ignore[attr-defined]
        now = env.clock.now_ms()  # type: ignore[attr-defined]
        self.parts: dict = {}
        for side in law.SIDES:
            for role in ("temp", "heater", "cooler"):
                self.parts[side + "_" + role] = hw.get(side + "_" + role)
        for section in law.SECTIONS:
            for role in ("motor", "position"):
                self.parts[section + "_" + role] = hw.get(section + "_" + role)
        self.buttons = hw.get("buttons")
        self.envelope = env_rules.Envelope(now)
        self.sides: dict = {}
        self.setpoints: dict = {}  # admitted requests
        self.effective: dict = {}  # what the law aims at after the time rules
        self._schedules: dict = {}  # side -> (state version, parsed)
        for side in law.SIDES:
            self.sides[side] = law.SideState(now)
            self.setpoints[side] = settings["default_setpoint_c"]
            self.effective[side] = settings["default_setpoint_c"]
            self._schedules[side] = (-1, [])
        self.targets: dict = {"head": 0.0, "foot": 0.0}
        self.overrides: dict = {}
        self.selected = "left"
        self._seen: dict = {}  # state key -> version already admitted
        self._faults: dict = {}  # what -> fault shown
        self.ticks = 0
        self.first_decision_ms: int | None = None
        self.tick_us_max = 0
        self.tick_us_total = 0
        self.latencies_us: list | None = None  # set to [] to record every tick (benchmarks)
        self.meter: TickMeter | None = None  # made by run(): tick latency and gaps
        self.store_errors = 0
        self.presses = 0
        self._next_telemetry_ms = now
        self.commands = {
            "bed.set_temp": self._cmd_set_temp,
            "bed.set_base": self._cmd_set_base,
            "bed.stop": self._cmd_stop,
        }

    async def setup(self) -> None:
        """Seed defaults where the owner set nothing; publish the limits (device_wins)."""
        store = self.env.store  # type: ignore[attr-defined]
        s = self.settings
        wall = self.env.clock.wall_ms()  # type: ignore[attr-defined]
        seeds: list = [(KEY_LIMITS, {"min_c": s["min_c"], "max_c": s["max_c"], "raised_max_ms": s["raised_max_ms"]})]
        for side in law.SIDES:
            seeds.append((setpoint_key(side), s["default_setpoint_c"]))
            seeds.append(("bed." + side + ".schedule", s[side + "_schedule"]))
        for section in law.SECTIONS:
            seeds.append((base_key(section), 0.0))
        for key, value in seeds:
            entry = await store.get_state(key)
            if entry is None or (key == KEY_LIMITS and entry.value != value):
                await store.put_state(key, value, "local", wall)

    async def run(self) -> None:
        await run_ticks(self, self.settings["tick_ms"])

    # -- control ----------------------------------------------------------------

    async def tick(self) -> None:
        started = compat.perf_us()
        now = self.env.clock.now_ms()  # type: ignore[attr-defined]
        try:
            await self._take_requests(now)
        except StoreError as exc:
            self.store_errors += 1  # control goes on with what was admitted before
            _log.warning("state read failed: %s", exc)
        await self._control_sides(now)
        await self._control_base(now)
        if self.first_decision_ms is None:
            self.first_decision_ms = now
        await self._telemetry(now)
        self.ticks += 1
        spent = compat.perf_diff_us(compat.perf_us(), started)
        self.tick_us_total += spent
        self.tick_us_max = max(self.tick_us_max, spent)
        if self.latencies_us is not None:
            self.latencies_us.append(spent)

    async def _control_sides(self, now: int) -> None:
        s = self.settings
        for side in law.SIDES:
            sp, event = env_rules.side_limit(s, self.envelope, side, self.setpoints[side], now)
            self.effective[side] = sp
            if event is not None:  # the request itself comes back to the bound, so the cloud sees it
                self.setpoints[side] = sp
                await self._keep(setpoint_key(side), sp, "local")
                await self._event({"type": event, "side": side, "setpoint_c": sp}, now)
            try:
                reading = self.parts[side + "_temp"].read_c()
            except (OSError, ValueError):
                reading = None
            st = law.side_step(s, self.sides[side], reading, sp, now)
            self._set(side + "_heater", st.heat)
            self._set(side + "_cooler", st.cool)
            await self._note_fault(side, st.fault, now)

    def _set(self, part_name: str, on: bool) -> None:
        part = self.parts[part_name]
        if part.on != on or self.ticks == 0:
            part.set(on)

    async def _control_base(self, now: int) -> None:
        s = self.settings
        readings: dict = {}
        directions: dict = {}
        for section in law.SECTIONS:
            try:
                readings[section] = self.parts[section + "_position"].read_pct()
            except (OSError, ValueError):
                readings[section] = None
            directions[section] = self.parts[section + "_motor"].direction
        before = dict(self.targets)
        self.overrides, events = env_rules.base_guard(s, self.envelope, readings, directions, self.targets, now)
        for event in events:
            await self._event({"type": "base", "what": event}, now)
        for section in law.SECTIONS:
            if self.targets[section] != before[section]:
                await self._keep(base_key(section), self.targets[section], "local")
            override = self.overrides.get(section)
            if override == "stop":
                direction = 0
            elif override == "down":
                direction = -1
            else:
                position = env_rules.valid_position(s, readings[section])
                direction = law.motor_direction(s, position, self.targets[section], directions[section])
            if direction != directions[section]:
                self.parts[section + "_motor"].drive(direction)
            await self._note_fault(section, self.envelope.sections[section].fault, now)

    async def _note_fault(self, what: str, fault: str | None, now: int) -> None:
        if self._faults.get(what) == fault:
            return
        old = self._faults.get(what)
        self._faults[what] = fault
        if fault is not None:
            await self._event({"type": "fault", "part": what, "fault": fault}, now)
        elif old is not None:
            await self._event({"type": "fault_cleared", "part": what, "fault": old}, now)

    async def _telemetry(self, now: int) -> None:
        if now < self._next_telemetry_ms:
            return
        self._next_telemetry_ms = now + self.settings["telemetry_ms"]
        record: dict = {"health": self.health()}
        for side in law.SIDES:  # compact: a 4 KiB outbox holds a night of these
            st = self.sides[side]
            record[side] = [st.temp_c, self.effective[side], int(st.heat) - int(st.cool)]
        for section in law.SECTIONS:
            record[section] = self.envelope.sections[section].position
        await self._append("telemetry", record, now)

    # -- reports ----------------------------------------------------------------

    def health(self) -> str:
        if self.ticks == 0:
            return "starting"
        for what in sorted(self._faults):
            if self._faults[what] is not None:
                return "fault:%s_%s" % (what, self._faults[what])
        if self.envelope.flatten is not None:
            return "degraded:flatten_" + self.envelope.flatten
        return "degraded:store" if self.store_errors else "ok"

    def status(self) -> dict:
        out: dict = {"health": self.health(), "selected": self.selected, "flatten": self.envelope.flatten}
        for side in law.SIDES:
            st = self.sides[side]
            out[side] = {
                "temp_c": st.temp_c,
                "setpoint_c": self.setpoints[side],
                "effective_c": self.effective[side],
                "heat": st.heat,
                "cool": st.cool,
                "capped": self.envelope.sides[side].capped,
            }
        for section in law.SECTIONS:
            guard = self.envelope.sections[section]
            out[section] = {"position_pct": guard.position, "target_pct": self.targets[section], "fault": guard.fault}
        return out

    def summary(self, now: int) -> dict:
        return {
            "ticks": self.ticks,
            "tick_us_mean": self.tick_us_total // self.ticks if self.ticks else 0,
            "tick_us_max": self.tick_us_max,
            "presses": self.presses,
            "requests_limited": self.envelope.limited,
            "requests_rejected": self.envelope.rejected,
            "store_errors": self.store_errors,
            "health": self.health(),
        }
