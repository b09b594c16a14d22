"""Thermostat eco fallback: no cloud schedule update for N hours -> eco targets, reported; off by default."""

import asyncio

from device.apps import thermostat as app_mod
from device.core import eco
from device.core.thermostat import Targets
from tests.pure.test_thermostat_app import HOUR, MIN, events, make_device

NIGHT = [{"at": "06:30", "setpoint_c": 21.0}, {"at": "22:30", "setpoint_c": 18.0}]


def test_eco_watch_rules():
    watch = eco.EcoWatch(2.0, 0)
    assert watch.check(2 * HOUR - 1) is None and not watch.active
    assert watch.check(2 * HOUR) is True and watch.since_ms == 2 * HOUR
    assert watch.check(3 * HOUR) is None
    watch.cloud_update(3 * HOUR)
    assert watch.check(3 * HOUR) is False and not watch.active
    off = eco.EcoWatch(0.0, 0)
    assert off.check(10**12) is None and not off.active


def test_eco_targets_only_ever_save_energy():
    s = {"eco_setpoint_c": 16.0, "eco_cool_setpoint_c": 29.0}
    t = eco.eco_targets(s, Targets("auto", 21.0, 25.0))
    assert (t.mode, t.setpoint_c, t.cool_setpoint_c) == ("auto", 16.0, 29.0)
    t = eco.eco_targets(s, Targets("heat", 12.0, 31.0))  # already thriftier: kept
    assert (t.setpoint_c, t.cool_setpoint_c) == (12.0, 31.0)


def _run(eco_after_h, ms, during=None):  # type: ignore[no-untyped-def]
    device, env, _ = make_device(apps_edit=lambda s: s.update(eco_after_h=eco_after_h, default_schedule=[]))

    async def main():  # type: ignore[no-untyped-def]
        await device.start()
        if during is not None:
            await during(env, device.apps[0])
        await env.clock.advance(ms)
        await device.stop()

    asyncio.run(main())
    return device.apps[0], env


def test_off_by_default():
    app, env = _run(0.0, 3 * HOUR)
    assert app.eco is None and app.status()["eco"] is False  # not even loaded
    assert events(env, "eco_fallback") == []


def test_eco_after_n_hours_without_cloud_schedule_updates_is_reported():
    app, env = _run(1.0, HOUR + MIN)
    assert app.status()["eco"] is True
    assert app.targets.setpoint_c == 16.0
    assert events(env, "eco_fallback") == [{"type": "eco_fallback", "active": True, "after_h": 1.0}]


def test_a_cloud_schedule_update_holds_eco_off_and_ends_it():
    async def cloud_updates(env, app):  # type: ignore[no-untyped-def]
        await env.clock.advance(50 * MIN)
        await env.store.put_state(app_mod.KEY_SCHEDULE, NIGHT, "cloud", env.clock.wall_ms())
        await env.clock.advance(30 * MIN)  # 1 h 20 min after boot, 30 min after the update
        assert not app.eco.active
        await env.clock.advance(40 * MIN)  # 1 h 10 min after the update
        assert app.eco.active
        await env.store.put_state(app_mod.KEY_SCHEDULE, NIGHT[:1], "cloud", env.clock.wall_ms())

    app, env = _run(1.0, MIN, cloud_updates)
    assert not app.eco.active
    assert [e["active"] for e in events(env, "eco_fallback")] == [True, False]


def test_a_local_schedule_change_is_not_the_cloud():
    async def local_update(env, app):  # type: ignore[no-untyped-def]
        await env.clock.advance(50 * MIN)
        await env.store.put_state(app_mod.KEY_SCHEDULE, NIGHT, "lan", env.clock.wall_ms())

    app, _ = _run(1.0, 11 * MIN, local_update)
    assert app.eco.active
