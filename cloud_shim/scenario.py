"""Outage scenarios: load and check a scenario file, pick a fleet, expand the timeline.

A scenario (JSON, or TOML with the same shape) says what happens to a simulated fleet and when::

    {"name": "flaky-wifi", "description": "...", "duration": "2h",
     "devices": 100, "speed": 600,
     "fleet": {"mix": {"thermostat": 1.0}, "regions": {"us-east-1": 0.7, "us-west-2": 0.3}},
     "link": {"long_outage": "30m", "spread": "2m", "drain_per_s": 50},
     "bounds": {"shadow_converged": "15m", "resync": "30m"},
     "timeline": [{"at": "10m", "do": "wifi", "to": {"fraction": 0.2}, "mode": "down", "for": "90s"}]}

DURATION is seconds as a number or ``"<number><unit>"`` (unit s, m, h). The actions, their fields
and the targets (``"all"``, fraction, count, region, app, device ids) are listed with the rules in
``cloud_shim/scenario_schema.py``; the full contract is in the project notes (issue 5).

- ``load_scenario(path_or_name)``: a file, or a built-in name (``cloud_shim/scenarios/NAME.json``);
  returns the checked scenario with defaults filled and ``duration_ms`` added.
- ``fleet_for(scenario, devices, seed)``: ``[{"id", "app", "region"}]``, split by the weights.
- ``expand(scenario, fleet, seed)``: concrete events, sorted, deterministic for a seed.
- ``last_fault_end_ms(events)``: when the network faults last change; the bounds count from there.
"""

from __future__ import annotations

import copy
import json
import random
import tomllib
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from cloud_shim.scenario_schema import (
    DEFAULTS,
    GLOBAL_ACTIONS,
    ScenarioError,
    parse_duration,
    validate,
)

__all__ = [
    "ScenarioError",
    "bounds_ms",
    "builtin_names",
    "endpoint_names",
    "expand",
    "fleet_for",
    "last_fault_end_ms",
    "link_overrides",
    "load_scenario",
    "parse_duration",
    "with_apps",
]

BUILTIN_DIR = Path(__file__).parent / "scenarios"
FAULT_ACTIONS = ("dns", "proxy", "broker", "wifi")
# field -> its name in an expanded event (DURATIONs become integer milliseconds)
_MS_FIELDS = {"for": "for_ms", "down_for": "down_for_ms", "ttl": "ttl_ms"}
_DEFAULT_TTL = "10m"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def load_scenario(path_or_name: str | Path) -> dict[str, Any]:
    """Read and check a scenario file or a built-in by name. Raises ScenarioError."""
    source = str(path_or_name)
    path = Path(path_or_name)
    if not path.is_file():
        if path.suffix or "/" in source or source not in builtin_names():
            known = ", ".join(builtin_names())
            raise ScenarioError("", "no such file or built-in scenario (built-ins: %s)" % known, source)
        path = BUILTIN_DIR / (source + ".json")
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ScenarioError("", "cannot read: %s" % (exc.strerror or exc), source) from None
    try:
        if path.suffix == ".toml":
            doc = tomllib.loads(text.decode())
        else:
            doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ScenarioError("", "not valid %s: %s" % (kind, str(exc).splitlines()[0]), source) from None
    return check_scenario(doc, source)


def check_scenario(doc: object, source: str = "<scenario>") -> dict[str, Any]:
    """Check a scenario already parsed; return a copy with defaults filled and ``duration_ms``."""
    duration_ms = validate(doc, source)
    assert isinstance(doc, dict)
    scenario = copy.deepcopy(DEFAULTS)
    for key, value in copy.deepcopy(doc).items():
        if key == "fleet":
            scenario["fleet"].update(value)
        else:
            scenario[key] = value
    scenario["duration_ms"] = duration_ms
    return scenario


def with_apps(scenario: dict[str, Any], apps: list[str]) -> dict[str, Any]:
    """The scenario with its fleet split evenly over ``apps`` (``brickproof sim --apps``).

    Events keep their targets; a state key or command naming one app reaches only that app's
    devices (``cloud_shim.sim.fleet.state_for``). Raises ScenarioError for an unknown app or an
    ``app`` target left without devices.
    """
    doc = {k: v for k, v in scenario.items() if k != "duration_ms"}
    doc["fleet"] = dict(doc.get("fleet", {}), mix={app: 1 for app in apps})
    return check_scenario(doc, "%s --apps %s" % (scenario["name"], ",".join(apps)))


def endpoint_names(scenario: dict[str, Any]) -> list[str]:
    """The endpoints the fleet's devices know, in order (``link.endpoints``; default: the primary only)."""
    return list(scenario.get("link", {}).get("endpoints", ["primary"]))


def link_overrides(scenario: dict[str, Any]) -> dict[str, int]:
    """The scenario's ``link`` section as board link settings (``long_outage_ms``, ...)."""
    link = scenario.get("link", {})
    out = {key + "_ms": parse_duration(link[key]) for key in ("long_outage", "spread") if key in link}
    if "drain_per_s" in link:
        out["drain_per_s"] = int(link["drain_per_s"])
    return out


def bounds_ms(scenario: dict[str, Any]) -> dict[str, int]:
    """``{"shadow_converged_ms", "resync_ms"}``: how long after the last fault each may take."""
    bounds = dict(DEFAULTS["bounds"])
    bounds.update(scenario.get("bounds", {}))
    return {key + "_ms": parse_duration(value) for key, value in bounds.items()}


def _split(total: int, weights: dict[str, Any]) -> dict[str, int]:
    """Largest remainder: floors of the exact quotas, then one more each to the largest remainders."""
    exact = {name: Fraction(w) for name, w in weights.items()}
    whole = sum(exact.values())
    quotas = {name: total * w / whole for name, w in exact.items()}
    counts = {name: int(q) for name, q in quotas.items()}  # quotas are >= 0: int() floors
    # Ties go to the name first in sorted order, so the split never depends on dict order.
    by_remainder = sorted(quotas, key=lambda name: (-(quotas[name] - counts[name]), name))
    for name in by_remainder[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def fleet_for(scenario: dict[str, Any], devices: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """The fleet: ``devices`` (default: the scenario's) split over apps and regions by weight.

    Ids are ``<app>-<NNNN>`` numbered from 0 within each app; regions are dealt out in exact
    proportions and shuffled over the devices with ``seed``. Sorted by id.
    """
    total = int(scenario.get("devices", DEFAULTS["devices"]) if devices is None else devices)
    if total < 1:
        raise ValueError("a fleet needs at least one device (got %d)" % total)
    fleet_cfg = scenario.get("fleet", {})
    apps = _split(total, fleet_cfg.get("mix", DEFAULTS["fleet"]["mix"]))
    ids = sorted("%s-%04d" % (app, i) for app in sorted(apps) for i in range(apps[app]))
    regions = _split(total, fleet_cfg.get("regions", DEFAULTS["fleet"]["regions"]))
    labels = [name for name in sorted(regions) for _ in range(regions[name])]
    random.Random("fleet/%s" % (seed,)).shuffle(labels)
    return [{"id": dev, "app": dev.rsplit("-", 1)[0], "region": labels[i]} for i, dev in enumerate(ids)]


def _pick(to: Any, fleet: list[dict[str, str]], rng: random.Random, path: str) -> list[str]:
    ids = sorted(d["id"] for d in fleet)
    if to == "all":
        return ids
    kind, value = next(iter(to.items()))
    if kind in ("fraction", "count"):
        n = value if kind == "count" else max(1, int(value * len(ids) + 0.5))  # half up, at least one
        return sorted(rng.sample(ids, min(n, len(ids))))
    if kind in ("region", "app"):
        return sorted(d["id"] for d in fleet if d[kind] == value)
    known = set(ids)
    for j, dev in enumerate(value):
        if dev not in known:
            raise ScenarioError("%s.devices[%d]" % (path, j), "no device %r in a fleet of %d" % (dev, len(ids)))
    return sorted(set(value))


def expand(scenario: dict[str, Any], fleet: list[dict[str, str]], seed: int = 0) -> list[dict[str, Any]]:
    """Concrete events, sorted by time; the same scenario, fleet and seed give the same list.

    Each event: ``{"at_ms", "do", "devices": [ids] | None, "index", ...fields}`` with DURATION
    fields as ``*_ms`` ints; commands get ``args`` ({}) and ``ttl_ms`` (10 min) when not given,
    a broker restart ``down_for_ms`` (0). A ``for`` becomes a second event at its end that
    reverts it (proxy -> "pass", wifi -> "up", same devices) with ``"auto_revert": True``.
    At the same instant reverts come first, then events in file order, so a fault set exactly
    when an earlier one ends is not undone by that end. Fraction and count targets pick with
    ``random.Random`` seeded by the seed and the event itself: picks do not shift when other
    events are added or moved.
    """
    out: list[tuple[int, int, int, dict[str, Any]]] = []
    seen: Counter[str] = Counter()
    for index, event in enumerate(scenario["timeline"]):
        action = event["do"]
        at_ms = parse_duration(event["at"])
        item: dict[str, Any] = {"at_ms": at_ms, "do": action, "devices": None, "index": index}
        if action not in GLOBAL_ACTIONS:
            # Seeded by the event's own content (and which copy of it this is), not its position.
            text = json.dumps(event, sort_keys=True, default=str)
            seen[text] += 1
            rng = random.Random("event/%s/%s/%d" % (seed, text, seen[text]))
            item["devices"] = _pick(event.get("to", "all"), fleet, rng, "timeline[%d].to" % index)
        for key, value in event.items():
            if key in ("at", "do", "to"):
                continue
            if key in _MS_FIELDS:
                item[_MS_FIELDS[key]] = parse_duration(value)
            else:
                item[key] = copy.deepcopy(value)
        if action == "command":
            item.setdefault("args", {})
            item.setdefault("ttl_ms", parse_duration(_DEFAULT_TTL))
        if action == "broker" and item["action"] == "restart":
            item.setdefault("down_for_ms", 0)
        out.append((at_ms, 1, index, item))
        if "for_ms" in item:
            revert: dict[str, Any] = {key: item[key] for key in ("do", "devices", "index", "endpoint") if key in item}
            revert.update(at_ms=at_ms + item["for_ms"], mode="pass" if action == "proxy" else "up", auto_revert=True)
            if revert["devices"] is not None:
                revert["devices"] = list(revert["devices"])
            out.append((revert["at_ms"], 0, index, revert))
    out.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in out]


def last_fault_end_ms(events: list[dict[str, Any]]) -> int:
    """When the network faults (dns, proxy, broker, wifi) last change: the last revert, usually.

    A broker restart counts from when the broker is back (``at_ms + down_for_ms``). 0 with none.
    """
    end = 0
    for event in events:
        if event["do"] in FAULT_ACTIONS:
            end = max(end, event["at_ms"] + event.get("down_for_ms", 0))
    return end
