"""Scenario validation: every rule names the bad field (``timeline[3].mode``) and says what it wanted.

The scenario format is documented in ``cloud_shim/scenario.py``. Validation checks a whole
scenario before anything runs, so a typo in hour 14 of a timeline fails at once, not after
14 simulated hours. Fields are checked in a fixed order (unknown fields, then missing ones, then
each field as declared), so the first error reported is always the same one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

NAME_RE = re.compile(r"[a-z0-9-]+")
DURATION_RE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smh])")
UNIT_S = {"s": 1, "m": 60, "h": 3600}
DEVICE_ID_RE = re.compile(r"([a-z][a-z0-9_]*)-(\d{4,})")

ENDPOINTS = ("primary", "secondary")
DNS_MODES = ("ok", "empty", "nxdomain", "servfail", "timeout", "wrong")
PROXY_MODES = ("pass", "refuse", "blackhole", "half_open", "reset", "drop_pubacks")
BROKER_ACTIONS = ("kill", "restart", "stop", "start")
WIFI_MODES = ("down", "up")
POWER_ACTIONS = ("cycle",)
# Actions that act on the whole system (no "to"); the rest act on devices.
GLOBAL_ACTIONS = ("dns", "proxy", "broker", "mark")
# Candidate apps; the ones device.boot._app_class can build are "known".
APP_CANDIDATES = ("bed", "camera", "thermostat")

DEFAULTS: dict[str, Any] = {
    "devices": 100,
    "speed": 600,
    "fleet": {"mix": {"thermostat": 1.0}, "regions": {"home": 1.0}},
    "link": {},
    "bounds": {"shadow_converged": "15m", "resync": "30m"},
}
TOP_FIELDS = ("name", "description", "duration", "devices", "speed", "fleet", "link", "bounds", "timeline")
TOP_REQUIRED = ("name", "description", "duration", "timeline")
# action -> (required fields, optional fields), besides "at" and "do".
ACTION_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "dns": (("endpoint", "mode"), ()),
    "proxy": (("endpoint", "mode"), ("for",)),
    "broker": (("action",), ("down_for",)),
    "wifi": (("mode",), ("to", "for")),
    "desired": (("state",), ("to",)),
    "local": (("state",), ("to",)),
    "command": (("name",), ("to", "args", "ttl")),
    "power": (("action",), ("to",)),
    "mark": (("label",), ()),
}


class ScenarioError(ValueError):
    """A bad scenario: ``path`` names the field (``""``: the file itself), ``source`` the file.

    ``str(exc)`` is one line: ``scenario FILE: timeline[3].mode: must be one of ... (got 'emtpy')``.
    """

    def __init__(self, path: str, message: str, source: str = "<scenario>") -> None:
        self.path = path
        self.message = message
        self.source = source
        super().__init__(path, message, source)

    def __str__(self) -> str:
        where = "%s: " % self.path if self.path else ""
        return "scenario %s: %s%s" % (self.source, where, self.message)


def parse_duration(value: object) -> int:
    """Milliseconds from a DURATION: seconds as a number >= 0, or ``"<number><unit>"``, unit s, m or h.

    Raises ValueError with a message fit to follow a field path.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a duration like 90, '90s', '30m' or '2.5h' (got %r)" % (value,))
    if isinstance(value, str):
        match = DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError("must be a duration like 90, '90s', '30m' or '2.5h' (got %r)" % (value,))
        return round(float(match.group(1)) * UNIT_S[match.group(2)] * 1000)
    if not math.isfinite(value):
        raise ValueError("must be a finite duration (got %r)" % (value,))
    if value < 0:
        raise ValueError("must not be negative (got %r)" % (value,))
    return round(value * 1000)


def known_apps() -> list[str]:
    """The apps this build can run (asks ``device.boot._app_class``, the one place that knows)."""
    from device.boot import _app_class
    from device.errors import ConfigError

    known = []
    for name in APP_CANDIDATES:
        try:
            _app_class(name)
        except (ConfigError, ImportError):
            continue
        known.append(name)
    return known


class _Checker:
    """Validates one scenario document; raises the first ScenarioError found."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.duration_ms = 0
        self.apps: dict[str, Any] = {}
        self.regions: dict[str, Any] = {}

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(path, message, self.source)

    def fields(self, obj: object, path: str, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise self.fail(path, "must be an object (got %s)" % _kind(obj))
        allowed = required + optional
        for key in sorted(obj, key=str):
            if key not in allowed:
                raise self.fail(_join(path, key), "unknown field (allowed: %s)" % ", ".join(allowed))
        for key in required:
            if key not in obj:
                raise self.fail(_join(path, key), "missing (required)")
        return obj

    def duration(self, value: object, path: str, positive: bool = False, within: bool = False) -> int:
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None
        if positive and ms <= 0:
            raise self.fail(path, "must be more than 0 (got %r)" % (value,))
        if within and ms > self.duration_ms:
            raise self.fail(path, "%r is beyond the scenario's duration %s" % (value, _secs(self.duration_ms)))
        return ms

    def number(self, value: object, path: str, low: float, low_ok: bool, integer: bool = False) -> float:
        wrong_type = isinstance(value, bool) or not isinstance(value, int if integer else int | float)
        if wrong_type or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(path, "must be %s (got %r)" % ("an integer" if integer else "a number", value))
        if value < low or (value == low and not low_ok):
            raise self.fail(path, "must be %s %s (got %r)" % (">=" if low_ok else ">", low, value))
        return float(value)

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, "must be a non-empty string (got %r)" % (value,))
        return value

    def choice(self, value: object, path: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(path, "must be one of %s (got %r)" % (", ".join(choices), value))
        return str(value)

    def weights(self, value: object, path: str, check_key: Callable[[str, str], None]) -> dict[str, Any]:
        if not isinstance(value, dict) or not value:
            raise self.fail(path, "must be a non-empty object of name -> weight (got %r)" % (value,))
        for key, weight in value.items():
            check_key(key, _join(path, key))
            self.number(weight, _join(path, key), 0, True)
        if not any(w > 0 for w in value.values()):
            raise self.fail(path, "needs at least one weight above 0")
        return value

    def check_app(self, name: str, path: str) -> None:
        known = known_apps()
        if name not in known:
            raise self.fail(path, "unknown app (known: %s)" % ", ".join(known))

    def check_region(self, name: str, path: str) -> None:
        self.string(name, path)

    def top(self, doc: object) -> None:
        doc = self.fields(doc, "", TOP_REQUIRED, tuple(f for f in TOP_FIELDS if f not in TOP_REQUIRED))
        name = doc["name"]
        if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
            raise self.fail("name", "must match [a-z0-9-]+ (got %r)" % (name,))
        self.string(doc["description"], "description")
        self.duration_ms = self.duration(doc["duration"], "duration", positive=True)
        if "devices" in doc:
            self.number(doc["devices"], "devices", 1, True, integer=True)
        if "speed" in doc:
            self.number(doc["speed"], "speed", 0, False)
        fleet = self.fields(doc.get("fleet", DEFAULTS["fleet"]), "fleet", (), ("mix", "regions"))
        self.apps = self.weights(fleet.get("mix", DEFAULTS["fleet"]["mix"]), "fleet.mix", self.check_app)
        regions = fleet.get("regions", DEFAULTS["fleet"]["regions"])
        self.regions = self.weights(regions, "fleet.regions", self.check_region)
        link = self.fields(doc.get("link", {}), "link", (), ("endpoints", "long_outage", "spread", "drain_per_s"))
        if "endpoints" in link:
            names = link["endpoints"]
            if not isinstance(names, list) or not names:
                raise self.fail("link.endpoints", "must be a non-empty list of endpoint names (got %r)" % (names,))
            for i, name in enumerate(names):
                self.choice(name, "link.endpoints[%d]" % i, ENDPOINTS)
            if len(set(names)) != len(names):
                raise self.fail("link.endpoints", "names an endpoint twice (got %r)" % (names,))
        for key in ("long_outage", "spread"):
            if key in link:
                self.duration(link[key], "link." + key)
        if "drain_per_s" in link:
            self.number(link["drain_per_s"], "link.drain_per_s", 0, True, integer=True)
        bounds = self.fields(doc.get("bounds", {}), "bounds", (), ("shadow_converged", "resync"))
        for key in bounds:
            self.duration(bounds[key], "bounds." + key, positive=True)
        timeline = doc["timeline"]
        if not isinstance(timeline, list):
            raise self.fail("timeline", "must be a list of events (got %s)" % _kind(timeline))
        for i, event in enumerate(timeline):
            self.event(event, "timeline[%d]" % i)
        self.proxy_overlaps(timeline)

    def proxy_overlaps(self, timeline: list[dict[str, Any]]) -> None:
        # A proxy "for" ends by setting "pass": another proxy event on that endpoint inside the
        # window would be silently undone by it, which is never what the author meant.
        proxy = [(i, e, parse_duration(e["at"])) for i, e in enumerate(timeline) if e["do"] == "proxy"]
        for i, event, at_ms in proxy:
            if "for" not in event:
                continue
            end_ms = at_ms + parse_duration(event["for"])
            for j, other, other_ms in proxy:
                if j != i and other["endpoint"] == event["endpoint"] and at_ms <= other_ms < end_ms:
                    raise self.fail(
                        "timeline[%d].for" % i,
                        "timeline[%d] changes the %s proxy before this 'for' ends; its revert would undo that"
                        % (j, event["endpoint"]),
                    )

    def event(self, event: object, path: str) -> None:
        if not isinstance(event, dict):
            raise self.fail(path, "must be an object (got %s)" % _kind(event))
        for key in ("at", "do"):
            if key not in event:
                raise self.fail(_join(path, key), "missing (required)")
        action = self.choice(event["do"], path + ".do", tuple(ACTION_FIELDS))
        required, optional = ACTION_FIELDS[action]
        self.fields(event, path, ("at", "do", *required), optional)
        at_ms = self.duration(event["at"], path + ".at", within=True)
        if action in ("dns", "proxy"):
            self.choice(event["endpoint"], path + ".endpoint", ENDPOINTS)
        modes = {"dns": DNS_MODES, "proxy": PROXY_MODES, "wifi": WIFI_MODES}.get(action)
        if modes:
            self.choice(event["mode"], path + ".mode", modes)
        if action in ("broker", "power"):
            self.choice(event["action"], path + ".action", BROKER_ACTIONS if action == "broker" else POWER_ACTIONS)
        for key, back_to in (("for", "pass" if action == "proxy" else "up"), ("down_for", "")):
            if key not in event:
                continue
            if action == "broker" and event["action"] != "restart":
                raise self.fail(_join(path, key), "only for action 'restart'")
            if key == "for" and event["mode"] == back_to:
                raise self.fail(_join(path, key), "a %r event has nothing to revert" % (back_to,))
            ms = self.duration(event[key], _join(path, key), positive=key == "for")
            if at_ms + ms > self.duration_ms:
                raise self.fail(_join(path, key), "ends beyond the scenario's duration %s" % _secs(self.duration_ms))
        if action in ("desired", "local"):
            state = event["state"]
            if not isinstance(state, dict) or not state:
                raise self.fail(path + ".state", "must be a non-empty object of key -> value (got %r)" % (state,))
        if action == "command":
            self.string(event["name"], path + ".name")
            if "args" in event and not isinstance(event["args"], dict):
                raise self.fail(path + ".args", "must be an object (got %s)" % _kind(event["args"]))
            if "ttl" in event:
                self.duration(event["ttl"], path + ".ttl", positive=True)
        if action == "mark":
            self.string(event["label"], path + ".label")
        if "to" in event:
            self.target(event["to"], path + ".to")

    def target(self, to: object, path: str) -> None:
        if to == "all":
            return
        kinds = ("fraction", "count", "region", "app", "devices")
        if not isinstance(to, dict) or len(to) != 1:
            raise self.fail(path, 'must be "all" or an object with one of %s (got %r)' % (", ".join(kinds), to))
        kind, value = next(iter(to.items()))
        sub = _join(path, kind)
        if kind == "fraction":
            if self.number(value, sub, 0, False) > 1:
                raise self.fail(sub, "must be <= 1 (got %r)" % (value,))
        elif kind == "count":
            self.number(value, sub, 1, True, integer=True)
        elif kind == "region":
            if value not in self.regions:
                raise self.fail(sub, "unknown region %r (fleet.regions: %s)" % (value, ", ".join(sorted(self.regions))))
        elif kind == "app":
            if value not in self.apps:
                raise self.fail(sub, "app %r is not in fleet.mix (%s)" % (value, ", ".join(sorted(self.apps))))
        elif kind == "devices":
            if not isinstance(value, list) or not value:
                raise self.fail(sub, "must be a non-empty list of device ids (got %r)" % (value,))
            for j, dev in enumerate(value):
                match = DEVICE_ID_RE.fullmatch(dev) if isinstance(dev, str) else None
                if match is None or match.group(1) not in self.apps:
                    raise self.fail("%s[%d]" % (sub, j), "must be a device id like 'thermostat-0007' (got %r)" % (dev,))
        else:
            raise self.fail(sub, "unknown target (one of %s)" % ", ".join(kinds))


def validate(doc: object, source: str = "<scenario>") -> int:
    """Check a scenario document; return its duration in ms. Raises ScenarioError."""
    checker = _Checker(source)
    checker.top(doc)
    return checker.duration_ms


def _join(path: str, key: object) -> str:
    return "%s.%s" % (path, key) if path else str(key)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), repr(value))


def _secs(ms: int) -> str:
    return "%gs" % (ms / 1000)
