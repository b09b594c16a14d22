"""The cloud's command issuer against a real device (``rig.py``) on a real mosquitto.

A command comes back ``ok`` with the handler's result (an unknown one comes
back ``rejected``); one already expired when it arrives comes back
``expired`` without running; the same id published twice runs and is
answered once. Every wait is bounded by a generous timeout; nothing asserts
how long something took.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.commands import CommandIssuer
from tests.integration.rig import Rig, settle

LOCAL = "127.0.0.1"
PATIENCE_S = 60.0


class Pinged:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(args)
        return {"pong": args.get("n")}


@pytest.fixture
async def device(tmp_path: Path, broker: Mosquitto, unique_id: str) -> AsyncIterator[tuple[Rig, Pinged]]:
    rig = Rig(tmp_path, broker, unique_id)
    handler = Pinged()
    try:
        await rig.start()
        assert rig.device is not None and rig.device.sync is not None
        rig.device.sync.commands.register("ping", handler)
        await settle(rig)
        yield rig, handler
    finally:
        await rig.stop()
        rig.close()


def issuer_for(rig: Rig, broker: Mosquitto) -> CommandIssuer:
    assert rig.clock is not None
    # The device checks expiry against its simulated wall clock: issue in that time.
    return CommandIssuer(LOCAL, broker.port, wall_ms=rig.clock.wall_ms, client_id="cmd-" + rig.device_id)


async def answered(rig: Rig, issuer: CommandIssuer, cid: str) -> dict[str, Any]:
    assert await rig.run_until(lambda: issuer.result(cid) is not None, PATIENCE_S), issuer.stats()
    result = issuer.result(cid)
    assert result is not None
    return result


async def test_a_command_comes_back_ok(device: tuple[Rig, Pinged], broker: Mosquitto) -> None:
    rig, handler = device
    with issuer_for(rig, broker) as issuer:
        cid = issuer.issue(rig.device_id, "ping", {"n": 7}, ttl_ms=60_000)
        other = issuer.issue(rig.device_id, "no_such_command", {}, ttl_ms=60_000)
        assert cid != other
        result = await answered(rig, issuer, cid)
        assert result["status"] == "ok" and result["result"] == {"pong": 7} and result["name"] == "ping"
        assert (await answered(rig, issuer, other))["status"] == "rejected"
        assert handler.calls == [{"n": 7}]
        assert set(issuer.results(rig.device_id)) == {cid, other}
        stats = issuer.stats()
        assert stats["issued"] == 2 and stats["ok"] == 1 and stats["rejected"] == 1
        assert stats["unanswered"] == 0 and stats["duplicate_results"] == 0


async def test_an_expired_command_comes_back_expired(device: tuple[Rig, Pinged], broker: Mosquitto) -> None:
    rig, handler = device
    assert rig.clock is not None
    with issuer_for(rig, broker) as issuer:
        wall = rig.clock.wall_ms()
        assert wall is not None
        stale = issuer.issue(rig.device_id, "ping", {"n": 1}, ttl_ms=1000, issued_wall_ms=wall - 5000)
        now = issuer.issue(rig.device_id, "ping", {"n": 2}, ttl_ms=0)  # expires the moment it is issued
        assert (await answered(rig, issuer, stale))["status"] == "expired"
        assert (await answered(rig, issuer, now))["status"] == "expired"
        assert handler.calls == []  # an expired command never runs
        stats = issuer.stats()
        assert stats["expired"] == 2 and stats["ok"] == 0 and stats["unanswered"] == 0


async def test_the_same_id_twice_is_answered_once(device: tuple[Rig, Pinged], broker: Mosquitto) -> None:
    rig, handler = device
    assert rig.device is not None and rig.device.sync is not None
    commands = rig.device.sync.commands
    with issuer_for(rig, broker) as issuer:
        cid = issuer.issue(rig.device_id, "ping", {"n": 3}, ttl_ms=60_000)
        issuer.resend(cid)  # a retry with the same id, as QoS 1 may also deliver it twice
        assert issuer.flush(PATIENCE_S)
        assert (await answered(rig, issuer, cid))["result"] == {"pong": 3}
        # the device saw the second copy and dropped it; everything it produced since is delivered
        assert await rig.run_until(lambda: commands.counters["duplicate"] >= 1, PATIENCE_S)
        await settle(rig)
        assert handler.calls == [{"n": 3}]
        assert commands.counters["accepted"] == 1 and commands.counters["duplicate"] == 1
        assert list(issuer.results(rig.device_id)) == [cid]
        stats = issuer.stats()
        assert stats["ok"] == 1 and stats["duplicate_results"] == 0 and stats["issued"] == 1


async def test_the_cloud_lays_out_reconnect_phases_and_the_device_keeps_its_own(
    tmp_path: Path, broker: Mosquitto, unique_id: str
) -> None:
    from cloud_shim.phases import assign_phases, send_phases
    from device.link.link import PHASE_KEY

    spread = 60_000
    rig = Rig(tmp_path, broker, unique_id)
    rig.board["link"]["spread_ms"] = spread  # the test rig's fast link has no spread
    try:
        await rig.start()
        await settle(rig)
        assert rig.device is not None and rig.device.link is not None
        link = rig.device.link
        phases = assign_phases([rig.device_id, "other-b", "other-a"], spread)
        assert sorted(phases.values()) == [0, spread // 3, 2 * spread // 3]
        with issuer_for(rig, broker) as issuer:
            sent = send_phases(issuer, {rig.device_id: phases[rig.device_id]}, spread)
            result = await answered(rig, issuer, sent[rig.device_id])
            assert result["status"] == "ok", result
            assert result["result"] == {"phase_ms": phases[rig.device_id], "source": "cloud"}
            bad = issuer.issue(rig.device_id, "link_phase", {"phase_ms": 1, "spread_ms": spread + 1}, ttl_ms=60_000)
            refused = await answered(rig, issuer, bad)
            assert refused["status"] == "error" and "is not this device's" in refused["error"], refused
        kept = await rig.device.env.store.get_state(PHASE_KEY)
        assert kept is not None and kept.value == {"phase_ms": phases[rig.device_id], "spread_ms": spread}
        assert link.phase_ms == phases[rig.device_id] and link.phase_source == "cloud"
    finally:
        await rig.stop()
        rig.close()
