"""The bed's requests: buttons, cloud commands, cloud/LAN state writes and schedules.

Every one of them ends in ``BedRequests.request``, which runs the envelope's ``admit``
(``device.core.bed_envelope``) and keeps the admitted value in the state cache. ``BedApp``
(``device.apps.bed``) inherits this; it owns the attributes used here.
"""

from device.core import bed as law
from device.core import bed_envelope as env_rules
from device.core import schedule as sched
from device.errors import ConfigError, StoreError
from device.log import get_logger

_log = get_logger("bed")

KEY_LIMITS = "bed.limits"
ORIGIN_OF_SOURCE = {"button": "local", "cloud": "cloud", "lan": "lan", "schedule": "schedule", "local": "local"}
BUTTON_TARGETS = {"base_up": "head", "base_down": "head", "head_up": "head", "head_down": "head"}
BUTTON_TARGETS.update({"foot_up": "foot", "foot_down": "foot"})


def setpoint_key(side: str) -> str:
    return "bed." + side + ".setpoint_c"


def base_key(section: str) -> str:
    return "bed.base." + section


class BedRequests:
    # Set by BedApp.__init__ (declared here for the type checker).
    env: object
    settings: dict
    envelope: env_rules.Envelope
    setpoints: dict
    targets: dict
    selected: str
    buttons: object
    presses: int
    store_errors: int
    _seen: dict
    _schedules: dict

    # -- requests ---------------------------------------------------------------

    async def request(self, source: str, target: str, value: object = None) -> dict:
        """THE way anyone asks the bed for something (button, cloud, LAN, schedule).

        Goes through ``bed_envelope.admit``; the admitted value is kept in the state cache.
        Returns ``{"status": "ok" | "limited" | "rejected", "value", "note"}``.
        """
        now = self.env.clock.now_ms()  # type: ignore[attr-defined]
        admitted, note = env_rules.admit(self.settings, self.envelope, source, target, value, now)
        if admitted is None:
            await self._event({"type": "request_rejected", "source": source, "target": target, "note": note}, now)
            return {"status": "rejected", "value": None, "note": note}
        origin = ORIGIN_OF_SOURCE[source]
        if target == "base.stop":
            for section in law.SECTIONS:
                position = self.envelope.sections[section].position
                self.targets[section] = position if position is not None else self.targets[section]
                await self._keep(base_key(section), self.targets[section], origin)
            admitted = dict(self.targets)
        elif target.startswith("base."):
            self.targets[target[5:]] = admitted
            await self._keep(base_key(target[5:]), admitted, origin)
        else:
            side = target[: target.index(".")]
            self.setpoints[side] = admitted
            await self._keep(setpoint_key(side), admitted, origin)
        if note:
            await self._event({"type": "request_limited", "source": source, "target": target, "note": note}, now)
        return {"status": "limited" if note else "ok", "value": admitted, "note": note}

    async def _keep(self, key: str, value: object, origin: str) -> None:
        store = self.env.store  # type: ignore[attr-defined]
        try:
            entry = await store.get_state(key)
            if entry is not None and entry.value == value:
                self._seen[key] = entry.version
                return
            entry = await store.put_state(key, value, origin, self.env.clock.wall_ms())  # type: ignore[attr-defined]
            self._seen[key] = entry.version
        except StoreError as exc:
            self.store_errors += 1  # the admitted value still holds in RAM
            _log.warning("state write failed: %s", exc)

    async def _cmd_set_temp(self, args: dict) -> dict:
        return await self.request("cloud", str(args.get("side")) + ".setpoint_c", args.get("setpoint_c"))

    async def _cmd_set_base(self, args: dict) -> dict:
        return await self.request("cloud", "base." + str(args.get("section")), args.get("position_pct"))

    async def _cmd_stop(self, args: dict) -> dict:
        return await self.request("cloud", "base.stop")

    async def press(self, button: str) -> dict | None:
        """A local button: side, warmer, cooler, base_up/down (head), head_up/down, foot_up/down, stop."""
        self.presses += 1
        if button == "side":
            self.selected = "right" if self.selected == "left" else "left"
            return None
        if button in ("warmer", "cooler"):
            step = self.settings["button_step_c"] * (1 if button == "warmer" else -1)
            return await self.request("button", self.selected + ".setpoint_c", self.setpoints[self.selected] + step)
        if button == "stop":
            return await self.request("button", "base.stop")
        section = BUTTON_TARGETS.get(button)
        if section is None:
            return await self.request("button", "button." + str(button))  # rejected and reported
        step = self.settings["base_step_pct"] * (1 if button.endswith("_up") else -1)
        return await self.request("button", "base." + section, self.targets[section] + step)

    async def _take_requests(self, now: int) -> None:
        for button in self.buttons.take():  # type: ignore[attr-defined]
            await self.press(button)
        store = self.env.store  # type: ignore[attr-defined]
        for side in law.SIDES:
            await self._apply_schedule(store, side, now)
        keys = [(setpoint_key(side), side + ".setpoint_c") for side in law.SIDES]
        keys += [(base_key(section), "base." + section) for section in law.SECTIONS]
        for key, target in keys:
            entry = await store.get_state(key)
            if entry is not None and self._seen.get(key) != entry.version:
                self._seen[key] = entry.version  # a cloud/LAN write (shadow desired): admit it like any request
                result = await self.request(entry.origin, target, entry.value)
                if result["status"] == "rejected":  # put back what holds, so the cloud sees it
                    held = self.targets[target[5:]] if target.startswith("base.") else self.setpoints[target[:-11]]
                    await self._keep(key, held, "local")

    async def _apply_schedule(self, store: object, side: str, now: int) -> None:
        key = "bed." + side + ".schedule"
        entry = await store.get_state(key)  # type: ignore[attr-defined]
        version = entry.version if entry else 0
        if version != self._schedules[side][0]:
            parsed: list = []
            try:
                parsed = sched.parse_schedule(entry.value if entry else [], 0.0, 100.0, key)
            except ConfigError as exc:
                await self._event({"type": "schedule_rejected", "side": side, "error": str(exc)}, now)
            self._schedules[side] = (version, parsed)
        wall = self.env.clock.wall_ms()  # type: ignore[attr-defined]
        active = sched.active_entry(self._schedules[side][1], wall, self.settings["utc_offset_s"])
        if active is None:
            return
        applied_key = "bed." + side + ".schedule_applied"
        applied = await store.get_state(applied_key)  # type: ignore[attr-defined]
        if applied is None or applied.value != active[0]:
            await store.put_state(applied_key, active[0], "schedule", wall)  # type: ignore[attr-defined]
            await self.request("schedule", side + ".setpoint_c", active[1])

    async def _event(self, payload: dict, now: int) -> None:
        await self._append("event", payload, now)

    async def _append(self, lane: str, payload: dict, now: int) -> None:
        try:
            await self.env.store.append(lane, payload, now)  # type: ignore[attr-defined]
        except StoreError as exc:
            self.store_errors += 1  # a full or failing store never stops control
            _log.warning("outbox append failed: %s", exc)
