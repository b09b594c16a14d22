"""MicroPython entry point: run the device from the flashed board profile, forever, with no network.

``brickproof flash`` copies this file to the board's ``/main.py``, the
runtime (``device/``, ``hw/``) as ``.mpy`` files, and the board profile,
with its ``extends`` resolved, to ``/board.json``. At boot MicroPython runs
``boot.py`` then this file, which loads the profile, builds the environment
through ``device.boot`` (drivers from ``hw/mp``), starts the apps under the
supervisor, and never returns. The watchdog, when the board has one, is fed
only while the control loop is healthy (``device/watchdog.py``).

For hardware-in-the-loop tests and the REPL it stays out of the way:

* a file ``norun`` next to it (``mpremote fs touch :norun``) stops the auto-run;
* so does a soft reset (``machine.reset_cause() == machine.SOFT_RESET``, Ctrl-D
  at the REPL, ``mpremote soft-reset``): a power-on, hard or watchdog reset runs;
* ``import main; main.run(for_s=60)`` runs the device for a while and returns
  its summary; it prints ``boot heap_used=N`` once the device has started and
  ``summary {...}`` at the end (one JSON line each).

Paths are relative to the working directory, which is ``/`` on a board (and
the board's filesystem directory on the virtual board).
"""

import sys

BOARD_PATH = "board.json"
NORUN_PATH = "norun"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def skip_reason(norun_path: str = NORUN_PATH, machine=None) -> str:  # type: ignore[no-untyped-def]
    """Why not to start the device at boot ("" to start it)."""
    import os

    try:
        os.stat(norun_path)
        return norun_path + " exists"
    except OSError:
        pass
    if machine is None:
        try:
            import machine  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return ""
    soft = getattr(machine, "SOFT_RESET", None)
    cause = getattr(machine, "reset_cause", None)
    if soft is not None and cause is not None and cause() == soft:
        return "soft reset"
    return ""


def run(board_path: str = BOARD_PATH, for_s=None, apps=None):  # type: ignore[no-untyped-def]
    """Configure and run the device; forever when ``for_s`` is None, else return its summary."""
    import asyncio

    from device import compat

    compat.tune_gc()
    from device import config

    board, app_settings = config.load(board_path, [])
    names = apps if apps is not None else sorted(board["apps"])
    app_settings = config.configure_apps(board, names)
    config.release()  # the validator's code goes back to the heap before the device is built
    del config
    for_ms = None if for_s is None else int(for_s * 1000)
    return asyncio.run(_serve(board, app_settings, for_ms))  # type: ignore[no-untyped-call]


async def _serve(board, app_settings, for_ms):  # type: ignore[no-untyped-def]
    import json

    from device import compat
    from device.boot import Device, build_env
    from device.clock import VirtualClock

    env, world = build_env(board)
    del board
    device = Device(env, app_settings, world)
    await device.start()
    compat.collect_garbage()
    _say("boot heap_used=%d" % compat.heap_used())
    clock = env.clock
    try:
        if for_ms is None:
            while True:  # forever: the supervised tasks do the work
                await clock.sleep_ms(3600000)
        elif isinstance(clock, VirtualClock):  # a simulated board (host or virtual board tests)
            await clock.run_until(device.boot_ms + for_ms)
        else:
            await clock.sleep_ms(for_ms)
    finally:
        await device.stop()
    summary = device.summary()
    _say("summary " + json.dumps(summary))
    return summary


def _main() -> None:
    reason = skip_reason()
    if reason:
        _say("main.py: device not started (%s); `import main; main.run()` starts it" % reason)
        return
    try:
        run()
    except Exception as exc:  # a bad profile must leave the REPL usable, not reset-loop the board
        _say("main.py: device stopped: %s" % exc)
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc)


if __name__ == "__main__":
    _main()
