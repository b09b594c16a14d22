"""Shadow documents and the per-key merge (device/core/shadow.py): every policy, outages, private keys."""

import json

from device.core import shadow
from device.hlc import make_stamp
from device.store.base import StateEntry
from tests.pure._check import raises

T0 = 1_700_000_000_000  # wall ms


def entry(key, value, stamp, version=1, origin="local"):  # type: ignore[no-untyped-def]
    return StateEntry(key, value, version, origin, stamp)


def desired(version, **state):  # type: ignore[no-untyped-def]
    """``desired(3, mode=("heat", stamp))``: a parsed desired document."""
    out = {}
    for key, (value, stamp) in state.items():
        out[key] = {"value": value, "stamp": stamp}
    return {"version": version, "state": out}


def run_merge(local, doc, policies=None, default="latest_wins", last_applied=0):  # type: ignore[no-untyped-def]
    return shadow.merge(local, doc, shadow.check_policies(policies), default, last_applied)


# -- latest_wins -------------------------------------------------------------------


def test_latest_wins_newer_cloud_stamp_applies():
    local = {"setpoint_c": entry("setpoint_c", 20.0, make_stamp(T0))}
    changes, report, applied = run_merge(local, desired(1, setpoint_c=(22.5, make_stamp(T0 + 1000))))
    assert changes == [("setpoint_c", 22.5, make_stamp(T0 + 1000))]
    assert report == [] and applied == 1


def test_latest_wins_older_cloud_stamp_is_reported_back():
    local = {"setpoint_c": entry("setpoint_c", 20.0, make_stamp(T0 + 5000))}
    changes, report, applied = run_merge(local, desired(4, setpoint_c=(22.5, make_stamp(T0))))
    assert changes == [] and report == ["setpoint_c"] and applied == 4


def test_latest_wins_tie_goes_to_the_device():
    stamp = make_stamp(T0, 3)
    local = {"mode": entry("mode", "cool", stamp)}
    changes, report, _ = run_merge(local, desired(1, mode=("heat", stamp)))
    assert changes == [] and report == ["mode"]


def test_latest_wins_without_a_stamp_loses_to_a_local_value_but_fills_a_missing_key():
    local = {"mode": entry("mode", "cool", 1)}
    changes, report, _ = run_merge(local, desired(1, mode=("heat", None), fan=("auto", None)))
    assert changes == [("fan", "auto", None)]
    assert report == ["mode"]


def test_equal_values_change_nothing_whatever_the_stamps():
    local = {"mode": entry("mode", "heat", make_stamp(T0)), "on": entry("on", True, 5)}
    changes, report, applied = run_merge(
        local, desired(2, mode=("heat", make_stamp(T0 + 1)), on=(True, make_stamp(T0 + 1)))
    )
    assert changes == [] and report == [] and applied == 2


def test_values_compare_as_json_true_is_not_one():
    local = {"on": entry("on", 1, 5), "n": entry("n", 2, 5), "d": entry("d", {"a": [1, 2]}, 5)}
    later = make_stamp(T0)
    changes, _, _ = run_merge(local, desired(1, on=(True, later), n=(2.0, later), d=({"a": [1, 2]}, later)))
    assert changes == [("on", True, later)]  # 2 == 2.0 and equal dicts are no change


# -- device_wins ----------------------------------------------------------------------


def test_device_wins_never_applies_and_reports_the_device_value():
    local = {"limits.max_c": entry("limits.max_c", 28.0, 1)}
    later = make_stamp(T0 + 10**6)
    changes, report, applied = run_merge(
        local, desired(9, **{"limits.max_c": (40.0, later)}), policies={"limits.*": "device_wins"}
    )
    assert changes == [] and report == ["limits.max_c"] and applied == 9


def test_device_wins_with_no_local_value_applies_nothing():
    changes, report, _ = run_merge({}, desired(1, lock=(True, 5)), default="device_wins")
    assert changes == [] and report == []


# -- cloud_wins -----------------------------------------------------------------------


def test_cloud_wins_applies_a_newer_document_even_with_an_older_stamp():
    local = {"schedule": entry("schedule", [], make_stamp(T0 + 5000))}
    changes, report, applied = run_merge(
        local,
        desired(3, schedule=([{"at": "07:00"}], make_stamp(T0))),
        policies={"schedule": "cloud_wins"},
        last_applied=2,
    )
    assert changes == [("schedule", [{"at": "07:00"}], make_stamp(T0))]
    assert report == [] and applied == 3


def test_cloud_wins_does_not_apply_a_document_already_applied():
    local = {"schedule": entry("schedule", ["local edit"], 99)}
    changes, report, applied = run_merge(
        local, desired(3, schedule=(["cloud"], make_stamp(T0))), policies={"schedule": "cloud_wins"}, last_applied=3
    )
    assert changes == [] and report == ["schedule"] and applied == 3
    # an older version than the last applied one does not move it back
    _, _, applied = run_merge(local, desired(1, schedule=(["x"], 1)), default="cloud_wins", last_applied=3)
    assert applied == 3


# -- outage ---------------------------------------------------------------------------


def test_a_local_change_during_an_outage_survives_the_stale_desired_on_reconnect():
    before = make_stamp(T0)
    doc = desired(5, setpoint_c=(21.0, before), schedule=(["weekday"], before), away=(False, before))
    policies = {"schedule": "cloud_wins", "away": "latest_wins"}
    # online: the document is applied
    changes, _, last = run_merge({}, doc, policies)
    assert [c[0] for c in changes] == ["away", "schedule", "setpoint_c"] and last == 5
    local = {}
    for key, value, stamp in changes:
        local[key] = entry(key, value, stamp, origin="cloud")
    # outage: the owner changes all three on the LAN (stamps from the device's clock, later)
    during = make_stamp(T0 + 3_600_000)
    for key, value in (("setpoint_c", 23.5), ("schedule", ["holiday"]), ("away", True)):
        local[key] = entry(key, value, during, version=2, origin="lan")
    # reconnect: the broker hands over the same retained document
    changes, report, last = run_merge(local, doc, policies, last_applied=last)
    assert changes == []
    assert report == ["away", "schedule", "setpoint_c"] and last == 5


def test_a_device_without_wall_time_still_keeps_its_outage_change():
    # It observed the cloud's stamp when applying it, so its own later stamps are larger.
    cloud = make_stamp(T0, 2)
    local = {"setpoint_c": entry("setpoint_c", 19.0, cloud + 1, version=2)}
    changes, report, _ = run_merge(local, desired(1, setpoint_c=(21.0, cloud)))
    assert changes == [] and report == ["setpoint_c"]


# -- private keys, policies, parsing -------------------------------------------------


def test_private_keys_are_never_applied_nor_reported():
    local = {
        "_link.lkg.primary": entry("_link.lkg.primary", ["10.0.0.7"], 5),
        "mode": entry("mode", "heat", 5, version=3),
    }
    doc = desired(2, **{"_link.lkg.primary": (["6.6.6.6"], make_stamp(T0)), "_sync.desired_version": (99, None)})
    changes, report, _ = run_merge(local, doc, default="cloud_wins")
    assert changes == [] and report == []
    assert sorted(shadow.private_keys(doc)) == ["_link.lkg.primary", "_sync.desired_version"]
    rep = shadow.reported_doc(local)
    assert rep == {"version": 3, "state": {"mode": {"value": "heat", "version": 3, "stamp": 5, "origin": "local"}}}
    assert shadow.reported_version(local) == 3


def test_reported_version_grows_with_every_put_of_a_reported_key():
    local = {"a": entry("a", 1, 1, version=4), "b": entry("b", 2, 2, version=1)}
    v = shadow.reported_version(local)
    local["b"] = entry("b", 3, 3, version=2)
    assert shadow.reported_version(local) == v + 1
    local["_x"] = entry("_x", 0, 4, version=50)
    assert shadow.reported_version(local) == v + 1


def test_policy_lookup_exact_then_longest_prefix_then_default():
    policies = shadow.check_policies({"limits.*": "device_wins", "limits.fan*": "cloud_wins", "mode": "cloud_wins"})
    assert shadow.policy_for("mode", policies, "latest_wins") == "cloud_wins"
    assert shadow.policy_for("limits.max_c", policies, "latest_wins") == "device_wins"
    assert shadow.policy_for("limits.fan_max", policies, "latest_wins") == "cloud_wins"
    assert shadow.policy_for("setpoint_c", policies, "latest_wins") == "latest_wins"
    raises(ValueError, shadow.check_policies, {"mode": "owner_wins"})
    raises(ValueError, shadow.check_policy, "newest")
    assert shadow.check_policies(None) == {}


def test_parse_desired_accepts_bytes_str_and_dicts():
    doc = {"version": 7, "state": {"mode": {"value": "heat", "stamp": 123}, "fan": {"value": None}}}
    for form in (json.dumps(doc).encode(), json.dumps(doc), doc):
        parsed = shadow.parse_desired(form)
        assert parsed == {
            "version": 7,
            "state": {"mode": {"value": "heat", "stamp": 123}, "fan": {"value": None, "stamp": None}},
        }
    assert shadow.parse_desired(b"") is None  # a cleared retained document
    assert shadow.parse_desired(b'{"version": 0}') == {"version": 0, "state": {}}


def test_parse_desired_refuses_malformed_documents():
    bad = (
        b"not json",
        b"[1, 2]",
        b'{"state": {}}',
        b'{"version": -1, "state": {}}',
        b'{"version": true, "state": {}}',
        b'{"version": 1.5, "state": {}}',
        b'{"version": 1, "state": []}',
        b'{"version": 1, "state": {"mode": "heat"}}',
        b'{"version": 1, "state": {"mode": {"stamp": 3}}}',
        b'{"version": 1, "state": {"mode": {"value": 1, "stamp": "x"}}}',
        b'{"version": 1, "state": {"mode": {"value": 1, "stamp": -4}}}',
        b'{"version": 1, "state": {"": {"value": 1}}}',
        b"\xff\xfe",
    )
    for data in bad:
        raises(ValueError, shadow.parse_desired, data)


def test_merge_order_does_not_depend_on_dict_order():
    keys = ["k%d" % i for i in range(20)]
    state = {}
    for key in reversed(keys):
        state[key] = {"value": 1, "stamp": 5}
    changes, _, _ = run_merge({}, {"version": 1, "state": state})
    assert [c[0] for c in changes] == sorted(keys)
