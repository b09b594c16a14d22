"""``Store.stats()``: what ``brickproof store stats`` prints. Imported on first use."""

from device.store.base import Store


def store_stats(store: Store) -> dict:
    """Counters, outbox depth and seq range, boot id, state and inbox sizes, and the backend's own sections."""
    records, size = store.depth()
    first, last = store.seq_range()
    out = {
        "backend": store.backend,
        "boot_id": store.boot_id,
        "budget_bytes": store.budget_bytes,
        "outbox": {"records": records, "bytes": size, "first_seq": first, "last_seq": last},
        "next_seq": store.next_seq(),
        "state_keys": len(store._state),
        "inbox": len(store._inbox),
        "counters": dict(store.counters),
    }
    store._more_stats(out)
    return out
