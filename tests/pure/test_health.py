"""The degraded-mode signal: one mode from the link state and the apps' health."""

from device.core import health


def test_no_link_and_no_fault_is_local_only():
    assert health.mode(None, ["ok", "degraded:store"]) == "local_only"
    assert health.mode(None, []) == "local_only"


def test_connected_link_is_cloud_ok_including_a_fallback_address():
    assert health.mode("online", ["ok"]) == "cloud_ok"
    assert health.mode("degraded", ["starting"]) == "cloud_ok"


def test_link_trying_to_connect_is_local_only():
    for state in ("offline", "resolving", "connecting"):
        assert health.mode(state, ["ok"]) == "local_only"


def test_any_app_fault_wins_whatever_the_link():
    for state in (None, "online", "offline"):
        assert health.mode(state, ["ok", "fault:left_sensor"]) == "fault"
    assert not health.is_fault("degraded:sensor_missing")
    assert not health.is_fault(None)


def test_thermostat_sensor_fault_reaches_device_health():
    import asyncio

    from device import config
    from device.boot import Device, build_env
    from tests.pure._check import repo_path

    board, settings = config.load(repo_path("boards/host_sim.json"), ["thermostat"])
    env, world = build_env(board)
    device = Device(env, settings, world)

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        await env.clock.advance(1000)
        assert device.status()["health"] == "local_only"
        world.inject("room_sensor", "disconnected")
        await env.clock.advance(120000)
        assert device.status()["health"] == "fault"
        await device.stop()

    asyncio.run(main())
