"""Camera clips upload in chunks through cuts at random points and complete exactly once.

A camera device (``boards/host_camera_sim.json``: the 'walk' scene, 48x32
frames, 7-frame clips of 10,752 bytes in 256-byte chunks) records clips
while the broker is unreachable (the fault proxy refuses), then goes online
through the proxy. A seeded plan cuts the connection at random points of the
upload (RST of every open connection, a reset after a random number of
bytes, a refusing spell), each once the receiver has seen a random number of
further chunks. Afterwards ``cloud_shim.clips.ClipStore`` must hold every
clip recorded before the check, whole, with its sha256 verified, counted
once; no chunk conflicts; and resends stay within what was in flight at the
cuts (the upload resumed from its acknowledged offset, it did not restart).
Waits are bounded in real time and count; nothing is asserted on time.

The board's store is sqlite, so the clips live in files beside it
(``clip_store`` files). A second test reboots the device in the middle of the
upload, with a torn clip file left on the flash: after the reboot every clip
arrives exactly once, resumed from its acknowledged offset, and the torn one
never.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.clips import ClipSubscriber
from cloud_shim.faults.proxy import FaultProxy
from device.board import load_board
from device.boot import Device, build_env
from device.clock import VirtualClock
from device.config import configure_apps
from tests.integration.rig import FAST_LINK
from tests.integration.waiting import until_sim

REPO = Path(__file__).resolve().parents[2]
SPEED = 10.0  # simulated seconds per real second
CHUNK = 256
WINDOW = 20
CUTS = 4
THROTTLE_BPS = 40_000
WAIT_S = 60.0  # generous bound for each wait


def _board(tmp_path: Path, proxy_port: int) -> dict[str, Any]:
    board = load_board(str(REPO / "boards/host_camera_sim.json"))
    board["storage"] = dict(board["storage"], backend="sqlite", path=str(tmp_path / "store.sqlite"), fsync=False)
    board["apps"]["camera"]["chunk_bytes"] = CHUNK
    link = board["link"]
    link["endpoints"] = [
        {"name": "primary", "role": "primary", "host": "127.0.0.1", "port": proxy_port, "tls": False, "addresses": []}
    ]
    link.update(FAST_LINK, client="paho", window=WINDOW)
    return board


async def _run_until(clock: VirtualClock, predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> bool:
    return await until_sim(clock, predicate, timeout_s)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_clip_upload_cut_at_random_points_completes_exactly_once(
    tmp_path: Path, broker: Mosquitto, unique_id: str, seed: int
) -> None:
    plan = random.Random(seed)
    proxy = FaultProxy("127.0.0.1", broker.port)
    proxy.start()
    receiver = ClipSubscriber("127.0.0.1", broker.port, [unique_id], client_id="clips-" + unique_id)
    receiver.start()
    device: Device | None = None
    try:
        proxy.set_mode("refuse")
        board = _board(tmp_path, proxy.port)
        env, world = build_env(board, SPEED, with_link=True)
        clock = env.clock
        assert isinstance(clock, VirtualClock)
        device = Device(env, configure_apps(board, ["camera"]), world)
        device.attach_link(unique_id)
        await device.start()
        app = device.apps[0]
        # Offline: three people walk by, three clips wait in the ring.
        assert await _run_until(clock, lambda: app.clips_done >= 3)
        store = receiver.store

        def online() -> None:  # throttled, so that cuts catch chunks in flight
            proxy.set_mode("throttle", "up", rate=THROTTLE_BPS)

        def delivered() -> int:
            return store.counters["chunks"] + store.counters["duplicates"]

        online()
        for _ in range(CUTS):
            target = delivered() + plan.randint(1, 30)
            assert await _run_until(clock, lambda t=target: delivered() >= t), store.counters  # type: ignore[misc]
            kind = plan.choice(("kill", "reset_after", "refuse"))
            if kind == "kill":
                proxy.kill_all(reset=True)
            elif kind == "reset_after":
                proxy.set_mode("reset_after", "up", n=plan.randint(1, 3 * CHUNK))
                await _run_until(clock, lambda: proxy.stats()["connections"] > 0, 2.0)
                await clock.run_until(clock.now_ms() + 1000)
                online()
            else:
                proxy.set_mode("refuse")
                proxy.kill_all(reset=True)
                await clock.run_until(clock.now_ms() + plan.randint(200, 3000))
                online()
        recorded = list(range(1, app.clips_done + 1))
        assert recorded == app.ring.ids()[: len(recorded)]  # nothing evicted: every clip must arrive

        def all_arrived() -> bool:
            return store.report(unique_id)["completed"][: len(recorded)] == recorded

        assert await _run_until(clock, all_arrived), (store.report(unique_id), device.sync.stats())  # type: ignore[union-attr]
        report = store.report(unique_id)
        counters = report["counters"]
        assert counters["conflicts"] == 0 and counters["hash_failures"] == 0 and counters["malformed"] == 0
        assert report["completed_more_than_once"] == []
        for clip_id in recorded:
            clip = store.clips[(unique_id, clip_id)]
            assert clip.data == app.clips.data(clip_id)
            assert clip.meta is not None and clip.meta["clip"] == clip_id
        # Resumed, not restarted: re-sent chunks are at most what a cut caught in flight.
        assert counters["duplicates"] <= CUTS * 2 * WINDOW, counters
        assert app.store_errors == 0
    finally:
        if device is not None:
            await device.stop()
        receiver.stop()
        proxy.stop()


async def test_clips_pending_at_a_reboot_are_uploaded_exactly_once_after_it(
    tmp_path: Path, broker: Mosquitto, unique_id: str
) -> None:
    proxy = FaultProxy("127.0.0.1", broker.port)
    proxy.start()
    receiver = ClipSubscriber("127.0.0.1", broker.port, [unique_id], client_id="clips-" + unique_id)
    receiver.start()
    device: Device | None = None
    try:
        proxy.set_mode("refuse")
        board = _board(tmp_path, proxy.port)
        env, world = build_env(board, SPEED, with_link=True)
        device = Device(env, configure_apps(board, ["camera"]), world)
        device.attach_link(unique_id)
        await device.start()
        app = device.apps[0]
        assert app.clips.kind == "files"
        clock = env.clock
        assert isinstance(clock, VirtualClock)
        assert await _run_until(clock, lambda: app.clips_done >= 3)  # offline: three clips on flash
        store = receiver.store
        proxy.set_mode("throttle", "up", rate=THROTTLE_BPS)
        # Part of the first clip is up (and acknowledged, so saved as progress), then the power goes.
        assert await _run_until(clock, lambda: store.counters["chunks"] >= 12), store.counters
        progress_before = await env.store.get_state("_bulk.camera")
        await device.stop()
        device = None
        proxy.set_mode("refuse")
        proxy.kill_all(reset=True)
        recorded = list(app.ring.ids())
        originals = {clip_id: app.clips.data(clip_id) for clip_id in recorded}
        clip_dir = Path(app.settings["clip_dir"])
        torn_id = recorded[-1] + 1  # a clip cut by the power loss: half its bytes made it
        whole = (clip_dir / f"{recorded[0]}.clip").read_bytes()
        (clip_dir / f"{torn_id}.clip").write_bytes(whole[: len(whole) // 2])
        (clip_dir / f"{torn_id + 1}.tmp").write_bytes(whole[:100])

        env2, world2 = build_env(board, SPEED, with_link=True)  # the reboot: same flash, new everything
        device = Device(env2, configure_apps(board, ["camera"]), world2)
        device.attach_link(unique_id)
        await device.start()
        app2 = device.apps[0]
        assert app2.ring.ids()[: len(recorded)] == recorded and app2.clips.torn == 2
        assert app2.next_clip > torn_id + 1  # ids never reused
        clock2 = env2.clock
        assert isinstance(clock2, VirtualClock)
        proxy.set_mode("throttle", "up", rate=THROTTLE_BPS)

        def all_arrived() -> bool:
            return store.report(unique_id)["completed"][: len(recorded)] == recorded

        assert await _run_until(clock2, all_arrived), (store.report(unique_id), device.sync.stats())  # type: ignore[union-attr]
        report = store.report(unique_id)
        counters = report["counters"]
        assert counters["conflicts"] == 0 and counters["hash_failures"] == 0 and counters["malformed"] == 0
        assert report["completed_more_than_once"] == []
        assert torn_id not in report["completed"] and torn_id not in report["partial"]
        for clip_id in recorded:
            assert store.clips[(unique_id, clip_id)].data == originals[clip_id]
        # Resumed, not restarted: only what was in flight at the cut went again.
        assert progress_before is not None and progress_before.value["acked"] > 0
        assert counters["duplicates"] <= 2 * WINDOW, counters
    finally:
        if device is not None:
            await device.stop()
        receiver.stop()
        proxy.stop()
