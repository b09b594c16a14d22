"""Building a store from a board's ``storage`` section: the body of ``device.store.open_store``.

Boot-time code: ``open_store`` releases this module once the store is built,
so on MicroPython its code goes back to the heap. Backends are imported only
when chosen: durable ones may need CPython-only libraries (aiosqlite) that
MicroPython must never import.
"""

from device.compat import IS_MICROPYTHON
from device.errors import ConfigError
from device.store import BACKENDS
from device.store.base import Store

DEFAULT_BUDGET_BYTES = 262144


def _budget(storage_cfg: dict) -> int:
    budget = storage_cfg.get("budget_bytes", DEFAULT_BUDGET_BYTES)
    # bool is an int subclass: refuse true/false explicitly.
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise ConfigError("storage.budget_bytes", "must be a positive whole number of bytes, got %r" % (budget,))
    return budget


def _positive(storage_cfg: dict, key: str, default: int) -> int:
    value = storage_cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError("storage." + key, "must be a positive whole number, got %r" % (value,))
    return value


def _path(storage_cfg: dict, backend: str) -> str:
    path = storage_cfg.get("path")
    if not isinstance(path, str) or not path:
        raise ConfigError("storage.path", "required for backend %r: where its files live" % (backend,))
    return path


def build_store(storage_cfg: dict) -> Store:
    if not isinstance(storage_cfg, dict):
        raise ConfigError(
            "storage", 'must be an object like {"backend": "log", "path": "store"}, got %r' % (storage_cfg,)
        )
    backend = storage_cfg.get("backend")
    if backend is None:
        raise ConfigError("storage.backend", "missing: set it to one of " + ", ".join(BACKENDS))
    budget = _budget(storage_cfg)
    fsync = storage_cfg.get("fsync", True)
    if not isinstance(fsync, bool):
        raise ConfigError("storage.fsync", "must be true or false, got %r" % (fsync,))
    if backend == "memory":
        from device.store.memory import CHUNK_BYTES, MemoryStore

        # Chunks of at most 1/8 of the budget (not under 512 bytes): on a small
        # budget the partly filled last chunk and the spare blocks stay small too.
        chunk_bytes = min(CHUNK_BYTES, max(512, budget // 8))
        return MemoryStore(budget_bytes=budget, chunk_bytes=chunk_bytes)
    if backend == "sqlite":
        if IS_MICROPYTHON:
            raise ConfigError("storage.backend", "'sqlite' needs CPython; on MicroPython use 'log'")
        from device.store.sqlite import SqliteStore

        return SqliteStore(
            _path(storage_cfg, backend),
            budget_bytes=budget,
            fsync=fsync,
            group_commit_ms=_positive(storage_cfg, "group_commit_ms", 2),
        )
    if backend == "log":
        from device.store.fileio import Files
        from device.store.log import LogStore

        return LogStore(
            Files(_path(storage_cfg, backend)),
            budget_bytes=budget,
            fsync=fsync,
            segment_bytes=_positive(storage_cfg, "segment_bytes", 4096),
            erase_block_bytes=_positive(storage_cfg, "erase_block_bytes", 4096),
            erase_cycles=_positive(storage_cfg, "erase_cycles", 100000),
        )
    raise ConfigError("storage.backend", "unknown backend %r: use one of %s" % (backend, ", ".join(BACKENDS)))
