"""The thermostat app: a thin task around the pure control law in ``device.core.thermostat``.

Each tick reads the sensor and the local state cache (mode, setpoints,
schedule), runs the control law, drives the relays and queues what the cloud
should hear later (events at once, telemetry every ``telemetry_ms``) in the
store's outbox. It awaits only local things: the clock and the store.
"""

from device import compat
from device.core import schedule as sched
from device.core import thermostat as law
from device.errors import BrickproofError, ConfigError, StoreError
from device.log import get_logger
from device.tickmeter import TickMeter, run_ticks

_log = get_logger("thermostat")

# State keys this app reads (the owner, the LAN API or the cloud write them).
KEY_MODE = "thermostat.mode"
KEY_SETPOINT = "thermostat.setpoint_c"
KEY_COOL_SETPOINT = "thermostat.cool_setpoint_c"
KEY_SCHEDULE = "thermostat.schedule"
KEY_SCHEDULE_APPLIED = "thermostat.schedule_applied"


def _on_off(on: bool) -> str:
    return "on" if on else "off"


class SwitchWatch:
    """Independent check of compressor protection, from the commands actually sent."""

    def __init__(self, min_on_ms: int, min_off_ms: int) -> None:
        self.min_on_ms = min_on_ms
        self.min_off_ms = min_off_ms
        self.changed_ms: int | None = None
        self.on = False
        self.switches = 0
        self.on_ms = 0
        self.min_on_violations = 0
        self.min_off_violations = 0
        self.forced_offs = 0

    def command(self, on: bool, now_ms: int, forced: bool) -> None:
        if on == self.on:
            return
        if self.changed_ms is not None:
            held = now_ms - self.changed_ms
            if self.on:
                self.on_ms += held
                if held < self.min_on_ms:
                    if forced:
                        self.forced_offs += 1
                    else:
                        self.min_on_violations += 1
            elif held < self.min_off_ms:
                self.min_off_violations += 1
        self.on = on
        self.changed_ms = now_ms
        self.switches += 1

    def on_time_ms(self, now_ms: int) -> int:
        if self.on and self.changed_ms is not None:
            return self.on_ms + now_ms - self.changed_ms
        return self.on_ms


class ThermostatApp:
    name = "thermostat"
    # How the sync engine merges the cloud's desired state into these keys (device.core.shadow).
    # The owner's last word wins, local or cloud, by hybrid logical clock; the applied-schedule
    # marker is the device's own book-keeping. Safety limits are board settings, not state:
    # nothing the cloud sends can move them.
    shadow_policies = {
        KEY_MODE: "latest_wins",
        KEY_SETPOINT: "latest_wins",
        KEY_COOL_SETPOINT: "latest_wins",
        KEY_SCHEDULE: "latest_wins",
        KEY_SCHEDULE_APPLIED: "device_wins",
    }

    def __init__(self, env: object, settings: dict) -> None:
        self.env = env
        self.settings = settings
        hw = env.hw  # type: ignore[attr-defined]
        self.sensor = hw.get(settings["sensor"])
        self.heater = hw.get(settings["heater"]) if settings["has_heater"] else None
        self.cooler = hw.get(settings["cooler"]) if settings["has_cooler"] else None
        now = env.clock.now_ms()  # type: ignore[attr-defined]
        self.state = law.ThermostatState(now)
        self.decision: law.Decision | None = None
        self.targets: law.Targets | None = None
        self.heater_watch = SwitchWatch(settings["min_on_ms"], settings["min_off_ms"])
        self.cooler_watch = SwitchWatch(settings["min_on_ms"], settings["min_off_ms"])
        self.ticks = 0
        self.first_decision_ms: int | None = None
        self.tick_us_max = 0
        self.tick_us_total = 0
        self.latencies_us: list | None = None  # set to [] to record every tick (benchmarks)
        self.meter: TickMeter | None = None  # made by run(): tick latency and gaps
        self.sensor_errors = 0
        self._sensor_failing = False
        self.store_errors = 0
        self.relay_mismatch: str | None = None
        self.schedule_note = ""
        self._schedule: list = []
        self._schedule_version = -1
        self._problems: list = []
        self._last_fault: str | None = None
        self._next_telemetry_ms = now
        self.eco = None  # off unless eco_after_h is set (then an EcoWatch; its module is loaded only then)
        if settings.get("eco_after_h", 0.0) > 0:
            from device.core.eco import EcoWatch

            self.eco = EcoWatch(settings["eco_after_h"], now)

    async def setup(self) -> None:
        """Seed the state cache with the board's defaults where the owner has set nothing."""
        store = self.env.store  # type: ignore[attr-defined]
        s = self.settings
        wall_ms = self.env.clock.wall_ms()  # type: ignore[attr-defined]
        defaults = (
            (KEY_MODE, s["default_mode"]),
            (KEY_SETPOINT, s["default_setpoint_c"]),
            (KEY_COOL_SETPOINT, s["default_cool_setpoint_c"]),
            (KEY_SCHEDULE, s["default_schedule"]),
        )
        for key, value in defaults:
            if await store.get_state(key) is None:
                await store.put_state(key, value, "local", wall_ms)

    async def run(self) -> None:
        await run_ticks(self, self.settings["tick_ms"])

    async def tick(self) -> None:
        started_us = compat.perf_us()
        now = self.env.clock.now_ms()  # type: ignore[attr-defined]
        reading = self._read_sensor()
        targets = await self._read_targets(now)
        self.state, d = law.step(self.settings, self.state, reading, targets, now)
        self.decision = d
        self.targets = targets
        self._drive(d, now)
        if self.first_decision_ms is None:
            self.first_decision_ms = now
        await self._report(d, now)
        self.ticks += 1
        spent = compat.perf_diff_us(compat.perf_us(), started_us)
        self.tick_us_total += spent
        if spent > self.tick_us_max:
            self.tick_us_max = spent
        if self.latencies_us is not None:
            self.latencies_us.append(spent)

    def _read_sensor(self) -> float | None:
        try:
            reading = self.sensor.read_c()  # type: ignore[attr-defined]
        except (OSError, BrickproofError, ValueError) as exc:
            self.sensor_errors += 1
            if not self._sensor_failing:  # once per streak: at 1 Hz a log line per tick drowns everything
                _log.warning("sensor read failed: %s", exc)
            self._sensor_failing = True
            return None
        self._sensor_failing = False
        return reading  # type: ignore[no-any-return]

    async def _read_targets(self, now: int) -> law.Targets:
        store = self.env.store  # type: ignore[attr-defined]
        s = self.settings
        try:
            await self._apply_schedule(store, now)
            mode = await store.get_state(KEY_MODE)
            sp = await store.get_state(KEY_SETPOINT)
            cool = await store.get_state(KEY_COOL_SETPOINT)
        except StoreError as exc:
            # Keep controlling on the last good targets (or the defaults).
            self.store_errors += 1
            _log.warning("state read failed: %s", exc)
            if self.targets is not None:
                return self.targets
            mode = sp = cool = None
        targets, problems = law.sanitize_targets(
            s,
            mode.value if mode else s["default_mode"],
            sp.value if sp else s["default_setpoint_c"],
            cool.value if cool else s["default_cool_setpoint_c"],
        )
        if problems != self._problems:
            self._problems = problems
            if problems:
                _log.warning("state sanitised: %s", "; ".join(problems))
                await self._append("event", {"type": "targets_sanitized", "problems": problems}, now)
        eco = self.eco
        if eco is not None:
            change = eco.check(now)
            if change is not None:
                _log.info("eco fallback %s", "on" if change else "off")
                await self._append(
                    "event", {"type": "eco_fallback", "active": change, "after_h": s["eco_after_h"]}, now
                )
            if eco.active:
                targets = eco.apply(s, targets)
        return targets

    async def _apply_schedule(self, store: object, now: int) -> None:
        entry = await store.get_state(KEY_SCHEDULE)  # type: ignore[attr-defined]
        version = entry.version if entry else 0
        if version != self._schedule_version:
            cloud = entry is not None and entry.origin == "cloud" and self._schedule_version != -1
            if cloud and self.eco is not None:
                self.eco.cloud_update(now)  # the cloud still looks after this home
            self._schedule_version = version
            s = self.settings
            try:
                self._schedule = sched.parse_schedule(
                    entry.value if entry else [], s["setpoint_min_c"], s["setpoint_max_c"], KEY_SCHEDULE
                )
                self.schedule_note = ""
            except ConfigError as exc:
                self._schedule = []
                self.schedule_note = "schedule ignored: " + str(exc)
                await self._append("event", {"type": "schedule_rejected", "error": str(exc)}, now)
        if not self._schedule:
            return
        wall_ms = self.env.clock.wall_ms()  # type: ignore[attr-defined]
        active = sched.active_entry(self._schedule, wall_ms, self.settings["utc_offset_s"])
        if active is None:
            self.schedule_note = "schedule paused: no wall clock"
            return
        self.schedule_note = ""
        applied = await store.get_state(KEY_SCHEDULE_APPLIED)  # type: ignore[attr-defined]
        if applied is None or applied.value != active[0]:
            await store.put_state(KEY_SETPOINT, active[1], "schedule", wall_ms)  # type: ignore[attr-defined]
            await store.put_state(KEY_SCHEDULE_APPLIED, active[0], "schedule", wall_ms)  # type: ignore[attr-defined]

    def _drive(self, d: law.Decision, now: int) -> None:
        if self.heater is not None and (d.heater_changed or self.ticks == 0):
            self.heater.set(d.heater_on)  # type: ignore[attr-defined]
            self.heater_watch.command(d.heater_on, now, d.forced_off)
        if self.cooler is not None and (d.cooler_changed or self.ticks == 0):
            self.cooler.set(d.cooler_on)  # type: ignore[attr-defined]
            self.cooler_watch.command(d.cooler_on, now, d.forced_off)
        mismatch = None
        for name, part in (("heater", self.heater), ("cooler", self.cooler)):
            if part is None:
                continue
            sensed = getattr(part, "sensed_on", None)  # None: the part cannot sense its contact
            commanded = part.on  # type: ignore[attr-defined]
            if sensed is not None and sensed != commanded:
                mismatch = "%s commanded %s but sensed %s" % (name, _on_off(commanded), _on_off(sensed))
        self.relay_mismatch = mismatch

    async def _report(self, d: law.Decision, now: int) -> None:
        fault = d.fault or (("relay_mismatch") if self.relay_mismatch else None)
        if fault != self._last_fault:
            if fault:
                _log.warning("fault: %s", fault)
                event = {"type": "fault", "fault": fault, "temp_c": self.state.temp_c}
            else:
                _log.info("fault cleared: %s", self._last_fault)
                event = {"type": "fault_cleared", "fault": self._last_fault}
            self._last_fault = fault
            await self._append("event", event, now)
        if now >= self._next_telemetry_ms:
            self._next_telemetry_ms = now + self.settings["telemetry_ms"]
            t = self.targets
            await self._append(
                "telemetry",
                {
                    "temp_c": self.state.temp_c,
                    "setpoint_c": t.setpoint_c if t else None,
                    "mode": t.mode if t else None,
                    "heat": d.heater_on,
                    "cool": d.cooler_on,
                    "fault": fault,
                },
                now,
            )

    async def _append(self, lane: str, payload: dict, now: int) -> None:
        try:
            await self.env.store.append(lane, payload, now)  # type: ignore[attr-defined]
        except StoreError as exc:
            # A full or failing store never stops control; it is counted and shown.
            self.store_errors += 1
            _log.warning("outbox append failed: %s", exc)

    def health(self) -> str:
        d = self.decision
        if d is None:
            return "starting"
        if d.fault:
            return "fault:" + d.fault
        if self.relay_mismatch:
            return "fault:relay_mismatch"
        if d.reading_problem:
            return "degraded:sensor_" + d.reading_problem
        if self._problems or self.store_errors:
            return "degraded:" + ("state" if self._problems else "store")
        return "ok"

    def status(self) -> dict:
        d = self.decision
        t = self.targets
        return {
            "temp_c": self.state.temp_c,
            "setpoint_c": t.setpoint_c if t else None,
            "cool_setpoint_c": t.cool_setpoint_c if t else None,
            "mode": t.mode if t else None,
            "heater_on": d.heater_on if d else False,
            "cooler_on": d.cooler_on if d else False,
            "freeze": d.freeze if d else False,
            "held": d.held if d else "",
            "health": self.health(),
            "schedule": self.schedule_note,
            "eco": self.eco is not None and self.eco.active,
        }

    def summary(self, now: int) -> dict:
        hw_, cw = self.heater_watch, self.cooler_watch
        return {
            "ticks": self.ticks,
            "tick_us_mean": self.tick_us_total // self.ticks if self.ticks else 0,
            "tick_us_max": self.tick_us_max,
            "heater_on_ms": hw_.on_time_ms(now),
            "cooler_on_ms": cw.on_time_ms(now),
            "heater_switches": hw_.switches,
            "cooler_switches": cw.switches,
            "min_on_violations": hw_.min_on_violations + cw.min_on_violations,
            "min_off_violations": hw_.min_off_violations + cw.min_off_violations,
            "safety_cutoffs": hw_.forced_offs + cw.forced_offs,
            "sensor_errors": self.sensor_errors,
            "store_errors": self.store_errors,
            "control": self.meter.stats() if self.meter is not None else None,
        }
