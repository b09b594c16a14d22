"""OTA on the host build, end to end: ``brickproof boot`` runs the device, mosquitto carries the update.

The device is the real host build (``brickproof run`` under the host
bootloader, a sqlite store, simulated time at 5x); the cloud is the OTA
service and the command issuer. Each test reads what the device reported
(its ``{"kind": "ota"}`` events), what the bootloader booted, and the boot
record it left. Every wait is bounded by a generous timeout; nothing asserts
how long something took.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.faults.proxy import FaultProxy
from tests.integration.ota_rig import PATIENCE_S, HostBoot, Keys, OtaCloud, wait_for, write_board


@pytest.fixture
def cloud(broker: Mosquitto, unique_id: str) -> Iterator[OtaCloud]:
    c = OtaCloud(broker, unique_id)
    try:
        yield c
    finally:
        c.close()


def start(tmp_path: Path, ota_keys: Keys, port: int, device_id: str, **ota: Any) -> HostBoot:
    board = write_board(tmp_path / "board.json", ota_keys.pub, ota)
    return HostBoot(tmp_path, board, port, device_id)


def offer_and_wait(cloud: OtaCloud, host: HostBoot, bundle: dict[str, Any]) -> dict[str, Any]:
    # a device that never connected has no session on the broker yet: a command sent now would be lost
    assert wait_for(lambda: cloud.status == "online"), host.log()[-3000:]
    cid = cloud.offer(bundle)
    assert wait_for(lambda: cloud.issuer.result(cid) is not None), (cloud.issuer.stats(), host.log()[-3000:])
    assert wait_for(lambda: cloud.done(bundle["sha256"])), (cloud.events, host.log()[-3000:])
    result = cloud.issuer.result(cid)
    assert result is not None
    return result


def test_an_update_installs_and_a_second_one_follows(
    tmp_path: Path, broker: Mosquitto, cloud: OtaCloud, ota_keys: Keys, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    host = start(tmp_path, ota_keys, broker.port, cloud.device_id)
    try:
        v2, v3 = ota_bundles["v020"], ota_bundles["v030"]
        result = offer_and_wait(cloud, host, v2)
        assert result["status"] == "ok" and result["result"]["accepted"] is True, result
        assert cloud.stages(v2["sha256"]) == ["accepted", "downloading", "staged", "switching", "trial", "installed"]
        rec = host.record()
        assert rec is not None and rec["good"] == "a" and rec["good_version"] == "0.2.0" and rec["trial"] is None
        # back to back: the new image takes the next update into the other slot
        offer_and_wait(cloud, host, v3)
        assert cloud.stages(v3["sha256"])[-1] == "installed", cloud.events
        rec = host.record()
        assert rec is not None and rec["good"] == "b" and rec["good_version"] == "0.3.0" and rec["last"] is None
        assert host.boots() == ["factory", "a", "b"]
        assert cloud.service.stats()["errors"] == 0
    finally:
        host.stop()


def test_a_download_resumes_after_the_connection_is_cut_mid_transfer(
    tmp_path: Path, broker: Mosquitto, cloud: OtaCloud, ota_keys: Keys, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    proxy = FaultProxy("127.0.0.1", broker.port)
    proxy.start()
    # 16 KiB chunks: the cuts below land between chunks and in the middle of them
    host = start(tmp_path, ota_keys, proxy.port, cloud.device_id, chunk_bytes=16384)
    try:
        v2 = ota_bundles["v020"]
        assert wait_for(lambda: cloud.status == "online"), host.log()[-3000:]
        cid = cloud.offer(v2)
        assert wait_for(lambda: cloud.issuer.result(cid) is not None), host.log()[-3000:]
        for cut in range(1, 4):  # three resets, each some 100 KB into the transfer
            served = cloud.service.stats()["bytes"]
            assert wait_for(lambda s=served: cloud.service.stats()["bytes"] > s), host.log()[-3000:]
            proxy.set_mode("reset_after", "down", n=100_000)
            assert wait_for(lambda c=cut: proxy.stats()["resets"] >= c), (proxy.stats(), host.log()[-3000:])
            proxy.set_mode("pass")
        assert wait_for(lambda: cloud.done(v2["sha256"]), PATIENCE_S), (cloud.events, host.log()[-3000:])
        assert cloud.stages(v2["sha256"])[-1] == "installed", cloud.events
        resumed = [e for e in cloud.find("downloading", v2["sha256"]) if e["reason"] != "from byte 0"]
        assert resumed, cloud.events  # it went on from where it was, not from the start
        # each byte was fetched about once: far less than a restart per cut would cost
        assert cloud.service.stats()["bytes"] < 2 * v2["bytes"], cloud.service.stats()
        rec = host.record()
        assert rec is not None and rec["good_version"] == "0.2.0"
    finally:
        host.stop()
        proxy.stop()


def test_a_bundle_that_crashes_on_boot_is_rolled_back(
    tmp_path: Path, broker: Mosquitto, cloud: OtaCloud, ota_keys: Keys, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    host = start(tmp_path, ota_keys, broker.port, cloud.device_id)
    try:
        bad = ota_bundles["crash"]
        offer_and_wait(cloud, host, bad)
        rolled = cloud.find("rolled_back", bad["sha256"])
        assert rolled and rolled[0]["reason"] == "crashed on trial boot", cloud.events
        assert "installed" not in cloud.stages(bad["sha256"])
        assert host.boots()[:3] == ["factory", "a", "factory"], host.log()[-3000:]
        assert "this image crashes on boot" in host.log()  # it really ran the bundle's code
        rec = host.record()
        assert rec is not None and rec["good"] == "factory" and rec["trial"] is None and rec["last"] is None
    finally:
        host.stop()


def test_a_bundle_that_fails_the_health_gate_is_rolled_back(
    tmp_path: Path, broker: Mosquitto, cloud: OtaCloud, ota_keys: Keys, ota_bundles: dict[str, dict[str, Any]]
) -> None:
    host = start(tmp_path, ota_keys, broker.port, cloud.device_id)
    try:
        bad = ota_bundles["unhealthy"]
        offer_and_wait(cloud, host, bad)
        rolled = cloud.find("rolled_back", bad["sha256"])
        assert rolled and "thermostat" in rolled[0]["reason"], cloud.events
        assert cloud.stages(bad["sha256"])[-2:] == ["trial", "rolled_back"], cloud.events
        assert wait_for(lambda: host.boots()[:3] == ["factory", "a", "factory"]), host.log()[-3000:]
        rec = host.record()
        assert rec is not None and rec["good"] == "factory" and rec["trial"] is None
        # the factory image still takes a good update afterwards
        offer_and_wait(cloud, host, ota_bundles["v020"])
        assert cloud.stages(ota_bundles["v020"]["sha256"])[-1] == "installed", cloud.events
    finally:
        host.stop()
