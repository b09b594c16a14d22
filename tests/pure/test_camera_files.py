"""The camera app with clips on flash (``clip_store`` files) on host_camera_sim: reboot, full flash, settings.

The board keeps its memory store and gets ``clip_dir`` in a fresh ``/tmp``
directory (``auto`` then means files): the clip files are all that survives
a "reboot", so clip ids must go on from the files found. (Loading the log
store as well would not fit the small-heap run; the integration test and
``test_where_clips_live_is_resolved_at_config_time`` cover the store's
directory.) Runs under MicroPython too.
"""

import asyncio
import os

from device import config
from device.apps.camera_settings import CLIP_FILE_EXTRA
from device.boot import Device, build_env
from device.errors import ConfigError
from device.store.clipfiles import FOOTER_BYTES, META_MAX
from tests.pure._check import raises, repo_path
from tests.pure.test_clipfiles import FullFiles, _cleanup, _fresh_dir

BOARD = "boards/host_camera_sim.json"


def _board(path=None, edit=None):  # type: ignore[no-untyped-def]
    board, _ = config.load(repo_path(BOARD), ["camera"])
    if path is not None:
        board["apps"]["camera"]["clip_dir"] = path + "/clips"
    if edit is not None:
        edit(board)
    return board


def _boot(board):  # type: ignore[no-untyped-def]
    settings = config.configure_apps(board, ["camera"])
    env, world = build_env(board)
    return Device(env, settings, world), env


def _run(device, env, ms, before=None):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        if before is not None:
            before(device.apps[0])
        await env.clock.advance(ms)
        records = await env.store.read_outbox(100000)
        summary = device.summary()
        await device.stop()
        return records, summary

    return asyncio.run(main())


def _events(records, kind):  # type: ignore[no-untyped-def]
    return [r.payload for r in records if r.lane == "event" and r.payload.get("type") == kind]


def test_clips_in_files_survive_a_reboot_and_ids_go_on():
    path = _fresh_dir()
    try:
        device, env = _boot(_board(path))
        app = device.apps[0]
        assert app.clips.kind == "files" and app.settings["clip_dir"] == path + "/clips"
        records, summary = _run(device, env, 60000)  # two people walk by
        assert [e["clip"] for e in _events(records, "motion")] == [1, 2]
        assert sorted(os.listdir(path + "/clips")) == ["1.clip", "2.clip"]
        first = app.clips.data(1)
        assert len(first) == 7 * 48 * 32 and app.ring.get(1).data is None  # type: ignore[union-attr]
        assert summary["camera"]["ring"]["store"] == "files" and summary["camera"]["clips_done"] == 2
        assert app.status()["clip_store"] == "files"

        again, env2 = _boot(_board(path))  # a reboot on the same flash
        app2 = again.apps[0]
        records2, _ = _run(again, env2, 60000)
        assert app2.ring.ids() == [1, 2, 3, 4] and app2.clips.torn == 0
        assert app2.clips.data(1) == first
        assert [e["clip"] for e in _events(records2, "motion")][-2:] == [3, 4]
    finally:
        _cleanup()


def test_a_full_flash_keeps_the_event_drops_the_clip_and_the_camera_runs_on():
    path = _fresh_dir()
    try:
        device, env = _boot(_board(path))
        app = device.apps[0]

        def full(app):  # type: ignore[no-untyped-def]
            files = FullFiles(app.clips.files.root)
            files.capacity = 0  # nothing more fits on the flash
            app.clips.files = files

        records, summary = _run(device, env, 60000, full)
        assert [e["clip"] for e in _events(records, "motion")] == [1, 2]  # the cloud still hears of both
        dropped = _events(records, "clip_dropped")
        assert [(d["clip"], d["errno"]) for d in dropped] == [(1, 28), (2, 28)]
        assert app.clips_dropped == 2 and app.ring.ids() == [] and os.listdir(path + "/clips") == []
        assert summary["task_crashes"] == 0 and app.frames >= 299  # kept running all minute
        assert app.health() == "degraded:clips"
    finally:
        _cleanup()


def test_where_clips_live_is_resolved_at_config_time():
    def ram(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["clip_store"] = "ram"

    def files_no_dir(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["clip_store"] = "files"

    def tight(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["clip_budget_bytes"] = 7 * 48 * 32 + 64  # one RAM clip, not one file

    assert config.configure_apps(_board(), ["camera"])["camera"]["clip_store"] == "ram"  # memory store
    assert config.configure_apps(_board("/tmp/x", ram), ["camera"])["camera"]["clip_store"] == "ram"
    settings = config.configure_apps(_board("/tmp/x"), ["camera"])["camera"]
    assert settings["clip_store"] == "files" and settings["clip_dir"] == "/tmp/x/clips"
    assert config.configure_apps(_board(None, tight), ["camera"])["camera"]["clip_store"] == "ram"
    exc = raises(ConfigError, config.configure_apps, _board(None, files_no_dir), ["camera"])
    assert "apps.camera.clip_store" in str(exc)
    exc = raises(ConfigError, config.configure_apps, _board("/tmp/x", tight), ["camera"])
    assert "apps.camera.clip_budget_bytes" in str(exc)
    for backend, path, clip_dir in (
        ("log", "/f/store", "/f/store/clips"),
        ("sqlite", "/f/db.sqlite", "/f/db.sqlite.clips"),
    ):
        board = _board()
        board["storage"] = dict(board["storage"], backend=backend, path=path)
        settings = config.configure_apps(board, ["camera"])["camera"]
        assert settings["clip_store"] == "files" and settings["clip_dir"] == clip_dir
    board = _board(None, tight)
    board["storage"] = dict(board["storage"], backend="log", path="/f/store")
    exc = raises(ConfigError, config.configure_apps, board, ["camera"])
    assert "apps.camera.clip_budget_bytes" in str(exc)
    assert CLIP_FILE_EXTRA == META_MAX + FOOTER_BYTES


def test_an_unusable_clip_directory_falls_back_to_the_newest_clip_in_ram():
    path = _fresh_dir()
    try:
        os.mkdir(path)
        with open(path + "/file", "wb") as f:
            f.write(b"not a directory")

        def blocked(board):  # type: ignore[no-untyped-def]
            board["apps"]["camera"]["clip_dir"] = path + "/file/clips"

        device, env = _boot(_board(None, blocked))
        app = device.apps[0]
        records, summary = _run(device, env, 60000)
        assert [e["clip"] for e in _events(records, "motion")] == [1, 2]
        assert app.clips.kind == "ram" and app.ring.ids() == [2]  # one clip's room: the newest
        assert app.health() == "degraded:clips" and summary["task_crashes"] == 0
        assert app.bulk_sources[0].clips is app.clips
    finally:
        _cleanup()
