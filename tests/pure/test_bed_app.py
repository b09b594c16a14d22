"""The bed app on the host_bed_sim board in simulated time: buttons, cloud, LAN, faults, status LED."""

from device import config
from device.boot import Device, build_env
from tests.pure._check import repo_path
from tests.pure._device_run import events, run

SEC = 1000
MIN = 60000


def make_device():  # type: ignore[no-untyped-def]
    board, settings = config.load(repo_path("boards/host_bed_sim.json"), ["bed"])
    settings["bed"]["left_schedule"] = []
    settings["bed"]["right_schedule"] = []
    env, world = build_env(board)
    return Device(env, settings, world), env, world


def test_buttons_work_with_no_network():
    device, env, world = make_device()
    buttons = env.hw.get("buttons")

    async def presses():  # type: ignore[no-untyped-def]
        for name in ("warmer", "warmer", "side", "cooler", "head_up", "head_up"):
            buttons.press(name)
        await env.clock.advance(MIN)

    app = run(device, env, SEC, presses)
    assert app.setpoints == {"left": 29.0, "right": 26.0}
    assert app.targets["head"] == 50.0
    assert abs(world.bed_models["section.head"].position - 50.0) <= 3.0
    assert device.status()["health"] == "local_only"


def test_cloud_state_and_commands_and_lan_all_go_through_the_envelope():
    device, env, _ = make_device()

    async def asks():  # type: ignore[no-untyped-def]
        app = device.apps[0]
        await env.store.put_state("bed.left.setpoint_c", 99, "cloud", env.clock.wall_ms())  # shadow desired
        await env.clock.advance(2 * SEC)
        assert (await env.store.get_state("bed.left.setpoint_c")).value == 43.0
        result = await app.commands["bed.set_temp"]({"side": "right", "setpoint_c": -5})
        assert result["status"] == "limited" and result["value"] == 13.0
        result = await app.request("lan", "base.head", 250)
        assert result["value"] == 100.0
        result = await app.commands["bed.set_base"]({"section": "foot", "position_pct": "up"})
        assert result["status"] == "rejected"
        await env.clock.advance(2 * SEC)

    app = run(device, env, SEC, asks)
    assert app.setpoints == {"left": 43.0, "right": 13.0}
    assert len(events(env, "request_limited")) == 3
    assert len(events(env, "request_rejected")) == 1


def test_motor_stall_is_a_fault_on_the_led_and_a_local_stop_clears_it():
    device, env, world = make_device()
    led = env.hw.get("status_led")

    async def stall():  # type: ignore[no-untyped-def]
        app = device.apps[0]
        world.inject("head_motor", "stall")
        await app.request("cloud", "base.head", 60.0)
        await env.clock.advance(10 * SEC)
        assert app.health() == "fault:head_stall"
        assert device.status()["health"] == "fault"
        world.clear("head_motor")
        env.hw.get("buttons").press("stop")
        await env.clock.advance(5 * SEC)

    app = run(device, env, 2 * SEC, stall)
    assert app.health() == "ok"
    assert [mode for _, mode in led.shown] == ["local_only", "fault", "local_only"]
    assert len(events(env, "fault")) == 1 and len(events(env, "fault_cleared")) == 1


def test_pad_sensor_failure_is_a_safe_state_on_that_side_only():
    device, env, world = make_device()

    async def fail():  # type: ignore[no-untyped-def]
        app = device.apps[0]
        await app.request("lan", "left.setpoint_c", 40.0)
        await app.request("lan", "right.setpoint_c", 40.0)
        await env.clock.advance(10 * SEC)
        world.inject("left_temp", "disconnected")
        await env.clock.advance(MIN)

    app = run(device, env, SEC, fail)
    assert not env.hw.get("left_heater").on and app.sides["left"].fault == "sensor"
    assert env.hw.get("right_heater").on
    assert app.health() == "fault:left_sensor"


def test_schedule_sets_each_side_through_the_envelope():
    board, settings = config.load(repo_path("boards/host_bed_sim.json"), ["bed"])
    settings["bed"]["left_schedule"] = [{"at": "22:00", "setpoint_c": 47.0}]  # above max_c: limited
    env, world = build_env(board)
    device = Device(env, settings, world)
    app = run(device, env, 5 * SEC)
    assert app.setpoints["left"] == 43.0
    assert app.setpoints["right"] == 28.0  # the board's right schedule: at 22:00 the 05:30 entry is in force
