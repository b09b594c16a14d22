"""MicroPython entry point: run the device from the flashed board profile, forever.

``brickproof flash`` copies this file to the board's ``/main.py``, the
runtime (``device/``, ``hw/``) as ``.mpy`` files, and the board profile,
with its ``extends`` resolved, to ``/board.json``. At boot MicroPython runs
``boot.py`` then this file, which loads the profile, builds the environment
through ``device.boot`` (drivers from ``hw/mp``), starts the apps under the
supervisor, and never returns. The cloud link (and with it OTA offers) runs
only when the profile names the device (``link.client_id``, see
``link_device_id``); otherwise the device runs with no network. The watchdog, when the board has one, is fed
only while the control loop is healthy (``device/watchdog.py``).

For hardware-in-the-loop tests and the REPL it stays out of the way:

* a file ``norun`` next to it (``mpremote fs touch :norun``) stops the auto-run;
* so does a soft reset (``machine.reset_cause() == machine.SOFT_RESET``, Ctrl-D
  at the REPL, ``mpremote soft-reset``): a power-on, hard or watchdog reset runs;
* ``import main; main.run(for_s=60)`` runs the device for a while and returns
  its summary; it prints ``boot heap_used=N`` once the device has started and
  ``summary {...}`` at the end (one JSON line each).

Over-the-air updates (``device/ota``): before the device is imported, the
boot control record ``ota/boot.json`` picks the slot to boot
(``device/ota/bootsel.py``, from the reset cause): ``factory`` (the flashed
image) or an update slot ``ota/a`` / ``ota/b``. The selector's own modules
come from the factory image; they leave ``sys.modules`` again and the slot's
directory goes first on ``sys.path``, so every ``device``/``hw`` import after
that is the slot's. One line ``ota slot=S note=N`` says what was chosen. A
trial boot whose device raises rolls back now and resets; a trial that hangs
is rolled back by the next boot after the watchdog reset. Anything wrong in
the selection itself boots the factory image: it is the floor. A REPL
``main.run()`` (norun, soft reset) selects nothing: it runs the code that is
importable, the factory's.

Paths are relative to the working directory, which is ``/`` on a board (and
the board's filesystem directory on the virtual board).
"""

import sys

BOARD_PATH = "board.json"
NORUN_PATH = "norun"
OTA_ROOT = ""  # the device root the OTA files live under: the working directory
# machine.reset_cause() constant -> the reset cause device/ota/record.py knows
_CAUSES = (
    ("WDT_RESET", "wdt"),
    ("SOFT_RESET", "soft"),
    ("DEEPSLEEP_RESET", "reset"),
    ("HARD_RESET", "reset"),
    ("PWRON_RESET", "power"),
)


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

    # From the profile's stamp when it vouches for it (``brickproof flash`` writes one), else checked in full.
    board, app_settings = config.load_checked(board_path, apps)
    config.release()  # the validator's code goes back to the heap before the device is built
    del config
    for_ms = None if for_s is None else int(for_s * 1000)
    held = [board]  # handed over, not kept here: _serve drops the profile once the device is built
    del board
    return asyncio.run(_serve(held, app_settings, for_ms))  # type: ignore[no-untyped-call]


def link_device_id(board):  # type: ignore[no-untyped-def]
    """The device id to connect the cloud link with: the profile's ``link.client_id``, else None.

    A board brings up no network interface itself (no Wi-Fi setup here), so the
    link runs only when the profile names the device: on the virtual board (the
    host's network) or once a profile's network is up. Unnamed, it runs offline.
    """
    link = board.get("link")
    return link.get("client_id") if isinstance(link, dict) else None


async def _serve(held, app_settings, for_ms):  # type: ignore[no-untyped-def]
    import json

    from device import compat
    from device.boot import Device, build_env
    from device.clock import VirtualClock

    board = held.pop()
    device_id = link_device_id(board)  # type: ignore[no-untyped-call]
    env, world = build_env(board, with_link=bool(device_id))
    del board  # the device keeps what it reads later (build_env); the rest of the profile goes
    device = Device(env, app_settings, world)
    if device_id:
        device.attach_link(device_id)
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


def reset_cause(machine) -> str:  # type: ignore[no-untyped-def]
    """The last reset as record.choose names it; "power" when the port cannot say."""
    get = getattr(machine, "reset_cause", None)
    if get is None:
        return "power"
    code = get()
    for const, cause in _CAUSES:
        if getattr(machine, const, None) == code:
            return cause
    return "power"


def select_slot(cause: str, root: str = OTA_ROOT):  # type: ignore[no-untyped-def]
    """Pick the slot to boot and make its code the one imported; ``(slot, guard)``.

    ``guard`` is ``(bootsel, files)`` of the factory image when this is a trial
    boot (to roll back if the device raises), else None.
    """
    guard = None
    try:
        from device.ota import bootsel
        from device.ota.otafs import OtaFiles

        files = OtaFiles(root)
        slot, slot_dir, note = bootsel.select(files, cause)
        rec = bootsel.read_record(files)[0]
        trial = rec.get("trial") if isinstance(rec, dict) else None
        if isinstance(trial, dict) and trial.get("slot") == slot and slot != "factory":
            guard = (bootsel, files)  # held: the slot's code must not be what rolls it back
    except Exception as exc:  # the factory image is the floor: a broken selection boots it
        slot, slot_dir, note = "factory", "", "boot selection failed: %s" % _describe(exc)
    # The selector imported the factory's device package; the slot's must be imported afresh.
    for name in list(sys.modules):
        if name == "device" or name.startswith("device.") or name == "hw" or name.startswith("hw."):
            del sys.modules[name]
    if slot_dir:
        sys.path.insert(0, root + "/" + slot_dir if root else slot_dir)
    _say("ota slot=%s note=%s" % (slot, note))
    return slot, guard


def _describe(exc: BaseException) -> str:
    text = "%s: %s" % (type(exc).__name__, exc)
    return text[:120]


def _machine():  # type: ignore[no-untyped-def]
    try:
        import machine  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return machine


def _main() -> None:
    reason = skip_reason()
    if reason:
        _say("main.py: device not started (%s); `import main; main.run()` starts it" % reason)
        return
    machine = _machine()  # type: ignore[no-untyped-call]
    slot, guard = select_slot(reset_cause(machine))
    try:
        run()
    except Exception as exc:  # a bad profile must leave the REPL usable, not reset-loop the board
        _say("main.py: device stopped: %s" % exc)
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc)
        if guard is not None:  # a trial boot that raises is rolled back now, then the board resets
            _roll_back(guard, slot, exc, machine)


def _roll_back(guard, slot: str, exc: BaseException, machine) -> None:  # type: ignore[no-untyped-def]
    bootsel, files = guard
    try:
        if not bootsel.crashed_on_trial(files, "crashed on trial boot: " + _describe(exc)):
            return  # no longer on trial (the health gate passed): the slot is good, keep the REPL
        _say("ota slot=%s rolled back; resetting" % slot)
    except Exception as err:  # still reset: the next boots count the trial out (max_trial_boots)
        _say("ota rollback failed: %s; resetting" % _describe(err))
    if machine is not None:
        machine.reset()


if __name__ == "__main__":
    _main()
