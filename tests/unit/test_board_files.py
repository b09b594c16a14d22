"""Board files on disk: every shipped board loads, fixtures behave, extends edge cases in tmp dirs."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.board import deep_merge, load_board
from device.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
BOARDS = sorted((REPO / "boards").glob("*.json"))
FIXTURES = REPO / "tests" / "data" / "boards"
GOOD_FIXTURES = sorted(p for p in FIXTURES.rglob("*.json") if not p.name.startswith("bad_"))
BAD_FIXTURES = sorted(FIXTURES.glob("bad_*.json"))


def _write(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_boards_folder_is_not_empty():
    assert [p.name for p in BOARDS if p.name == "host_sim.json"] == ["host_sim.json"]


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_every_shipped_board_loads(path: Path) -> None:
    board = load_board(str(path))
    assert board["name"]
    assert board["_source"] == str(path)
    # the result is plain JSON data (the CLI prints it, the store may persist it)
    assert json.loads(json.dumps(board)) == board


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_shipped_boards_are_tidy_json(path: Path) -> None:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    assert data.get("description"), "every board says what it is"


@pytest.mark.parametrize("path", GOOD_FIXTURES, ids=lambda p: p.name)
def test_good_fixtures_load(path: Path) -> None:
    assert load_board(str(path))["name"]


@pytest.mark.parametrize("path", BAD_FIXTURES, ids=lambda p: p.name)
def test_bad_fixtures_fail_with_the_file_named(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_board(str(path))
    # the file at fault is the one loaded or, for extends errors, a file in its chain
    assert info.value.source.endswith(".json")
    assert info.value.source in str(info.value)


def test_host_sim_boots_a_simulated_world() -> None:
    # The shape the loader returns is the shape the runtime builds from.
    from device.boot import build_env

    board = load_board(str(REPO / "boards" / "host_sim.json"))
    env, world = build_env(board)
    assert world is not None
    assert env.hw.names() == ["cooler", "heater", "room_sensor"]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="cannot read board file: no such file") as info:
        load_board(str(path))
    assert str(path) in str(info.value)


def test_directory_is_not_a_board(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read board file"):
        load_board(str(tmp_path))


def test_empty_file_is_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_board(str(path))
    assert "empty.json" in str(info.value)


def test_long_extends_chain_and_diamond(tmp_path: Path) -> None:
    _write(tmp_path / "root.json", {"name": "root", "pins": {"a": 1}, "storage": {"budget_bytes": 8192}})
    _write(tmp_path / "left.json", {"extends": "root.json", "name": "left", "pins": {"b": 2}})
    _write(tmp_path / "right.json", {"extends": "root.json", "name": "right", "pins": {"a": 5}})
    top = _write(tmp_path / "deep" / "top.json", {"extends": ["../left.json", "../right.json"], "name": "top"})
    board = load_board(str(top))
    # a diamond is not a cycle; right (later in the list) wins over left and root
    assert board["pins"] == {"a": 5, "b": 2}
    assert board["storage"]["budget_bytes"] == 8192
    assert board["name"] == "top"


def test_three_file_cycle_names_every_file(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", {"extends": "b.json", "name": "a"})
    _write(tmp_path / "b.json", {"extends": "sub/c.json", "name": "b"})
    _write(tmp_path / "sub" / "c.json", {"extends": "../a.json", "name": "c"})
    with pytest.raises(ConfigError) as info:
        load_board(str(tmp_path / "a.json"))
    exc = info.value
    assert exc.path == "extends"
    chain = exc.message.removeprefix("extends cycle: ").split(" -> ")
    assert [Path(p).name for p in chain] == ["a.json", "b.json", "c.json", "a.json"]
    assert exc.source.endswith("c.json")


def test_error_in_parent_json_names_the_parent(tmp_path: Path) -> None:
    (tmp_path / "base.json").write_text("{oops")
    child = _write(tmp_path / "child.json", {"extends": "base.json", "name": "c"})
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        load_board(str(child))
    assert info.value.source.endswith("base.json")


def test_child_can_switch_off_the_parents_sim(tmp_path: Path) -> None:
    _write(tmp_path / "base.json", {"name": "b", "hw": {"t": {"driver": "sim_thermometer"}}, "sim": {"seed": 4}})
    child = _write(tmp_path / "real.json", {"extends": "base.json", "name": "real", "sim": None})
    assert load_board(str(child))["sim"] is None


_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12,
)
_objects = st.dictionaries(st.text(max_size=3), _json, max_size=4)


@given(_objects, _objects)
def test_deep_merge_child_wins_and_inputs_are_untouched(base: dict, over: dict) -> None:
    base_before = json.dumps(base, sort_keys=True)
    over_before = json.dumps(over, sort_keys=True)
    out = deep_merge(base, over)
    assert json.dumps(base, sort_keys=True) == base_before
    assert json.dumps(over, sort_keys=True) == over_before
    assert set(out) == set(base) | set(over)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert out[key] == deep_merge(base[key], value)
        else:
            assert out[key] == value
    for key in set(base) - set(over):
        assert out[key] == base[key]


@given(_objects)
def test_deep_merge_identities(data: dict) -> None:
    assert deep_merge({}, data) == data
    assert deep_merge(data, {}) == data
    assert deep_merge(data, data) == data
