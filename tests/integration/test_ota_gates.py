"""OTA gates and refusals on a whole device in this process (``ota_rig.OtaRig``) and a real mosquitto.

* An offer taken while the link is degraded (DNS fails: a last-known-good
  address) is deferred, reported, and downloaded once the link is online again;
  the switch asks for a reset; the "rebooted" device then runs the trial, passes
  the health gate and reports "installed".
* An offer arriving with an outage's backlog in the outbox waits until the
  catch-up has drained below ``backlog_max``.
* Every refusal (offer checks, signature/board checks after the download, a
  bad hash, a bundle the cloud does not have) is reported with its reason code.
* A trial that cannot reach the cloud within ``health_ms`` is rolled back.

Every wait is bounded by a generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from device.ota.bootsel import select
from device.ota.otafs import OtaFiles
from tests.integration.ota_rig import Keys, OtaCloud, OtaRig
from tests.integration.rig import HOST, settle

PATIENCE_S = 120.0


class Setup:
    def __init__(self, tmp_path: Path, broker: Mosquitto, unique_id: str, ota_keys: Keys) -> None:
        self.tmp_path = tmp_path
        self.broker = broker
        self.device_id = unique_id
        self.keys = ota_keys
        self.rig: OtaRig | None = None
        self.cloud: OtaCloud | None = None

    def make_rig(self, **ota: Any) -> OtaRig:
        settings = {"health_ms": 4000, "chunk_bytes": 65536}
        settings.update(ota)
        self.rig = OtaRig(self.tmp_path, self.broker, self.device_id, self.keys.pub, settings)
        return self.rig

    async def start(self) -> tuple[OtaRig, OtaCloud]:
        rig = self.rig or self.make_rig()
        await rig.start()
        assert rig.clock is not None
        self.cloud = OtaCloud(self.broker, self.device_id, wall_ms=rig.clock.wall_ms)
        await settle(rig)
        return rig, self.cloud

    async def reboot(self) -> str:
        """Stop the device, let the boot selector choose (cause "reset"), start it again: the slot chosen."""
        rig = self.rig
        assert rig is not None
        await rig.stop()
        slot, _dir, _note = select(OtaFiles(str(self.tmp_path / "root")), "reset")
        await rig.start()  # the same code: this process cannot import a slot; the record and the files say "trial"
        return slot


@pytest.fixture
async def setup(tmp_path: Path, broker: Mosquitto, unique_id: str, ota_keys: Keys) -> AsyncIterator[Setup]:
    s = Setup(tmp_path, broker, unique_id, ota_keys)
    try:
        yield s
    finally:
        if s.cloud is not None:
            s.cloud.close()
        if s.rig is not None:
            await s.rig.stop()
            s.rig.close()


async def answer(rig: OtaRig, cloud: OtaCloud, cid: str) -> dict[str, Any]:
    assert await rig.run_until(lambda: cloud.issuer.result(cid) is not None, PATIENCE_S), cloud.issuer.stats()
    result = cloud.issuer.result(cid)
    assert result is not None and result["status"] == "ok", result
    return result["result"]  # type: ignore[no-any-return]


async def test_a_degraded_link_defers_the_update_until_it_is_online(
    setup: Setup, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    rig, cloud = await setup.start()
    v2 = ota_bundles["v020"]
    rig.dns.set(HOST, "servfail")  # the next session runs on the last-known-good address: degraded
    rig.proxy.kill_all()
    assert await rig.run_until(lambda: rig.link_state == "degraded", PATIENCE_S), rig.link_state
    reply = await answer(rig, cloud, cloud.offer(v2))
    assert reply["accepted"] is True and reply["state"] == "deferred", reply
    await rig.run_for(10_000)  # ten simulated seconds degraded: nothing is fetched
    assert cloud.service.stats()["requests"] == 0
    assert await rig.run_until(lambda: bool(cloud.find("deferred", v2["sha256"])), PATIENCE_S), cloud.events
    assert cloud.find("deferred", v2["sha256"])[0]["reason"] == "link degraded"
    # DNS answers again with the address the device is on: the link goes online in place (its
    # next DNS re-check, within a simulated minute), without dropping the connection
    sessions = rig.device.link.counters["sessions"]
    rig.dns.set(HOST, "ok", ["127.0.0.1"])
    assert await rig.run_until(lambda: rig.link_state == "online", PATIENCE_S), rig.link_state
    assert rig.device.link.counters["promoted_online"] == 1
    assert rig.device.link.counters["sessions"] == sessions
    assert await rig.run_until(lambda: bool(rig.resets), PATIENCE_S), (rig.agent.stats(), cloud.events)
    assert rig.resets == ["switch"]
    assert await rig.run_until(lambda: "switching" in cloud.stages(v2["sha256"]), PATIENCE_S), cloud.events
    assert cloud.stages(v2["sha256"]) == ["accepted", "deferred", "downloading", "staged", "switching"]
    # the reset: the boot selector picks the new slot on trial; the health gate passes
    assert await setup.reboot() == "a"
    assert await rig.run_until(lambda: cloud.done(v2["sha256"]), PATIENCE_S), cloud.events
    assert cloud.stages(v2["sha256"])[-2:] == ["trial", "installed"]
    assert rig.agent.version == "0.2.0" and rig.agent.booted == "a"
    rec = rig.agent.slots.record()
    assert rec["good"] == "a" and rec["trial"] is None and rec["last"] is None


async def test_an_outage_backlog_is_drained_before_the_download_starts(
    setup: Setup, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    rig = setup.make_rig(backlog_max=200)
    # After an outage the outbox drains at a limited rate, so the catch-up takes a while.
    rig.board["link"].update(long_outage_ms=1000, drain_per_s=200)
    rig, cloud = await setup.start()
    v2 = ota_bundles["v020"]
    rig.proxy.set_offline([rig.device_id], True)
    assert await rig.run_until(lambda: not rig.connected(), PATIENCE_S)
    assert rig.device is not None
    store, clock = rig.device.env.store, rig.clock
    assert clock is not None
    for n in range(1500):  # what a long outage leaves behind
        await store.append("event", {"type": "backlog", "n": n}, clock.now_ms())
    cid = cloud.offer(v2)  # queued by the broker for the device's session
    depths: list[int] = []
    rig.proxy.set_offline([rig.device_id], False)

    def requested() -> bool:
        if cloud.service.stats()["requests"] and not depths:
            depths.append(rig.outbox_depth())  # the outbox when the first chunk was asked for
        return bool(rig.resets)

    assert await rig.run_until(requested, PATIENCE_S), (rig.agent.stats(), cloud.events)
    reply = await answer(rig, cloud, cid)
    assert reply["accepted"] is True and reply["state"] == "deferred", reply
    deferred = cloud.find("deferred", v2["sha256"])
    assert deferred and deferred[0]["reason"].startswith("outbox backlog"), cloud.events
    assert depths and depths[0] <= 200 + 50, depths  # (+ what the producer added since the check)
    assert rig.resets == ["switch"]


async def test_every_refusal_is_reported_with_its_reason(setup: Setup, ota_bundles: dict[str, dict[str, Any]]) -> None:
    rig, cloud = await setup.start()
    b = ota_bundles
    at_offer = [
        (b["v010"], {}, "same_version"),
        (b["v000"], {}, "downgrade"),
        (b["v020"], {"size": 5 * 1024 * 1024}, "too_big"),
        (b["v020"], {"version": "2.0"}, "bad_format"),
    ]
    for bundle, override, code in at_offer:
        reply = await answer(rig, cloud, cloud.offer(bundle, **override))
        assert reply["accepted"] is False and reply["reason"].startswith(code), (code, reply)
    after_download = [
        (b["untrusted"], {}, "untrusted_key"),
        (b["bad_signature"], {}, "bad_signature"),
        (b["wrong_board"], {}, "wrong_board"),
        (b["v020"], {"size": b["v020"]["bytes"] - 1}, "bad_hash"),
        (b["v020"], {"bundle": "00" * 32}, "unavailable: unknown bundle"),
    ]
    for bundle, override, code in after_download:
        sha = override.get("bundle", bundle["sha256"])
        before = len(cloud.find("refused", sha))
        reply = await answer(rig, cloud, cloud.offer(bundle, **override))
        assert reply["accepted"] is True, (code, reply)
        assert await rig.run_until(lambda s=sha, n=before: len(cloud.find("refused", s)) > n, PATIENCE_S), code
        assert cloud.find("refused", sha)[-1]["reason"].startswith(code), (code, cloud.events)
    refused = cloud.find("refused")
    assert len(refused) == len(at_offer) + len(after_download), cloud.events
    assert "staged" not in cloud.stages() and rig.resets == []
    assert rig.agent.slots.record() is None  # nothing was ever switched to
    assert rig.agent.slots.dl() is None  # and no download is left behind


async def test_a_trial_that_cannot_reach_the_cloud_is_rolled_back(
    setup: Setup, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    rig, cloud = await setup.start()
    v2 = ota_bundles["v020"]
    reply = await answer(rig, cloud, cloud.offer(v2))
    assert reply["accepted"] is True
    assert await rig.run_until(lambda: bool(rig.resets), PATIENCE_S), (rig.agent.stats(), cloud.events)
    rig.proxy.set_mode("refuse")  # the new image will find no cloud
    assert await setup.reboot() == "a"
    assert await rig.run_until(lambda: len(rig.resets) == 2, PATIENCE_S), rig.agent.stats()
    assert rig.resets == ["switch", "rollback"]
    rec = rig.agent.slots.record()
    assert rec["trial"] is None and rec["good"] == "factory" and rec["last"] is None
    rig.proxy.set_mode("pass")
    assert await rig.run_until(lambda: cloud.done(v2["sha256"]), PATIENCE_S), cloud.events
    rolled = cloud.find("rolled_back", v2["sha256"])
    assert rolled and rolled[0]["reason"].startswith("link not online"), cloud.events
