"""The camera task on the host_camera_sim board in simulated time: events, clips, snapshot, faults, settings."""

import asyncio

from device import config
from device.boot import Device, build_env
from device.errors import ConfigError
from tests.pure._check import raises, repo_path

BOARD = "boards/host_camera_sim.json"


def make_device(edit=None):  # type: ignore[no-untyped-def]
    board, _ = config.load(repo_path(BOARD), ["camera"])
    if edit:
        edit(board)
    settings = config.configure_apps(board, ["camera"])
    env, world = build_env(board)
    return Device(env, settings, world), env, world


def run(device, env, ms, during=None):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        if during is not None:
            await during()
        await env.clock.advance(ms)
        records = await env.store.read_outbox(100000)
        await device.stop()
        return records

    return asyncio.run(main())


def motion_events(records):  # type: ignore[no-untyped-def]
    return [r.payload for r in records if r.lane == "event" and r.payload.get("type") == "motion"]


def test_each_walk_past_is_one_event_with_a_clip_around_it():
    device, env, _ = make_device()
    records = run(device, env, 60000)  # one loop of the 'walk' scene: two people
    app = device.apps[0]
    events = motion_events(records)
    assert [e["clip"] for e in events] == [1, 2]
    assert app.ring.ids() == [1, 2]
    clip = app.ring.get(1)
    s = app.settings
    frames = s["pre_frames"] + 1 + s["post_frames"]
    assert clip.meta["frames"] == frames and len(clip.data) == frames * 48 * 32
    assert 8000 <= clip.meta["event_ms"] <= 9000  # the scene's first walker enters at 8 s
    assert len(clip.meta["sha256"]) == 64


def test_snapshot_is_the_latest_frame():
    device, env, _ = make_device()
    assert device.apps[0].snapshot() is None
    run(device, env, 1000)
    w, h, frame, t_ms = device.apps[0].snapshot()
    assert (w, h, len(frame)) == (48, 32, 48 * 32)
    assert 0 < t_ms <= env.clock.now_ms()


def test_the_ring_evicts_the_oldest_clips_under_its_budget():
    def small(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["clip_budget_bytes"] = 2 * (7 * 48 * 32 + 64)

    device, env, _ = make_device(small)
    run(device, env, 120000)  # four events
    ring = device.apps[0].ring
    assert ring.ids() == [3, 4] and ring.evicted == 2
    assert ring.used_bytes <= ring.budget_bytes


def test_a_camera_fault_is_reported_and_detection_resumes():
    device, env, world = make_device()

    async def fault():  # type: ignore[no-untyped-def]
        await env.clock.advance(1000)
        world.inject("camera", "disconnected")
        await env.clock.advance(2000)
        assert device.apps[0].health() == "fault:camera"
        world.clear("camera")

    records = run(device, env, 60000, fault)
    kinds = [r.payload["type"] for r in records if r.lane == "event"]
    assert kinds.count("fault") == 1 and kinds.count("fault_cleared") == 1
    assert len(motion_events(records)) == 2
    assert device.apps[0].health() == "ok"


def test_settings_errors_name_the_path():
    def no_part(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["camera"] = "webcam"

    def tiny_budget(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["clip_budget_bytes"] = 2048

    def bad_delta(board):  # type: ignore[no-untyped-def]
        board["apps"]["camera"]["delta"] = 0

    for edit, path in ((no_part, "camera"), (tiny_budget, "clip_budget_bytes"), (bad_delta, "delta")):
        board, _ = config.load(repo_path(BOARD), [])
        edit(board)
        exc = raises(ConfigError, config.configure_apps, board, ["camera"])
        assert ("apps.camera." + path) in str(exc), str(exc)


def test_the_tick_meter_keeps_the_frame_pace_in_the_summary():
    device, env, _ = make_device()

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(10000)
        summary = device.summary()
        await device.stop()
        return summary

    camera = asyncio.run(main())["camera"]
    assert camera["ticks"] == camera["frames"] == 51  # one per 200 ms, both ends included
    control = camera["control"]
    assert control["ticks"] == 51 and control["gaps"] == 0 and control["gap_ms_max"] == 200
    assert camera["tick_us_max"] >= camera["tick_us_mean"] > 0
    assert camera["ring"]["store"] == "ram"
