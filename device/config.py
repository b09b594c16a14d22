"""Configuration phase: load a board profile and check each app's settings.

It runs before the runtime is imported. On MicroPython ``release()`` then
drops the loader, the validator and the settings specs, so the heap they took
goes back to the running device (a 128 KiB heap cannot hold both at once).

A board skips the phase when it can (``load_checked``): the result of a
check (the validated profile and app settings) is kept in a stamp beside
the profile, ``board.ok.json``, keyed on the profile file's sha256, the
firmware ``VERSION`` and the app names. While all three match, a boot takes
the stamp and imports none of the checking code, whose interned names
(MicroPython never frees a qstr) would otherwise stay in the heap for good:
about 300 names, 8 KB on a 32-bit board. ``brickproof flash`` writes the
stamp with the image; a board whose profile was edited, or that booted new
firmware, checks in full and stamps again. The stamp is only a cache: any
doubt about it (unreadable, another format) means the full check.
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


STAMP_FORMAT = 1


def stamp_path(path: str) -> str:
    """Where the stamp of the profile at ``path`` lives: ``board.json`` -> ``board.ok.json``."""
    return (path[:-5] if path.endswith(".json") else path) + ".ok.json"


def sha256_hex(data: bytes) -> str:
    import binascii
    import hashlib

    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def make_stamp(profile_bytes: bytes, board: dict, settings: dict) -> dict:
    """The stamp vouching that ``profile_bytes`` check out as ``board`` with ``settings``."""
    from device.version import VERSION

    return {
        "format": STAMP_FORMAT,
        "version": VERSION,
        "board_sha256": sha256_hex(profile_bytes),
        "apps": sorted(settings),
        "board": board,
        "settings": settings,
    }


def _stamp_vouches(stamp: object, profile_bytes: bytes, app_names) -> bool:  # type: ignore[no-untyped-def]
    from device.version import VERSION

    if not isinstance(stamp, dict) or stamp.get("format") != STAMP_FORMAT or stamp.get("version") != VERSION:
        return False
    if stamp.get("board_sha256") != sha256_hex(profile_bytes):
        return False
    board, settings = stamp.get("board"), stamp.get("settings")
    if not isinstance(board, dict) or not isinstance(settings, dict) or not isinstance(board.get("apps"), dict):
        return False
    names = sorted(board["apps"]) if app_names is None else sorted(app_names)
    return stamp.get("apps") == names and sorted(settings) == names


def load_checked(path: str, app_names=None) -> tuple:  # type: ignore[no-untyped-def]
    """``(board, settings by app)`` for the profile at ``path``, from its stamp when that vouches for it.

    ``app_names``: the apps to configure; None: every app the profile names.
    Otherwise ``load`` + ``configure_apps`` (ConfigError names the bad path),
    and the result is stamped for the next boot (a failed stamp write is only
    logged: the board still runs, and checks in full next time).
    """
    import json

    try:
        with open(path, "rb") as f:
            profile = f.read()
    except OSError:
        profile = None  # load() says what is wrong with it
    if profile is not None:
        try:
            with open(stamp_path(path)) as f:
                stamp = json.load(f)
        except (OSError, ValueError):
            stamp = None
        if _stamp_vouches(stamp, profile, app_names):
            return stamp["board"], stamp["settings"]  # type: ignore[index]
    board, _ = load(path, [])
    names = sorted(board["apps"]) if app_names is None else list(app_names)
    settings = configure_apps(board, names)
    if profile is not None:
        _write_stamp(stamp_path(path), make_stamp(profile, board, settings))
    return board, settings


def _write_stamp(path: str, stamp: dict) -> None:
    import json
    import os

    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(stamp, f)
        os.rename(tmp, path)
    except OSError as exc:
        from device.log import get_logger

        get_logger("config").warning("profile check not stamped (%s): the next boot checks again", exc)


def load(path: str, app_names: list) -> tuple:
    """``(board, settings by app)`` from a board file."""
    from device.board import load_board

    board = load_board(path)
    return board, configure_apps(board, app_names)


def release() -> None:
    compat.release_modules(CONFIG_MODULES)
