"""``brickproof flash`` stamps the profile it writes, and the board's own loader takes that stamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from device import config
from tools.flash import REPO, STAMP, board_json, profile_stamp

BOARDS = sorted(p.name for p in (REPO / "boards").glob("*.json"))


@pytest.mark.parametrize("name", BOARDS)
def test_the_flashed_stamp_vouches_for_the_flashed_profile(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    board, profile = board_json(str(REPO / "boards" / name))
    (tmp_path / "board.json").write_bytes(profile)
    (tmp_path / STAMP).write_bytes(profile_stamp(board, profile))
    full = config.load(str(tmp_path / "board.json"), [])[0]
    expected = (full, config.configure_apps(full, sorted(full["apps"])))
    full["_source"] = "board.json"  # where main.py reads it on the board (this test reads it from tmp_path)

    def no_full_check(path: str, app_names: list[str]) -> tuple[dict[str, object], dict[str, object]]:
        raise AssertionError("the stamp should have vouched: " + path)

    monkeypatch.setattr(config, "load", no_full_check)
    assert config.load_checked(str(tmp_path / "board.json")) == expected


def test_a_profile_edited_after_the_flash_is_not_vouched_for(tmp_path: Path) -> None:
    board, profile = board_json(str(REPO / "boards/esp32_generic.json"))
    (tmp_path / STAMP).write_bytes(profile_stamp(board, profile))
    (tmp_path / "board.json").write_bytes(profile.replace(b'"budget_bytes":65536', b'"budget_bytes":32768'))
    board2, _ = config.load_checked(str(tmp_path / "board.json"))
    assert board2["storage"]["budget_bytes"] == 32768
