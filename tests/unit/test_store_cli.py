"""``brickproof store`` as a user meets it after an outage: stats and dump of a real store on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.cli import main

REPO = Path(__file__).resolve().parents[2]
# (board, store path under tmp): the Raspberry Pi profile (sqlite) and the microcontroller one (log on flash).
BOARDS = [("host_pi.json", "pi/store.sqlite"), ("host_flash_sim.json", "flash/store")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("board_name", "store_rel"), BOARDS)
def test_a_run_leaves_a_store_that_stats_and_dump_show(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, board_name: str, store_rel: str
) -> None:
    board = str(REPO / "boards" / board_name)
    store = str(tmp_path / store_rel)
    code, out, err = run_cli(
        capsys, "run", "--board", board, "--store", store, "--for", "1800", "--speed", "max", "--json", "--quiet"
    )
    assert code == 0, err
    summary = json.loads(out)
    appended = summary["store_counters"]["appended"]
    assert appended > 0

    before = _files(tmp_path)
    code, out, err = run_cli(capsys, "store", "--board", board, "--store", store, "stats")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["boot_id"] == 1  # one run; inspecting is not a boot
    assert stats["counters"]["appended"] == appended
    assert stats["outbox"]["records"] == summary["outbox_records"]
    assert stats["outbox"]["bytes"] == summary["outbox_bytes"]
    assert stats["outbox"]["first_seq"] == 1
    assert stats["next_seq"] == stats["outbox"]["last_seq"] + 1
    assert stats["state_keys"] >= 4  # mode, setpoints, schedule seeded at boot

    code, out, err = run_cli(capsys, "store", "--board", board, "--store", store, "dump", "--limit", "5")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, 6))
    assert {"seq", "lane", "boot", "created_ms", "payload", "size"} <= set(records[0])

    code, out, _ = run_cli(capsys, "store", "--board", board, "--store", store, "dump")
    assert code == 0
    assert len(out.splitlines()) == stats["outbox"]["records"]
    assert _files(tmp_path) == before  # inspection wrote nothing


@pytest.mark.parametrize(("board_name", "store_rel"), BOARDS)
def test_a_second_run_continues_the_sequence_and_counts_a_boot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, board_name: str, store_rel: str
) -> None:
    board = str(REPO / "boards" / board_name)
    store = str(tmp_path / store_rel)
    for _ in range(2):
        code, _, err = run_cli(
            capsys, "run", "--board", board, "--store", store, "--for", "600", "--speed", "max", "--quiet"
        )
        assert code == 0, err
    code, out, _ = run_cli(capsys, "store", "--board", board, "--store", store, "stats")
    stats = json.loads(out)
    assert stats["boot_id"] == 2
    code, out, _ = run_cli(capsys, "store", "--board", board, "--store", store, "dump")
    records = [json.loads(line) for line in out.splitlines()]
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs))
    assert {r["boot"] for r in records} == {1, 2}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["store", "--board", str(REPO / "boards" / "host_sim.json"), "stats"], "keeps nothing"),
        (
            ["store", "--board", str(REPO / "boards" / "host_pi.json"), "--store", "/nonexistent/x.sqlite", "stats"],
            "no store at",
        ),
        (["store", "--board", str(REPO / "boards" / "host_pi.json"), "dump", "--limit", "0"], "must be > 0"),
        (["store", "--board", str(REPO / "boards" / "host_pi.json"), "frob"], "invalid choice"),
        (["run", "--board", str(REPO / "boards" / "host_sim.json"), "--store", "x", "--for", "60"], "--store needs"),
    ],
)
def test_bad_store_arguments_give_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
