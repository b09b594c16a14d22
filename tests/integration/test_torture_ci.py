"""CI runs the ``ci`` size of every reliability harness (issue 10) and holds it to its goals."""

import pytest

from tools.cli import main
from tools.torture import HARNESSES, failed_goals, load


def test_at_least_one_harness_is_registered():
    assert HARNESSES, "tools/torture/__init__.py: HARNESSES is empty"


# Goals a harness is known to miss, each explained in docs/RELIABILITY.md. Any other miss fails,
# and a known miss that starts passing fails too (so this list cannot go stale).
KNOWN_MISSES: dict[str, list[str]] = {}  # harness -> goals it is known to miss (none now)


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_harness_meets_its_goals_at_ci_size(name):
    result = load(name).run("ci", 1, None)
    assert result["name"] == name and result["size"] == "ci"
    assert result["goals"], f"{name}: a harness without goals checks nothing"
    for figure in result["goals"]:
        assert figure in result["figures"], f"{name}: goal on a figure it does not report: {figure}"
    missed = sorted(miss.split(":")[0] for miss in failed_goals(result))
    assert missed == KNOWN_MISSES.get(name, []), failed_goals(result)


def test_failed_goals_names_each_miss():
    result = {
        "figures": {"lost": 2, "matched": 10, "crashes": 0},
        "goals": {"lost": ["==", 0], "matched": [">=", 10], "missing": ["==", 0]},
    }
    assert failed_goals(result) == ["lost: got 2, goal == 0", "missing: got None, goal == 0"]


def test_cli_lists_harnesses_and_refuses_unknown_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["torture", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in HARNESSES:
        assert name in listed
    assert main(["torture", "no-such"]) == 2
    assert "unknown harness 'no-such'" in capsys.readouterr().err
