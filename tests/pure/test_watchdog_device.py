"""A board with a watchdog part: the Device feeds it while the thermostat runs (device/boot.py + device/watchdog.py)."""

import asyncio

from device import config, log
from device.boot import Device, build_env
from hw.mp.status_led import StatusLed
from hw.mp.watchdog import Watchdog
from tests.pure._check import repo_path
from tests.pure._fake_machine import FakePin
from tests.pure.test_watchdog import RecordingWdt


def _run(main):  # type: ignore[no-untyped-def]
    lines: list = []
    log.set_sink(lines.append)
    try:
        return asyncio.run(main()), lines
    finally:
        log.set_sink(None)


def test_a_board_with_a_watchdog_gets_it_fed_by_the_device():
    async def main():  # type: ignore[no-untyped-def]
        board, _ = config.load(repo_path("boards/host_sim.json"), ["thermostat"])
        settings = config.configure_apps(board, ["thermostat"])
        env, world = build_env(board)
        made: list = []

        def make_wdt(ms):  # type: ignore[no-untyped-def]
            made.append(RecordingWdt(env.clock))
            return made[-1]

        env.hw.add("watchdog", Watchdog(make_wdt, 8000))
        pin = FakePin()
        env.hw.add("status_led", StatusLed(pin))
        device = Device(env, settings, world)
        await device.start()
        await env.clock.advance(120000)
        feeder = device.watchdog
        led = env.hw.get("status_led")
        await device.stop()
        return made, feeder, led, pin

    (made, feeder, led, pin), _ = _run(main)
    # the LED blinks its pattern by itself: offline, no fault -> local_only, 1 s on / 1 s off
    assert led.mode == "local_only"
    assert pin.writes.count(1) > 10 and pin.writes.count(0) > 10
    assert len(made) == 1  # armed once, on the first healthy check
    assert made[0].feeds == 121 and made[0].max_gap == 1000
    assert feeder is not None and feeder.withheld == 0
