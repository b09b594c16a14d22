"""The thermostat task on the host_sim board in simulated time: state, schedule, faults, a full store."""

from device import config
from device.apps import thermostat as app_mod
from device.boot import Device, build_env
from tests.pure._check import repo_path
from tests.pure._device_run import events, run

MIN = 60000
HOUR = 3600000


def make_device(edit=None, apps_edit=None):  # type: ignore[no-untyped-def]
    board, _ = config.load(repo_path("boards/host_sim.json"), ["thermostat"])
    if edit:
        edit(board)
    settings = config.configure_apps(board, ["thermostat"])
    if apps_edit:
        apps_edit(settings["thermostat"])
    env, world = build_env(board)
    return Device(env, settings, world), env, world


def test_setpoint_of_500_from_state_is_clamped_and_reported_once():
    device, env, _ = make_device(apps_edit=lambda s: s.update(default_schedule=[]))

    async def poison():  # type: ignore[no-untyped-def]
        await env.store.put_state(app_mod.KEY_SETPOINT, 500, "cloud", env.clock.wall_ms())
        await env.clock.advance(10 * MIN)

    app = run(device, env, MIN, poison)
    assert app.targets.setpoint_c == 32.0
    assert app.health() == "degraded:state"
    reported = events(env, "targets_sanitized")
    assert len(reported) == 1
    assert reported[0]["problems"] == ["setpoint_c 500.0 clamped to 32.0"]
    assert app.ticks == 11 * 60 + 1  # control never paused


def test_garbage_mode_falls_back_to_default_and_keeps_controlling():
    device, env, _ = make_device()

    async def poison():  # type: ignore[no-untyped-def]
        await env.store.put_state(app_mod.KEY_MODE, {"not": "a mode"}, "lan", env.clock.wall_ms())
        await env.clock.advance(MIN)

    app = run(device, env, MIN, poison)
    assert app.targets.mode == "heat"
    assert len(events(env, "targets_sanitized")) == 1


def test_schedule_applies_at_its_boundary_and_a_manual_change_holds_until_the_next():
    # host_sim starts at 00:00 with 06:30 -> 21.0 and 22:30 -> 18.0: at boot the 22:30 entry is in force.
    device, env, _ = make_device()

    async def scenario():  # type: ignore[no-untyped-def]
        assert device.apps[0].targets.setpoint_c == 18.0
        await env.clock.advance(7 * HOUR)  # 07:00: the 06:30 entry applied
        assert device.apps[0].targets.setpoint_c == 21.0
        await env.store.put_state(app_mod.KEY_SETPOINT, 23.0, "lan", env.clock.wall_ms())
        await env.clock.advance(HOUR)  # 08:00: the owner's 23.0 holds
        assert device.apps[0].targets.setpoint_c == 23.0
        await env.clock.advance(15 * HOUR)  # 23:00: 22:30 entry replaced it
        assert device.apps[0].targets.setpoint_c == 18.0

    run(device, env, 1000, scenario)


def test_schedule_pauses_without_a_wall_clock():
    device, env, _ = make_device(lambda b: b["sim"].update(start_wall_s=None))
    app = run(device, env, 8 * HOUR)
    assert app.targets.setpoint_c == 21.0  # the default setpoint, not the 06:30 entry
    assert app.schedule_note == "schedule paused: no wall clock"


def test_a_bad_schedule_in_state_is_rejected_and_reported():
    device, env, _ = make_device()

    async def poison():  # type: ignore[no-untyped-def]
        await env.store.put_state(app_mod.KEY_SCHEDULE, [{"at": "99:99", "setpoint_c": 20}], "cloud")
        await env.clock.advance(MIN)

    app = run(device, env, 1000, poison)
    assert app.schedule_note.startswith("schedule ignored:")
    assert len(events(env, "schedule_rejected")) == 1
    assert app.ticks > 60


def test_nan_sensor_goes_to_safe_state_and_reports_fault_then_recovers():
    device, env, world = make_device()
    world.inject("room_sensor", "nan")

    async def scenario():  # type: ignore[no-untyped-def]
        app = device.apps[0]
        assert app.decision.fault == "sensor_nan"
        assert not world.room.load_on("heater")
        world.clear("room_sensor")
        await env.clock.advance(10 * MIN)
        assert app.decision.fault is None

    run(device, env, 2 * MIN, scenario)
    assert len(events(env, "fault")) == 1
    assert len(events(env, "fault_cleared")) == 1


def test_relay_that_does_not_switch_is_reported():
    device, env, world = make_device()
    world.inject("heater", "stuck_off")
    app = run(device, env, 5 * MIN)
    assert app.decision.heater_on  # the law wants heat (room starts at 16 C)...
    assert app.health() == "fault:relay_mismatch"  # ...but the relay's contact says otherwise
    assert events(env, "fault")[0]["fault"] == "relay_mismatch"


def test_sensor_driver_exception_counts_as_no_reading():
    device, env, _ = make_device()

    def broken():  # type: ignore[no-untyped-def]
        raise OSError(5, "EIO")

    device.apps[0].sensor.read_c = broken
    app = run(device, env, 2 * MIN)
    assert app.sensor_errors == 121
    assert app.decision.fault == "sensor_missing"
    assert device.supervisor.crash_total == 0


def test_full_store_never_stops_control():
    device, env, _ = make_device(lambda b: b["storage"].update(budget_bytes=4096))

    async def fill():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            try:
                await env.store.append("event", {"type": "filler", "n": n}, 0)
            except Exception:  # StoreFullError: the budget is all events now
                break
            n += 1
        await env.clock.advance(30 * MIN)

    app = run(device, env, 1000, fill)
    assert app.ticks == 30 * 60 + 2
    assert app.store_errors > 0
    assert device.supervisor.crash_total == 0
    assert app.summary(env.clock.wall_ms())["min_off_violations"] == 0
