"""The device's local store: state cache, outbox, inbox. See ``device.store.base`` for the contract.

``open_store(board["storage"])`` builds the backend the board asks for.
"""

from device.compat import release_modules
from device.store.base import LANES, ORIGINS, Record, StateEntry, Store

__all__ = ["BACKENDS", "LANES", "ORIGINS", "Record", "StateEntry", "Store", "open_store"]

BACKENDS = ("memory", "sqlite", "log")


def open_store(storage_cfg: dict) -> Store:
    """Build (not open) the store for a board's ``storage`` section; ``await store.open()`` next.

    Raises ``ConfigError`` for a bad section (see ``device.store.factory``).
    """
    from device.store.factory import build_store

    store = build_store(storage_cfg)
    release_modules(("device.store.factory",))  # boot-time code: give its heap back (MicroPython)
    return store
