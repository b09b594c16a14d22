"""Configuration phase: load a board profile and check each app's settings.

It runs before the runtime is imported. On MicroPython ``release()`` then
drops the loader, the validator and the settings specs, so the heap they took
goes back to the running device (a 128 KiB heap cannot hold both at once).
"""

from device import compat
from device.errors import ConfigError

APP_NAMES = ("thermostat", "bed", "camera")

CONFIG_MODULES = (
    "device.config",
    "device.board",
    "device.schema",
    "device.apps.thermostat_settings",
    "device.apps.bed_settings",
    "device.apps.camera_settings",
)


def configure_apps(board: dict, app_names: list) -> dict:
    """Return ``{app name: validated settings}``; ``ConfigError`` names the bad path."""
    configured = {}
    for name in app_names:
        if name not in APP_NAMES:
            raise ConfigError("app", "unknown app %r (known: %s)" % (name, ", ".join(APP_NAMES)))
        if name == "bed":
            from device.apps.bed_settings import load_settings as load_bed

            configured[name] = load_bed(board)
            continue
        if name == "camera":
            from device.apps.camera_settings import load_settings as load_camera

            configured[name] = load_camera(board)
            continue
        from device.apps.thermostat_settings import load_settings

        configured[name] = load_settings(board)
    return configured


def load(path: str, app_names: list) -> tuple:
    """``(board, settings by app)`` from a board file."""
    from device.board import load_board

    board = load_board(path)
    return board, configure_apps(board, app_names)


def release() -> None:
    compat.release_modules(CONFIG_MODULES)
