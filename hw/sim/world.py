"""``SimWorld``: the outside, the room, and which simulated part has which fault.

Built from a board's ``sim`` section. Parts (``hw.sim.parts``) register here
and always move time through ``advance_to`` so that faults scheduled in the
config start and stop at their exact moments, even when nobody touches the
part then: a relay that gets stuck on at 01:00 heats the room from 01:00.

Fault precedence for a part: a fault injected by hand wins; otherwise the
latest-starting timeline fault that is active. ``clear(part)`` removes the
injected fault and ends every timeline fault of the part that has begun.
"""

from device.errors import ConfigError
from device.rand import Rand
from hw.sim.faults import ALL_FAULTS, RELAY_FAULTS
from hw.sim.outside import OutsideProfile
from hw.sim.room import Room

_DEFAULT_LOADS = {"heater": {"power_w": 5000.0}, "cooler": {"power_w": -3000.0}}

# Timeline entry fields (lists, so ``clear`` can end one).
_AT = 0
_END = 1
_PART = 2
_KIND = 3
_VALUE = 4
_SERIAL = 5
_CLEARED = 6
_INDEX = 7


def _section(cfg: dict, key: str, path: str) -> dict:
    value = cfg.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(path, "must be an object")
    return value


def _number(cfg: dict, key: str, default, path: str):  # type: ignore[no-untyped-def]
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, "must be a number, got %r" % (value,))
    return value


def _cannot(part: str, kind: object, kinds: tuple) -> str:
    return "'%s' cannot have fault %r (it can have: %s)" % (part, kind, ", ".join(kinds))


class SimWorld:
    def __init__(self, sim_cfg: dict | None, clock, rand=None) -> None:  # type: ignore[no-untyped-def]
        cfg = sim_cfg or {}
        self.clock = clock
        seed = _number(cfg, "seed", 1, "sim.seed")
        self.rand = rand if rand is not None else Rand(int(seed))
        self.start_day_ms = int(_number(cfg, "start_day_s", 0, "sim.start_day_s") * 1000)
        wall_s = _number(cfg, "start_wall_s", None, "sim.start_wall_s")
        self.start_wall_ms = None if wall_s is None else int(wall_s * 1000)

        out = _section(cfg, "outside", "sim.outside")
        self.outside = OutsideProfile(
            _number(out, "mean_c", 5.0, "sim.outside.mean_c"),
            _number(out, "amplitude_c", 5.0, "sim.outside.amplitude_c"),
            _number(out, "coldest_hour", 5.0, "sim.outside.coldest_hour"),
            _number(out, "weather_noise_c", 1.0, "sim.outside.weather_noise_c"),
            self.rand,
        )
        room = _section(cfg, "room", "sim.room")
        self.room = Room(
            clock,
            self.outside,
            initial_c=_number(room, "initial_c", 18.0, "sim.room.initial_c"),
            thermal_mass_j_per_k=_number(room, "thermal_mass_j_per_k", 2.0e6, "sim.room.thermal_mass_j_per_k"),
            loss_w_per_k=_number(room, "loss_w_per_k", 100.0, "sim.room.loss_w_per_k"),
            internal_gain_w=_number(room, "internal_gain_w", 100.0, "sim.room.internal_gain_w"),
            start_day_ms=self.start_day_ms,
        )
        loads = cfg.get("loads")
        if loads is None:
            loads = _DEFAULT_LOADS
        if not isinstance(loads, dict):
            raise ConfigError("sim.loads", 'must be an object mapping load name to {"power_w": ...}')
        for name in sorted(loads):
            path = "sim.loads." + name
            spec = loads[name]
            if not isinstance(spec, dict):
                raise ConfigError(path, "must be an object with power_w")
            self.room.add_load(name, _number(spec, "power_w", 0.0, path + ".power_w"))

        self._serial = 0
        self._manual: dict = {}  # part -> (kind, value, start_ms, serial)
        self._timeline: list = []
        self._parse_faults(cfg.get("faults"))
        self._boundaries = self._timeline_boundaries()
        self._part_kinds: dict = {}  # part name -> fault kinds it understands
        self._relays: dict = {}  # part name -> SimRelay

    # -- time ----------------------------------------------------------------

    def advance_to(self, now_ms: int) -> None:
        """Move the room to ``now_ms``, applying timeline faults at their exact moments."""
        room = self.room
        last = room.last_ms
        if now_ms <= last:
            return
        for boundary in self._boundaries:
            if boundary <= last:
                continue
            if boundary > now_ms:
                break
            room.advance_to(boundary)
            self._apply_relays(boundary)
        room.advance_to(now_ms)

    def sync(self) -> None:
        """Advance to the clock's now."""
        self.advance_to(self.clock.now_ms())

    # -- parts ---------------------------------------------------------------

    def register_part(self, name: str, kinds: tuple) -> None:
        self._part_kinds[name] = kinds

    def register_relay(self, relay) -> None:  # type: ignore[no-untyped-def]
        """A relay switches one load; two relays on one load would fight over it."""
        for other in sorted(self._relays):
            if self._relays[other].load == relay.load and other != relay.name:
                message = "load '%s' is already switched by '%s'" % (relay.load, other)
                raise ConfigError("hw." + relay.name + ".load", message)
        self.register_part(relay.name, RELAY_FAULTS)
        self.sync()
        self._relays[relay.name] = relay
        self.room.set_load(relay.load, relay.physical_at(self.room.last_ms))

    def check_faults(self) -> None:
        """Every timeline fault must name a registered part and a kind that part has. Call after building parts."""
        for entry in self._timeline:
            path = "sim.faults[%d]" % entry[_INDEX]
            kinds = self._part_kinds.get(entry[_PART])
            if kinds is None:
                known = ", ".join(sorted(self._part_kinds)) or "none"
                raise ConfigError(path + ".part", "no simulated part named '%s' (known: %s)" % (entry[_PART], known))
            if entry[_KIND] not in kinds:
                raise ConfigError(path + ".kind", _cannot(entry[_PART], entry[_KIND], kinds))

    # -- faults ----------------------------------------------------------------

    def inject(self, part: str, kind: str, value=None) -> None:  # type: ignore[no-untyped-def]
        """Give ``part`` a fault from now until ``clear(part)``."""
        kinds = self._part_kinds.get(part, ALL_FAULTS)
        if kind not in kinds:
            raise ConfigError("sim.faults", _cannot(part, kind, kinds))
        now = self.clock.now_ms()
        self.advance_to(now)
        self._serial += 1
        self._manual[part] = (kind, value, now, self._serial)
        self._apply_relays(now)

    def clear(self, part: str) -> None:
        """End the part's injected fault and any timeline fault of it that has begun."""
        now = self.clock.now_ms()
        self.advance_to(now)
        self._manual.pop(part, None)
        for entry in self._timeline:
            if entry[_PART] == part and entry[_AT] <= now:
                entry[_CLEARED] = True
        self._apply_relays(now)

    def fault_of(self, part: str, now_ms: int | None = None) -> tuple | None:
        """``(kind, value)`` of the part's active fault, or None."""
        record = self.fault_record(part, now_ms)
        return None if record is None else (record[0], record[1])

    def fault_record(self, part: str, now_ms: int | None = None) -> tuple | None:
        """``(kind, value, start_ms, serial)``: ``serial`` tells one fault episode from the next."""
        manual = self._manual.get(part)
        if manual is not None:
            return manual
        t = self.clock.now_ms() if now_ms is None else now_ms
        found = None
        for entry in self._timeline:  # sorted by start: the last active one wins
            if entry[_PART] != part or entry[_CLEARED] or entry[_AT] > t:
                continue
            if entry[_END] is None or t < entry[_END]:
                found = entry
        if found is None:
            return None
        return (found[_KIND], found[_VALUE], found[_AT], found[_SERIAL])

    # -- report ----------------------------------------------------------------

    def summary(self) -> dict:
        self.sync()
        room = self.room
        loads = {}
        for name in room.load_names():
            loads[name] = {"on_ms": room.load_on_ms(name), "energy_j": room.energy_j(name), "on": room.load_on(name)}
        return {
            "time_ms": room.last_ms,
            "room_c": room.temp_c,
            "room_min_c": room.min_c,
            "room_max_c": room.max_c,
            "outside_c": room.outside_c(room.last_ms),
            "loads": loads,
        }

    # -- internals -------------------------------------------------------------

    def _apply_relays(self, t: int) -> None:
        relays = self._relays
        for name in sorted(relays):
            relay = relays[name]
            self.room.set_load(relay.load, relay.physical_at(t))

    def _parse_faults(self, faults) -> None:  # type: ignore[no-untyped-def]
        if faults is None:
            return
        if not isinstance(faults, list):
            raise ConfigError("sim.faults", "must be a list of {at_s, for_s, part, kind, value}")
        entries = []
        for index, spec in enumerate(faults):
            path = "sim.faults[%d]" % index
            if not isinstance(spec, dict):
                raise ConfigError(path, "must be an object with at_s, part and kind")
            part = spec.get("part")
            if not isinstance(part, str) or not part:
                raise ConfigError(path + ".part", "must name a simulated part")
            kind = spec.get("kind")
            if kind not in ALL_FAULTS:
                raise ConfigError(path + ".kind", "unknown fault %r (known: %s)" % (kind, ", ".join(ALL_FAULTS)))
            at_s = _number(spec, "at_s", 0, path + ".at_s")
            for_s = _number(spec, "for_s", None, path + ".for_s")
            if at_s < 0 or (for_s is not None and for_s < 0):
                raise ConfigError(path, "at_s and for_s must be >= 0")
            at_ms = int(at_s * 1000)
            end_ms = None if for_s is None else at_ms + int(for_s * 1000)
            self._serial += 1
            entries.append([at_ms, end_ms, part, kind, spec.get("value"), self._serial, False, index])
        entries.sort(key=lambda e: (e[_AT], e[_INDEX]))
        self._timeline = entries

    def _timeline_boundaries(self) -> list:
        times = {}
        for entry in self._timeline:
            times[entry[_AT]] = True
            if entry[_END] is not None:
                times[entry[_END]] = True
        return sorted(times)
