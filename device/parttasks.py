"""Tasks a board's parts need beside the apps: the status LED and the hardware watchdog.

Loaded by ``Device.start`` only when the board has a ``status_led`` or a
``watchdog`` part, so a board without them does not carry this code.
"""

HEALTH_EVERY_MS = 1000  # how often the status LED task looks at the device's health
STALL_MIN_MS = 10000  # the watchdog's patience with an app's ticks, at least


def start_part_tasks(device) -> None:  # type: ignore[no-untyped-def]
    hw = device.env.hw
    if hw.has("status_led"):
        led = hw.get("status_led")
        device.supervisor.spawn("status_led", lambda: show_health(device, led))
        if hasattr(led, "run"):  # a blinking LED (hw/mp/status_led.py) paces its own pattern
            device.supervisor.spawn("status_blink", lambda: led.run(device.env.clock))
    if hw.has("watchdog"):
        watch_control_loop(device, hw.get("watchdog"))


async def show_health(device, led) -> None:  # type: ignore[no-untyped-def]
    # Shown only on change: an LED driver may be slow (I2C display) or wear (e-paper).
    shown = None
    while True:
        mode = device.health()
        if mode != shown:
            led.show(mode)
            shown = mode
        await device.env.clock.sleep_ms(HEALTH_EVERY_MS)


def _ticks_of(app):  # type: ignore[no-untyped-def]
    return lambda: app.ticks


def watch_control_loop(device, wdt) -> None:  # type: ignore[no-untyped-def]
    """Feed the hardware watchdog while the apps run and tick (never the link: see device/watchdog.py)."""
    from device.watchdog import WatchdogFeeder

    watched = []
    stall_ms = STALL_MIN_MS
    for app in device.apps:
        progress = _ticks_of(app) if hasattr(app, "ticks") else None
        watched.append((app.name, progress))
        tick_ms = getattr(app, "settings", {}).get("tick_ms", 0)
        stall_ms = max(stall_ms, 3 * tick_ms)
    feeder = WatchdogFeeder(wdt, device.env.clock, device.supervisor, watched, stall_ms)
    device.watchdog = feeder
    device.supervisor.spawn("watchdog", feeder.run)
