"""``brickproof bench tick``: a row per app, the camera's too, on RAM clips and on clip files."""

from __future__ import annotations

from pathlib import Path

from tools.bench import tick


def test_every_app_has_a_row_and_the_flash_camera_runs_the_camera_app() -> None:
    assert {"thermostat", "bed", "camera", "camera_flash"} <= set(tick.available())
    assert tick.APP_OF["camera_flash"] == "camera"


def test_camera_rows_report_tick_latency_from_a_private_store(tmp_path: Path) -> None:
    ram = tick.cpython_figures("camera", tick.APPS["camera"][0], 60)
    assert ram["cpython_ticks"] == 301 and ram["cpython_tick_us_p99"] >= ram["cpython_tick_us_p50"] > 0
    board = tick.APPS["camera_flash"][0]
    assert tick._file_backed(board) and not tick._file_backed(tick.APPS["camera"][0])
    flash = tick.cpython_figures("camera", board, 60, str(tmp_path / "store"))
    assert flash["cpython_ticks"] == 301
    assert sorted(p.name for p in (tmp_path / "store" / "clips").iterdir()) == ["1.clip", "2.clip"]
