"""Scenario files (cloud_shim/scenario.py): validation names the field, expansion is deterministic."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloud_shim.scenario import (
    ScenarioError,
    bounds_ms,
    builtin_names,
    check_scenario,
    expand,
    fleet_for,
    last_fault_end_ms,
    link_overrides,
    load_scenario,
    parse_duration,
)

BUILTINS = ["broker-restart", "flaky-wifi", "mixed-home", "region-failover", "us-east-1-2025"]


def base() -> dict[str, Any]:
    """A small valid scenario that every broken variant below starts from."""
    return {
        "name": "t",
        "description": "test",
        "duration": "2h",
        "fleet": {"mix": {"thermostat": 1}, "regions": {"east": 0.5, "west": 0.5}},
        "timeline": [
            {"at": 0, "do": "mark", "label": "start"},
            {"at": "10m", "do": "dns", "endpoint": "primary", "mode": "empty"},
            {"at": "20m", "do": "wifi", "to": {"fraction": 0.5}, "mode": "down", "for": "5m"},
            {"at": "30m", "do": "desired", "to": {"region": "east"}, "state": {"thermostat.setpoint_c": 20}},
        ],
    }


def write(tmp_path: Path, doc: object, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("value", "ms"),
    [(0, 0), (90, 90_000), (1.5, 1500), ("90s", 90_000), ("30m", 1_800_000), ("2.5h", 9_000_000), (".5s", 500)],
)
def test_durations_are_seconds_or_a_number_with_a_unit(value: object, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize("value", ["5x", "90", "", "1h30m", "-5s", "s", "1e3s", None, True, [], float("nan"), -1])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(value)


# ---------------------------------------------------------------- built-ins


def test_builtin_names_are_the_five_scenarios() -> None:
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_loads_and_expands(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario["name"] == name
    fleet = fleet_for(scenario, 40, seed=3)
    events = expand(scenario, fleet, seed=3)
    assert events, "a built-in scenario does something"
    assert all(0 <= e["at_ms"] <= scenario["duration_ms"] for e in events)
    actions = {e["do"] for e in events}
    assert {"desired", "command"} <= actions and actions & {"local", "power"}, "shadow and commands are exercised"
    end = last_fault_end_ms(events)
    assert 0 < end < scenario["duration_ms"]
    bounds = bounds_ms(scenario)
    assert end + max(bounds.values()) <= scenario["duration_ms"], "the bounds can be met before the end"


def test_us_east_1_has_14_hours_of_empty_dns_then_a_wrong_address_then_recovery() -> None:
    scenario = load_scenario("us-east-1-2025")
    dns = [(e["at_ms"], e["mode"]) for e in expand(scenario, fleet_for(scenario), 0) if e["do"] == "dns"]
    assert [mode for _, mode in dns] == ["empty", "wrong", "ok"]
    assert dns[1][0] - dns[0][0] == 14 * 3600_000
    assert 30 * 60_000 <= dns[2][0] - dns[1][0] <= 2 * 3600_000
    assert 16 * 3600_000 <= scenario["duration_ms"] <= 17 * 3600_000
    assert link_overrides(scenario) == {"long_outage_ms": 1_800_000, "spread_ms": 120_000, "drain_per_s": 50}


def test_a_builtin_loads_from_its_path_too() -> None:
    path = Path(__file__).parents[2] / "cloud_shim" / "scenarios" / "flaky-wifi.json"
    assert load_scenario(path) == load_scenario("flaky-wifi")


def test_defaults_are_filled() -> None:
    scenario = check_scenario({"name": "x", "description": "d", "duration": 60, "timeline": []})
    assert scenario["devices"] == 100 and scenario["speed"] == 600 and scenario["duration_ms"] == 60_000
    assert scenario["fleet"] == {"mix": {"thermostat": 1.0}, "regions": {"home": 1.0}}
    assert bounds_ms(scenario) == {"shadow_converged_ms": 900_000, "resync_ms": 1_800_000}
    assert link_overrides(scenario) == {}
    assert expand(scenario, fleet_for(scenario, 3), 0) == []
    assert last_fault_end_ms([]) == 0


def test_toml_loads_like_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        """
name = "t"
description = "test"
duration = "2h"
[fleet.mix]
thermostat = 1
[fleet.regions]
east = 0.5
west = 0.5
[[timeline]]
at = 0
do = "mark"
label = "start"
[[timeline]]
at = "10m"
do = "dns"
endpoint = "primary"
mode = "empty"
[[timeline]]
at = "20m"
do = "wifi"
to = {fraction = 0.5}
mode = "down"
for = "5m"
[[timeline]]
at = "30m"
do = "desired"
to = {region = "east"}
state = {"thermostat.setpoint_c" = 20}
"""
    )
    assert load_scenario(toml) == load_scenario(write(tmp_path, base()))


# ---------------------------------------------------------------- validation


def variant(path: str, value: object) -> dict[str, Any]:
    """base() with the field at a dotted path (``timeline.1.mode``) set, or removed when value is DEL."""
    doc = base()
    keys = path.split(".")
    obj: Any = doc
    for key in keys[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    last: Any = int(keys[-1]) if isinstance(obj, list) else keys[-1]
    if value is DEL:
        del obj[last]
    else:
        obj[last] = value
    return doc


DEL = object()
BROKEN = [
    # (field to change, new value, expected error path, words in the message)
    ("colour", "red", "colour", "unknown field"),
    ("name", DEL, "name", "missing"),
    ("description", DEL, "description", "missing"),
    ("duration", DEL, "duration", "missing"),
    ("timeline", DEL, "timeline", "missing"),
    ("name", "Bad Name", "name", "[a-z0-9-]+"),
    ("name", 7, "name", "[a-z0-9-]+"),
    ("description", "", "description", "non-empty"),
    ("duration", "5x", "duration", "'5x'"),
    ("duration", -5, "duration", "negative"),
    ("duration", 0, "duration", "more than 0"),
    ("devices", 0, "devices", ">= 1"),
    ("devices", 2.5, "devices", "integer"),
    ("devices", True, "devices", "integer"),
    ("speed", 0, "speed", "> 0"),
    ("speed", "fast", "speed", "number"),
    ("fleet.mix", {"toaster": 1}, "fleet.mix.toaster", "unknown app"),
    ("fleet.mix", {}, "fleet.mix", "non-empty"),
    ("fleet.mix", {"thermostat": 0}, "fleet.mix", "above 0"),
    ("fleet.mix", {"thermostat": -1}, "fleet.mix.thermostat", ">= 0"),
    ("fleet.regions", {"east": "lots"}, "fleet.regions.east", "number"),
    ("fleet.size", 3, "fleet.size", "unknown field"),
    ("fleet", [], "fleet", "object"),
    ("link", {"spread": "2q"}, "link.spread", "'2q'"),
    ("link", {"drain_per_s": -1}, "link.drain_per_s", ">= 0"),
    ("link", {"retries": 3}, "link.retries", "unknown field"),
    ("bounds", {"resync": "0s"}, "bounds.resync", "more than 0"),
    ("bounds", {"shadow": "1m"}, "bounds.shadow", "unknown field"),
    ("timeline", {}, "timeline", "list"),
    ("timeline.0", "mark", "timeline[0]", "object"),
    ("timeline.0.at", DEL, "timeline[0].at", "missing"),
    ("timeline.0.at", "3h", "timeline[0].at", "beyond the scenario's duration"),
    ("timeline.0.at", "-1m", "timeline[0].at", "'-1m'"),
    ("timeline.0.at", -60, "timeline[0].at", "negative"),
    ("timeline.0.do", "explode", "timeline[0].do", "must be one of dns, proxy"),
    ("timeline.0.label", DEL, "timeline[0].label", "missing"),
    ("timeline.0.label", "", "timeline[0].label", "non-empty"),
    ("timeline.0.to", "all", "timeline[0].to", "unknown field"),
    ("timeline.1.mode", "emtpy", "timeline[1].mode", "must be one of ok, empty, nxdomain, servfail, timeout, wrong"),
    ("timeline.1.endpoint", "tertiary", "timeline[1].endpoint", "primary, secondary"),
    ("timeline.1.for", "5m", "timeline[1].for", "unknown field"),
    ("timeline.1.extra", 1, "timeline[1].extra", "unknown field"),
    ("timeline.2.mode", "sideways", "timeline[2].mode", "down, up"),
    ("timeline.2.for", "2h", "timeline[2].for", "ends beyond"),
    ("timeline.2.for", 0, "timeline[2].for", "more than 0"),
    ("timeline.2.for", "5x", "timeline[2].for", "'5x'"),
    ("timeline.2.to", {"fraction": 0}, "timeline[2].to.fraction", "> 0"),
    ("timeline.2.to", {"fraction": 1.5}, "timeline[2].to.fraction", "<= 1"),
    ("timeline.2.to", {"fraction": "half"}, "timeline[2].to.fraction", "number"),
    ("timeline.2.to", {"count": 0}, "timeline[2].to.count", ">= 1"),
    ("timeline.2.to", {"region": "mars"}, "timeline[2].to.region", "unknown region 'mars'"),
    ("timeline.2.to", {"app": "camera"}, "timeline[2].to.app", "not in fleet.mix"),
    ("timeline.2.to", {"app": "toaster"}, "timeline[2].to.app", "not in fleet.mix"),
    ("timeline.2.to", {"devices": []}, "timeline[2].to.devices", "non-empty list"),
    ("timeline.2.to", {"devices": ["thermostat-0001", "oven-0002"]}, "timeline[2].to.devices[1]", "device id"),
    ("timeline.2.to", {"planet": "earth"}, "timeline[2].to.planet", "unknown target"),
    ("timeline.2.to", {"count": 1, "app": "thermostat"}, "timeline[2].to", "one of"),
    ("timeline.2.to", "some", "timeline[2].to", 'must be "all"'),
    ("timeline.3.state", {}, "timeline[3].state", "non-empty object"),
    ("timeline.3.state", 20, "timeline[3].state", "non-empty object"),
    ("timeline.3.state", DEL, "timeline[3].state", "missing"),
]


@pytest.mark.parametrize(("field", "value", "path", "words"), BROKEN, ids=[b[0] + ":" + b[2] for b in BROKEN])
def test_a_broken_field_is_named_exactly(tmp_path: Path, field: str, value: object, path: str, words: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, variant(field, value)))
    assert caught.value.path == path
    assert words in caught.value.message


EVENTS_BROKEN = [
    ({"do": "proxy", "endpoint": "primary", "mode": "pass", "for": "1m"}, "timeline[0].for", "nothing to revert"),
    ({"do": "proxy", "endpoint": "primary", "mode": "halfopen"}, "timeline[0].mode", "half_open"),
    ({"do": "proxy", "mode": "refuse"}, "timeline[0].endpoint", "missing"),
    ({"do": "wifi", "mode": "up", "for": "1m"}, "timeline[0].for", "nothing to revert"),
    ({"do": "broker", "action": "explode"}, "timeline[0].action", "kill, restart, stop, start"),
    ({"do": "broker", "action": "kill", "down_for": "1m"}, "timeline[0].down_for", "only for action 'restart'"),
    ({"do": "broker", "action": "restart", "down_for": "3h"}, "timeline[0].down_for", "ends beyond"),
    ({"do": "broker", "action": "restart", "to": "all"}, "timeline[0].to", "unknown field"),
    ({"do": "command", "name": ""}, "timeline[0].name", "non-empty"),
    ({"do": "command", "name": "ping", "args": [1]}, "timeline[0].args", "object"),
    ({"do": "command", "name": "ping", "ttl": 0}, "timeline[0].ttl", "more than 0"),
    ({"do": "command", "name": "ping", "expires": "1m"}, "timeline[0].expires", "unknown field"),
    ({"do": "power", "action": "off"}, "timeline[0].action", "cycle"),
    ({"do": "power"}, "timeline[0].action", "missing"),
    ({"do": "local", "to": "all", "state": "warm"}, "timeline[0].state", "non-empty object"),
    ({"do": "dns", "endpoint": "primary"}, "timeline[0].mode", "missing"),
    ({"at": 0}, "timeline[0].do", "missing"),
]


@pytest.mark.parametrize(("event", "path", "words"), EVENTS_BROKEN, ids=[e[1] + ":" + e[2] for e in EVENTS_BROKEN])
def test_each_action_checks_its_own_fields(event: dict[str, Any], path: str, words: str) -> None:
    doc = base()
    doc["timeline"] = [{"at": "1m", **event}]
    with pytest.raises(ScenarioError) as caught:
        check_scenario(doc)
    assert (caught.value.path, words in caught.value.message) == (path, True), str(caught.value)


def test_a_proxy_for_may_not_overlap_another_proxy_event_on_that_endpoint() -> None:
    doc = base()
    doc["timeline"] = [
        {"at": "5m", "do": "proxy", "endpoint": "primary", "mode": "refuse"},
        {"at": "1m", "do": "proxy", "endpoint": "primary", "mode": "blackhole", "for": "5m"},
    ]
    with pytest.raises(ScenarioError) as caught:
        check_scenario(doc)
    assert caught.value.path == "timeline[1].for" and "timeline[0]" in caught.value.message
    doc["timeline"][0]["endpoint"] = "secondary"  # another endpoint: no clash
    check_scenario(doc)
    doc["timeline"][0].update(endpoint="primary", at="6m")  # right when the window ends: fine
    check_scenario(doc)


def test_the_error_is_one_line_naming_file_field_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, variant("timeline.1.mode", "emtpy"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == (
        "scenario %s: timeline[1].mode: must be one of ok, empty, nxdomain, servfail, timeout, wrong (got 'emtpy')"
        % path
    )
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "words"),
    [("{not json", "not valid JSON"), ("[]", "must be an object"), ('"x"', "must be an object")],
)
def test_a_file_that_is_not_a_scenario_is_refused(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.path == "" and words in str(caught.value) and "\n" not in str(caught.value)


def test_bad_toml_and_missing_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match=r"no such file or built-in scenario.*us-east-1-2025"):
        load_scenario("us-east-1-2024")
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "gone.json")


# ---------------------------------------------------------------- fleet


@pytest.mark.parametrize(
    ("weights", "total", "counts"),
    [
        ({"a": 1, "b": 1, "c": 1}, 10, {"a": 4, "b": 3, "c": 3}),  # remainders tie: the first name wins
        ({"a": 0.7, "b": 0.3}, 10, {"a": 7, "b": 3}),
        ({"a": 0.7, "b": 0.2, "c": 0.1}, 7, {"a": 5, "b": 1, "c": 1}),  # 4.9, 1.4, 0.7 -> 4+1, 1, 0+1
        ({"a": 5, "b": 3, "c": 2}, 1, {"a": 1, "b": 0, "c": 0}),
        ({"a": 1, "b": 0}, 3, {"a": 3, "b": 0}),
    ],
)
def test_fleet_splits_by_largest_remainder(weights: dict[str, float], total: int, counts: dict[str, int]) -> None:
    scenario = check_scenario({"name": "x", "description": "d", "duration": 60, "timeline": [],
                               "fleet": {"regions": weights}})  # fmt: skip
    fleet = fleet_for(scenario, total, seed=1)
    got = Counter(d["region"] for d in fleet)
    assert {name: got.get(name, 0) for name in weights} == counts


def test_fleet_ids_apps_and_determinism() -> None:
    scenario = load_scenario("us-east-1-2025")
    fleet = fleet_for(scenario, 10, seed=5)
    assert [d["id"] for d in fleet] == ["thermostat-%04d" % i for i in range(10)]
    assert {d["app"] for d in fleet} == {"thermostat"}
    assert Counter(d["region"] for d in fleet) == {"us-east-1": 7, "us-west-2": 3}
    assert fleet_for(scenario, 10, seed=5) == fleet
    assert len(fleet_for(scenario, None, 0)) == scenario["devices"]
    different = [fleet_for(scenario, 10, seed=s) for s in range(6)]
    assert len({json.dumps(f) for f in different}) > 1, "the seed deals the regions out"


# ---------------------------------------------------------------- expansion


def expanded(doc: dict[str, Any], devices: int = 20, seed: int = 1) -> list[dict[str, Any]]:
    scenario = check_scenario(doc)
    return expand(scenario, fleet_for(scenario, devices, seed), seed)


def test_expansion_converts_times_and_resolves_targets() -> None:
    events = expanded(base(), devices=20)
    mark, dns, wifi_down, wifi_up, desired = events
    assert mark == {"at_ms": 0, "do": "mark", "devices": None, "index": 0, "label": "start"}
    assert dns == {"at_ms": 600_000, "do": "dns", "devices": None, "index": 1, "endpoint": "primary", "mode": "empty"}
    assert wifi_down["at_ms"] == 1_200_000 and wifi_down["for_ms"] == 300_000 and len(wifi_down["devices"]) == 10
    assert wifi_down["devices"] == sorted(wifi_down["devices"])
    assert wifi_up == {"at_ms": 1_500_000, "do": "wifi", "devices": wifi_down["devices"], "index": 2, "mode": "up",
                       "auto_revert": True}  # fmt: skip
    fleet = fleet_for(check_scenario(base()), 20, 1)
    assert desired["devices"] == [d["id"] for d in fleet if d["region"] == "east"]
    assert desired["state"] == {"thermostat.setpoint_c": 20}


def test_proxy_for_reverts_to_pass_and_commands_get_defaults() -> None:
    doc = base()
    doc["timeline"] = [
        {"at": "1m", "do": "proxy", "endpoint": "secondary", "mode": "blackhole", "for": "90s"},
        {"at": "2m", "do": "command", "to": {"count": 3}, "name": "ping"},
        {"at": "3m", "do": "broker", "action": "restart"},
        {"at": "4m", "do": "broker", "action": "restart", "down_for": "1m"},
        {"at": "5m", "do": "power", "to": {"devices": ["thermostat-0003", "thermostat-0001"]}, "action": "cycle"},
    ]
    proxy, command, revert, restart0, restart1, power = expanded(doc, devices=5)
    assert revert == {"at_ms": 150_000, "do": "proxy", "devices": None, "index": 0, "endpoint": "secondary",
                      "mode": "pass", "auto_revert": True}  # fmt: skip
    assert command["args"] == {} and command["ttl_ms"] == 600_000 and len(command["devices"]) == 3
    assert restart0["down_for_ms"] == 0 and restart1["down_for_ms"] == 60_000
    assert power["devices"] == ["thermostat-0001", "thermostat-0003"]
    assert last_fault_end_ms([proxy, revert, command, restart0, restart1, power]) == 300_000


def test_at_the_same_instant_a_revert_comes_first_then_file_order() -> None:
    doc = base()
    doc["timeline"] = [
        {"at": "10m", "do": "proxy", "endpoint": "primary", "mode": "refuse"},
        {"at": "5m", "do": "proxy", "endpoint": "primary", "mode": "blackhole", "for": "5m"},
        {"at": "10m", "do": "mark", "label": "m"},
    ]
    events = expanded(doc)
    assert [(e["at_ms"], e.get("mode"), e["index"]) for e in events] == [
        (300_000, "blackhole", 1), (600_000, "pass", 1), (600_000, "refuse", 0), (600_000, None, 2)
    ]  # fmt: skip


def test_unknown_device_ids_fail_at_expansion_with_the_path() -> None:
    doc = base()
    doc["timeline"] = [{"at": 0, "do": "power", "to": {"devices": ["thermostat-0001", "thermostat-0999"]},
                        "action": "cycle"}]  # fmt: skip
    with pytest.raises(ScenarioError) as caught:
        expanded(doc, devices=5)
    assert caught.value.path == "timeline[0].to.devices[1]" and "fleet of 5" in caught.value.message


def test_count_beyond_the_fleet_takes_every_device_and_fraction_takes_at_least_one() -> None:
    doc = base()
    doc["timeline"] = [
        {"at": 0, "do": "power", "to": {"count": 50}, "action": "cycle"},
        {"at": 0, "do": "power", "to": {"fraction": 0.01}, "action": "cycle"},
        {"at": 0, "do": "power", "to": {"fraction": 0.25}, "action": "cycle"},  # 2.5 -> 3, half up
    ]
    every, one, quarter = expanded(doc, devices=10)
    assert len(every["devices"]) == 10 and len(one["devices"]) == 1 and len(quarter["devices"]) == 3


def test_the_same_seed_gives_the_same_timeline_and_another_seed_other_picks() -> None:
    scenario = load_scenario("flaky-wifi")
    fleet = fleet_for(scenario, 50, seed=7)
    first = expand(scenario, fleet, 7)
    assert expand(copy.deepcopy(scenario), copy.deepcopy(fleet), 7) == first
    assert expand(scenario, list(reversed(fleet)), 7) == first, "fleet order does not matter"
    others = [expand(scenario, fleet, seed) for seed in (8, 9, 10)]
    picks = [[e["devices"] for e in events if e["do"] == "wifi"] for events in [first, *others]]
    assert len({json.dumps(p) for p in picks}) == 4, "every seed picks other homes"
    # The actions, times and fields other than the picks are the same whatever the seed.
    shape = [[(e["at_ms"], e["do"], e["index"]) for e in events] for events in [first, *others]]
    assert all(s == shape[0] for s in shape)


def test_adding_an_event_does_not_shift_the_picks_of_the_others() -> None:
    doc = base()
    before = expanded(doc)
    doc["timeline"].insert(0, {"at": 0, "do": "power", "to": {"fraction": 0.5}, "action": "cycle"})
    after = expanded(doc)
    assert [e["devices"] for e in after if e["do"] == "wifi"] == [e["devices"] for e in before if e["do"] == "wifi"]


def test_two_copies_of_an_event_pick_independently() -> None:
    doc = base()
    event = {"at": "1m", "do": "power", "to": {"fraction": 0.5}, "action": "cycle"}
    doc["timeline"] = [event, dict(event)]
    first, second = expanded(doc, devices=40)
    assert first["devices"] != second["devices"]


def test_expand_leaves_the_scenario_alone() -> None:
    scenario = load_scenario("us-east-1-2025")
    kept = copy.deepcopy(scenario)
    for event in expand(scenario, fleet_for(scenario, 10), 1):
        if "state" in event:
            event["state"]["poked"] = True
    assert scenario == kept


# ---------------------------------------------------------------- property: any valid scenario expands

DURATION_S = 4 * 3600


def durations(max_s: int) -> st.SearchStrategy[object]:
    return st.one_of(
        st.integers(0, max_s),
        st.integers(0, max_s).map(lambda s: "%ds" % s),
        st.integers(0, max_s // 60).map(lambda m: "%dm" % m),
        st.integers(0, max_s // 3600).map(lambda h: "%dh" % h),
    )


TARGETS = st.one_of(
    st.just("all"),
    st.floats(0.01, 1.0).map(lambda f: {"fraction": f}),
    st.integers(1, 40).map(lambda n: {"count": n}),
    st.sampled_from(["east", "west"]).map(lambda r: {"region": r}),
    st.just({"app": "thermostat"}),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    at_s = draw(st.integers(0, DURATION_S))
    room = DURATION_S - at_s
    action = draw(st.sampled_from(["dns", "proxy", "broker", "wifi", "desired", "local", "command", "power", "mark"]))
    event: dict[str, Any] = {"at": at_s, "do": action}
    if action == "dns":
        event.update(
            endpoint=draw(st.sampled_from(["primary", "secondary"])),
            mode=draw(st.sampled_from(["ok", "empty", "wrong"])),
        )
    elif action == "proxy":
        event.update(endpoint="primary", mode=draw(st.sampled_from(["refuse", "blackhole", "reset"])))
        if room > 0 and draw(st.booleans()):
            event["for"] = draw(st.integers(1, room))
    elif action == "broker":
        event["action"] = draw(st.sampled_from(["kill", "restart", "stop", "start"]))
        if event["action"] == "restart" and draw(st.booleans()):
            event["down_for"] = draw(st.integers(0, room))
    elif action == "wifi":
        event.update(to=draw(TARGETS), mode="down")
        if room > 0:
            event["for"] = "%ds" % draw(st.integers(1, room))
    elif action in ("desired", "local"):
        event.update(to=draw(TARGETS), state={"thermostat.setpoint_c": draw(st.floats(5, 30))})
    elif action == "command":
        event.update(to=draw(TARGETS), name="ping", ttl=draw(durations(3600).filter(lambda d: parse_duration(d) > 0)))
    elif action == "power":
        event.update(to=draw(TARGETS), action="cycle")
    else:
        event["label"] = "m"
    return event


@settings(max_examples=60, deadline=None)
@given(timeline=st.lists(events(), max_size=12), devices=st.integers(1, 30), seed=st.integers(0, 2**32))
def test_random_valid_scenarios_expand_sorted_and_deterministic(
    timeline: list[dict[str, Any]], devices: int, seed: int
) -> None:
    doc = base()
    doc["duration"] = "4h"
    doc["timeline"] = timeline
    try:
        scenario = check_scenario(doc)
    except ScenarioError as exc:  # the one rule that spans events: proxy windows must not overlap
        assume("before this 'for' ends" not in exc.message)
        raise
    fleet = fleet_for(scenario, devices, seed)
    assert len(fleet) == devices
    out = expand(scenario, fleet, seed)
    assert out == expand(scenario, fleet, seed)
    assert len(out) == len(timeline) + sum(1 for e in timeline if "for" in e)
    assert [e["at_ms"] for e in out] == sorted(e["at_ms"] for e in out)
    ids = {d["id"] for d in fleet}
    for e in out:
        assert 0 <= e["at_ms"] <= DURATION_S * 1000
        assert (e["devices"] is None) == (e["do"] in ("dns", "proxy", "broker", "mark"))
        if e["devices"] is not None:
            assert set(e["devices"]) <= ids and e["devices"] == sorted(set(e["devices"]))
        assert not {"at", "to", "for", "ttl", "down_for"} & set(e)
    assert last_fault_end_ms(out) <= DURATION_S * 1000
