"""Simulated part faults from the board's timeline: the bed motor stall, and the kinds every part takes."""

import asyncio

from device import config
from device.boot import Device, build_env
from device.errors import ConfigError
from hw.sim.faults import ALL_FAULTS, MOTOR_FAULTS, POSITION_FAULTS, RELAY_FAULTS, THERMOMETER_FAULTS
from tests.pure._check import raises, repo_path

SEC = 1000


def bed_with_faults(faults):  # type: ignore[no-untyped-def]
    board, settings = config.load(repo_path("boards/host_bed_sim.json"), ["bed"])
    settings["bed"]["left_schedule"] = []
    settings["bed"]["right_schedule"] = []
    board["sim"]["faults"] = faults
    env, world = build_env(board)
    return Device(env, settings, world), env, world


def test_every_kind_of_every_part_is_known_once():
    for group in (THERMOMETER_FAULTS, RELAY_FAULTS, MOTOR_FAULTS, POSITION_FAULTS):
        for kind in group:
            assert kind in ALL_FAULTS
    assert len(set(ALL_FAULTS)) == len(ALL_FAULTS)
    assert "stall" in ALL_FAULTS


def test_a_motor_stall_scheduled_in_the_timeline_stops_the_base_and_is_reported():
    # The head motor stalls 20 s in, for 60 s: the base stops where it was, the envelope sees it.
    device, env, world = bed_with_faults([{"at_s": 20, "for_s": 60, "part": "head_motor", "kind": "stall"}])
    seen = {}

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        app = device.apps[0]
        await app.request("cloud", "base.head", 80.0)
        await env.clock.advance(19 * SEC)
        seen["before"] = world.bed_models["section.head"].position
        await env.clock.advance(20 * SEC)  # stalled for 19 s: the stall rule (3 s) has fired
        seen["during"] = world.bed_models["section.head"].position
        seen["health"] = app.health()
        seen["fault"] = device.status()["health"]
        await env.clock.advance(60 * SEC)  # the fault is over, but only a local stop clears a stall
        seen["after_health"] = app.health()
        await device.stop()

    asyncio.run(main())
    assert 30.0 <= seen["before"] <= 40.0  # 2 %/s for 19 s
    assert seen["during"] - seen["before"] <= 3.0  # it stopped at the stall (a tick's worth of slack)
    assert seen["health"] == "fault:head_stall"
    assert seen["fault"] == "fault"
    assert seen["after_health"] == "fault:head_stall"


def test_a_stall_on_a_part_without_a_motor_names_the_timeline_entry():
    exc = raises(ConfigError, bed_with_faults, [{"at_s": 5, "part": "left_temp", "kind": "stall"}])
    assert "sim.faults[0].kind" in str(exc)
    assert "left_temp" in str(exc)


def test_the_bed_meters_its_control_ticks():
    device, env, _ = bed_with_faults([])

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(60 * SEC)
        await device.stop()

    asyncio.run(main())
    meter = device.apps[0].meter
    assert meter is not None
    assert meter.ticks >= 60 and meter.gaps == 0
