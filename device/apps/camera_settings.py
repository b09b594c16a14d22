"""Camera settings (``apps.camera`` in a board profile): spec, defaults, checks.

Config-time only (released on MicroPython like the thermostat's). The frame
size is the camera part's (``hw.<camera>.width`` / ``height``); a clip of
``pre_frames + 1 + post_frames`` frames must fit in ``clip_budget_bytes``.

``clip_store`` is resolved here to ``"ram"`` or ``"files"``: ``auto`` keeps
clips in files when the board's store keeps files (``storage.backend`` log:
``<path>/clips``; sqlite: ``<path>.clips``, beside the database), else in RAM.
``clip_dir`` overrides the directory.
"""

from device.compat import path_join
from device.core.clipring import CLIP_OVERHEAD
from device.errors import ConfigError
from device.schema import validate

DEFAULT_WIDTH = 48
DEFAULT_HEIGHT = 32

SETTINGS_SPEC = {
    "type": "dict",
    "fields": {
        "camera": {"type": "str", "default": "camera", "doc": "hw part that takes the frames"},
        "frame_ms": {"type": "int", "min": 20, "max": 60000, "default": 200},
        "delta": {"type": "int", "min": 1, "max": 255, "default": 24, "doc": "grey levels a pixel must change by"},
        "min_changed_pct": {"type": "float", "min": 0.1, "max": 100.0, "default": 1.5},
        "cooldown_ms": {"type": "int", "min": 0, "max": 3600000, "default": 5000},
        "confirm_frames": {"type": "int", "min": 1, "max": 50, "default": 2},
        "stride": {"type": "int", "min": 1, "max": 16, "default": 1, "doc": "compare every n-th pixel"},
        "adapt_every": {"type": "int", "min": 1, "max": 1000, "default": 2},
        "pre_frames": {"type": "int", "min": 0, "max": 30, "default": 2},
        "post_frames": {"type": "int", "min": 1, "max": 120, "default": 4},
        "clip_budget_bytes": {"type": "int", "min": 1024, "max": 1 << 30, "default": 65536},
        "clip_store": {
            "type": "str",
            "choices": ["auto", "ram", "files"],
            "default": "auto",
            "doc": "where clips live: files survive a reboot and keep only the pre-roll in RAM",
        },
        "clip_dir": {"type": "str", "default": "", "doc": "directory of the clip files (default: by the store)"},
        "upload": {"type": "bool", "default": True, "doc": "upload clips in chunks when online"},
        "chunk_bytes": {"type": "int", "min": 128, "max": 16384, "default": 1024},
        "telemetry_ms": {"type": "int", "min": 1000, "max": 86400000, "default": 60000},
    },
}


def load_settings(board: dict) -> dict:
    """Validate ``apps.camera``; check the camera part exists and one clip fits the budget."""
    raw = board.get("apps", {}).get("camera", {})
    settings = validate(SETTINGS_SPEC, raw, "apps.camera", board.get("_source", ""))
    parts = board.get("hw") or {}
    part = parts.get(settings["camera"])
    if part is None:
        known = ", ".join(sorted(parts)) or "none"
        raise ConfigError("apps.camera.camera", "no hw part named %r (parts: %s)" % (settings["camera"], known))
    frame_bytes = part.get("width", DEFAULT_WIDTH) * part.get("height", DEFAULT_HEIGHT)
    clip_bytes = (settings["pre_frames"] + 1 + settings["post_frames"]) * frame_bytes
    _resolve_store(settings, board.get("storage") or {})
    if settings["clip_store"] == "files":
        clip_bytes += CLIP_FILE_EXTRA  # the metadata and footer each clip file ends with
    if clip_bytes + CLIP_OVERHEAD > settings["clip_budget_bytes"]:
        raise ConfigError(
            "apps.camera.clip_budget_bytes",
            "one clip takes %d bytes (%d frames of %d): the budget must hold at least that"
            % (clip_bytes + CLIP_OVERHEAD, settings["pre_frames"] + 1 + settings["post_frames"], frame_bytes),
        )
    settings["min_permille"] = int(settings["min_changed_pct"] * 10 + 0.5)
    return settings


CLIP_FILE_EXTRA = 268  # device.store.clipfiles META_MAX + FOOTER_BYTES (not imported: config-time only)


def _resolve_store(settings: dict, storage: dict) -> None:
    backend = storage.get("backend")
    path = storage.get("path") or ""
    directory = settings["clip_dir"]
    if not directory and path:
        if backend == "log":
            directory = path_join(path, "clips")
        elif backend == "sqlite":
            directory = path + ".clips"
    wanted = settings["clip_store"]
    if wanted == "auto":
        wanted = "files" if directory else "ram"
    if wanted == "files" and not directory:
        raise ConfigError(
            "apps.camera.clip_store",
            "'files' needs a directory: set apps.camera.clip_dir, or a storage backend that keeps files (log, sqlite)",
        )
    settings["clip_store"] = wanted
    settings["clip_dir"] = directory
