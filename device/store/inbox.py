"""The inbox half of ``device.store.base.Store``: remember handled command ids for dedupe.

Imported on the first ``inbox_add``/``inbox_expire``: a device that never
hears a command (offline) keeps this code out of its heap. The ids live in
``store._inbox`` (command id -> expires_ms) and are persisted through the
backend's ``_save_inbox``/``_drop_inbox`` hooks before RAM changes.
"""

from device.errors import StoreError
from device.store.base import INBOX_MAX, Store


async def add(store: Store, command_id: str, expires_ms: int) -> bool:
    """``Store.inbox_add``: False if the id is already there; the soonest to expire makes room."""
    if not isinstance(command_id, str) or not command_id:
        raise StoreError("a command id must be a non-empty string, got %r" % (command_id,))
    inbox = store._inbox
    if command_id in inbox:
        return False
    evict = None
    if len(inbox) >= INBOX_MAX:
        evict = min(inbox, key=lambda cid: inbox[cid])
    await store._save_inbox(command_id, expires_ms, evict)
    if evict is not None:
        del inbox[evict]
        store.counters["inbox_evicted"] += 1
    inbox[command_id] = expires_ms
    return True


async def expire(store: Store, now_ms: int) -> int:
    """``Store.inbox_expire``: forget every id whose expiry is ``<= now_ms``; return how many."""
    inbox = store._inbox
    gone = [cid for cid in inbox if inbox[cid] <= now_ms]
    if gone:
        await store._drop_inbox(gone)
        for cid in gone:
            del inbox[cid]
    return len(gone)
