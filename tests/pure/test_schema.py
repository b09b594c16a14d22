"""The config validator: every rule, with the exact path and message it reports."""

from device.errors import ConfigError
from device.schema import copy_data, describe, type_name, validate
from tests.pure._check import approx, raises


def _err(spec, value, path="", source=""):  # type: ignore[no-untyped-def]
    return raises(ConfigError, validate, spec, value, path, source)


# -- scalar types -------------------------------------------------------------


def test_int_accepts_int_and_rejects_str_float_and_bool():
    assert validate({"type": "int"}, 7) == 7
    exc = _err({"type": "int"}, "7", "link.endpoints[1].port")
    assert exc.path == "link.endpoints[1].port"
    assert exc.message == "expected int, got str"
    assert _err({"type": "int"}, 7.0).message == "expected int, got float"
    assert _err({"type": "int"}, True).message == "expected int, got bool"


def test_float_takes_ints_and_converts_them():
    out = validate({"type": "float"}, 3)
    assert isinstance(out, float)
    assert out == 3.0
    assert approx(validate({"type": "float"}, 0.25), 0.25)
    assert _err({"type": "float"}, False).message == "expected float, got bool"
    assert _err({"type": "float"}, "1.5").message == "expected float, got str"


def test_float_rejects_nan_and_infinity():
    for bad in (float("nan"), float("inf"), float("-inf")):
        exc = _err({"type": "float"}, bad, "sim.room.initial_c")
        assert exc.path == "sim.room.initial_c"
        assert exc.message.startswith("must be a finite number, got ")


def test_bool_is_strict():
    assert validate({"type": "bool"}, False) is False
    assert _err({"type": "bool"}, 1).message == "expected bool, got int"
    assert _err({"type": "bool"}, "true").message == "expected bool, got str"


def test_str_and_any():
    assert validate({"type": "str"}, "x") == "x"
    assert _err({"type": "str"}, 5).message == "expected str, got int"
    assert validate({"type": "any"}, [1, {"a": 2}]) == [1, {"a": 2}]
    assert validate({}, 5) == 5  # no type means any


def test_type_list_tries_each_kind_in_order():
    spec = {"type": ["int", "str"], "min": 0, "max": 255}
    assert validate(spec, 4) == 4
    assert validate(spec, "led") == "led"
    assert _err(spec, 4.5).message == "expected int or str, got float"
    assert _err(spec, 300).message == "must be <= 255, got 300"


def test_null_needs_nullable():
    assert validate({"type": "int", "nullable": True}, None) is None
    exc = _err({"type": "int"}, None, "heap_budget_bytes")
    assert exc.path == "heap_budget_bytes"
    assert exc.message == "expected int, got null"


# -- ranges and choices -------------------------------------------------------


def test_min_max_messages():
    spec = {"type": "int", "min": 1, "max": 65535}
    assert validate(spec, 1) == 1
    assert validate(spec, 65535) == 65535
    assert _err(spec, 70000).message == "must be <= 65535, got 70000"
    assert _err(spec, 0).message == "must be >= 1, got 0"


def test_exclusive_bounds():
    spec = {"type": "float", "gt": 0, "lt": 10}
    assert validate(spec, 5) == 5.0
    assert _err(spec, 0).message == "must be > 0, got 0.0"
    assert _err(spec, 10).message == "must be < 10, got 10.0"


def test_choices_message_lists_them_in_spec_order():
    spec = {"type": "str", "choices": ["heat", "cool"]}
    assert validate(spec, "cool") == "cool"
    exc = _err(spec, "hot", "apps.thermostat.mode")
    assert exc.path == "apps.thermostat.mode"
    assert exc.message == "must be one of heat, cool, got 'hot'"


# -- dicts --------------------------------------------------------------------

_STORE = {
    "type": "dict",
    "fields": {
        "backend": {"type": "str", "default": "memory"},
        "budget_bytes": {"type": "int", "min": 4096, "default": 8192},
        "path": {"type": "str", "required": True},
    },
}


def test_fields_fill_defaults_and_keep_values():
    out = validate(_STORE, {"path": "/x"})
    assert out == {"backend": "memory", "budget_bytes": 8192, "path": "/x"}


def test_unknown_key_names_the_known_ones():
    exc = _err(_STORE, {"path": "/x", "foo": 1}, "storage")
    assert exc.path == "storage"
    assert exc.message == "unknown key 'foo' (known: backend, budget_bytes, path)"


def test_required_field_is_reported_at_its_own_path():
    exc = _err(_STORE, {}, "storage")
    assert exc.path == "storage.path"
    assert exc.message == "required"
    assert _err(_STORE, {}).path == "path"


def test_absent_optional_field_without_default_is_left_out():
    spec = {"type": "dict", "fields": {"a": {"type": "int"}}}
    assert validate(spec, {}) == {}


def test_default_is_a_deep_copy_and_fills_nested_defaults():
    spec = {
        "type": "dict",
        "fields": {
            "room": {"type": "dict", "default": {}, "fields": {"initial_c": {"type": "float", "default": 18}}},
            "tags": {"type": "list", "default": ["a"]},
        },
    }
    first = validate(spec, {})
    assert first == {"room": {"initial_c": 18.0}, "tags": ["a"]}
    assert isinstance(first["room"]["initial_c"], float)
    first["tags"].append("b")
    assert spec["fields"]["tags"]["default"] == ["a"]
    assert validate(spec, {})["tags"] == ["a"]


def test_values_checks_every_free_key():
    spec = {"type": "dict", "values": {"type": "int", "min": 0}}
    assert validate(spec, {"a": 1, "b": 2}) == {"a": 1, "b": 2}
    exc = _err(spec, {"a": 1, "b": -1}, "pins")
    assert exc.path == "pins.b"
    assert exc.message == "must be >= 0, got -1"


def test_fields_and_values_together():
    spec = {"type": "dict", "fields": {"driver": {"type": "str", "required": True}}, "values": {"type": "bool"}}
    assert validate(spec, {"driver": "relay", "active_low": True}) == {"driver": "relay", "active_low": True}
    exc = _err(spec, {"driver": "relay", "active_low": "yes"}, "hw.heater")
    assert exc.path == "hw.heater.active_low"
    assert exc.message == "expected bool, got str"
    assert _err(spec, {"active_low": True}, "hw.heater").path == "hw.heater.driver"


def test_unknown_keys_at_several_depths():
    spec = {
        "type": "dict",
        "fields": {
            "sim": {
                "type": "dict",
                "fields": {
                    "faults": {
                        "type": "list",
                        "items": {"type": "dict", "fields": {"kind": {"type": "str"}}},
                    }
                },
            }
        },
    }
    assert _err(spec, {"simm": {}}).path == ""
    assert _err(spec, {"sim": {"fault": []}}).path == "sim"
    exc = _err(spec, {"sim": {"faults": [{"kind": "nan"}, {"kind": "nan", "part": "x"}]}})
    assert exc.path == "sim.faults[1]"
    assert exc.message == "unknown key 'part' (known: kind)"


def test_free_dict_is_copied():
    data = {"a": {"b": [1]}}
    out = validate({"type": "dict"}, data)
    assert out == data
    out["a"]["b"].append(2)
    assert data == {"a": {"b": [1]}}


# -- lists --------------------------------------------------------------------


def test_items_paths_and_counts():
    spec = {"type": "list", "items": {"type": "int", "max": 9}, "min_items": 1, "max_items": 3}
    assert validate(spec, [1, 2]) == [1, 2]
    exc = _err(spec, [1, 20], "sim.faults")
    assert exc.path == "sim.faults[1]"
    assert exc.message == "must be <= 9, got 20"
    assert _err(spec, [], "x").message == "needs at least 1 item(s), got 0"
    assert _err(spec, [1, 2, 3, 4], "x").message == "allows at most 3 item(s), got 4"
    assert _err(spec, {"a": 1}, "x").message == "expected list, got dict"


def test_nested_list_of_dicts_path():
    spec = {
        "type": "dict",
        "fields": {
            "link": {
                "type": "dict",
                "fields": {
                    "endpoints": {
                        "type": "list",
                        "items": {"type": "dict", "fields": {"port": {"type": "int", "max": 65535}}},
                    }
                },
            }
        },
    }
    exc = _err(spec, {"link": {"endpoints": [{"port": 1}, {"port": 70000}]}})
    assert exc.path == "link.endpoints[1].port"
    assert str(exc) == "link.endpoints[1].port: must be <= 65535, got 70000"


# -- check hooks and sources --------------------------------------------------


def _even(value, path):  # type: ignore[no-untyped-def]
    if value % 2:
        raise ConfigError(path, "must be even, got " + str(value))


def test_check_runs_on_the_normalized_value_with_its_path():
    spec = {"type": "dict", "fields": {"n": {"type": "int", "check": _even}}}
    assert validate(spec, {"n": 4}) == {"n": 4}
    exc = _err(spec, {"n": 3}, "apps.x")
    assert exc.path == "apps.x.n"
    assert exc.message == "must be even, got 3"


def test_source_is_attached_to_every_error():
    spec = {"type": "dict", "fields": {"n": {"type": "int", "check": _even}}}
    exc = _err(spec, {"n": 3}, "", "boards/x.json")
    assert exc.source == "boards/x.json"
    assert str(exc) == "boards/x.json: n: must be even, got 3"
    exc = _err({"type": "int"}, "a", "", "boards/x.json")
    assert str(exc) == "boards/x.json: (top): expected int, got str"


def test_unknown_type_in_spec_is_a_config_error():
    assert "unknown type" in _err({"type": "integer"}, 1).message


# -- helpers ------------------------------------------------------------------


def test_type_name_and_copy_data():
    assert type_name(None) == "null"
    assert type_name(True) == "bool"
    assert type_name(1) == "int"
    assert type_name([1]) == "list"
    src = {"a": [{"b": 1}]}
    dup = copy_data(src)
    assert dup == src
    dup["a"][0]["b"] = 2
    assert src["a"][0]["b"] == 1


def test_describe_outlines_fields():
    lines = describe(_STORE)
    assert lines[0] == "backend: str = 'memory'"
    assert lines[1] == "budget_bytes: int = 8192 min 4096"
    assert lines[2] == "path: str (required)"
