"""The device's local store: state cache + outbox. See ``device.store.base`` for the contract.

``open_store(board["storage"])`` builds the backend the board asks for. Backends
are imported only when chosen: durable ones may need CPython-only libraries
(aiosqlite) that MicroPython must never import.
"""

from device.errors import ConfigError
from device.store.base import LANES, ORIGINS, Record, StateEntry, Store

__all__ = ["BACKENDS", "LANES", "ORIGINS", "Record", "StateEntry", "Store", "open_store"]

BACKENDS = ("memory", "sqlite", "log")
DEFAULT_BUDGET_BYTES = 262144


def _budget(storage_cfg: dict) -> int:
    budget = storage_cfg.get("budget_bytes", DEFAULT_BUDGET_BYTES)
    # bool is an int subclass: refuse true/false explicitly.
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise ConfigError("storage.budget_bytes", "must be a positive whole number of bytes, got %r" % (budget,))
    return budget


def open_store(storage_cfg: dict) -> Store:
    """Build (not open) the store for a board's ``storage`` section; ``await store.open()`` next."""
    if not isinstance(storage_cfg, dict):
        raise ConfigError("storage", 'must be an object like {"backend": "memory"}, got %r' % (storage_cfg,))
    backend = storage_cfg.get("backend")
    if backend is None:
        raise ConfigError("storage.backend", "missing: set it to one of " + ", ".join(BACKENDS))
    budget = _budget(storage_cfg)
    if backend == "memory":
        from device.store.memory import MemoryStore

        return MemoryStore(budget_bytes=budget)
    if backend in BACKENDS:
        raise ConfigError(
            "storage.backend",
            "backend %r is not available yet in this build; use 'memory' (nothing survives a restart)" % (backend,),
        )
    raise ConfigError("storage.backend", "unknown backend %r: use one of %s" % (backend, ", ".join(BACKENDS)))
