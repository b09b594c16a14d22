"""The log store's open path (``LogStore.open``), loaded for the open and released after it.

Run once per boot: restore ``state.json`` (state cache and inbox), recover
the outbox from the segments (``device.store.logrecover``), pick this boot's
id and record it. Kept apart from ``device.store.log`` so the running
device does not carry this code (a 128 KiB heap).
"""

from device.store.base import StateEntry
from device.store.log import recover
from device.store.logstate import BOOT_PREFIX, STATE_FILE, boot_of, decode_snapshot


def open_log(store, readonly: bool) -> None:  # type: ignore[no-untyped-def]
    """``LogStore.open``: restore the state snapshot, recover the segments, count this boot."""
    store.readonly = readonly
    store._opened_at = store._clock()
    files = store.files
    ring = store._ring
    try:
        if not readonly:
            files.make_root()
        names = files.listdir()
    except OSError as exc:
        if not readonly:
            raise store._medium_error(exc, "create the store directory") from None
        names = []  # nothing there yet: an empty store
    last_boot = _load_state(store, names)
    for name in names:
        boot = boot_of(name)
        if boot > last_boot:
            last_boot = boot
    try:
        restored = recover(ring, names)
    except OSError as exc:  # listed a moment ago, gone or unreadable now
        ring.note("segments unreadable (%s); outbox starts empty" % (exc,))
        restored = {}
    for name in restored:
        store.counters[name] += restored[name]
    store.counters["corrupt_skipped"] += ring.damage
    ring.damage = 0
    store._uptime_base = ring.uptime_ms
    if ring.max_boot > last_boot:
        last_boot = ring.max_boot
    store.boot_id = last_boot if readonly else last_boot + 1
    ring.boot = store.boot_id
    store._open = True
    if not readonly:
        _count_boot(store, names)


def _count_boot(store, names: list) -> None:  # type: ignore[no-untyped-def]
    """Name the new boot id in an empty file (no data: works on a full flash), drop older names."""
    files = store.files
    try:
        files.create(BOOT_PREFIX + str(store.boot_id)).close()
        files.sync_dir()
        for name in names:
            if boot_of(name) >= 0 or name == STATE_FILE + ".tmp":
                files.remove(name)
    except OSError as exc:
        error = store._medium_error(exc, "record boot %d" % store.boot_id)
        store._ring.note(str(error), False)


def _load_state(store, names: list) -> int:  # type: ignore[no-untyped-def]
    """Load ``state.json``; the boot id it names (0 if none)."""
    if STATE_FILE not in names:
        return 0
    try:
        data = store.files.read(STATE_FILE)
    except OSError as exc:
        snap, why = None, "unreadable (%s)" % (exc,)
    else:
        snap, why = decode_snapshot(data)
    if snap is None:
        store._ring.note("%s: %s; state and inbox start empty" % (STATE_FILE, why), False)
        store.counters["corrupt_skipped"] += 1
        return 0
    entries = []
    for key, value, version, origin, stamp in snap["state"]:
        entries.append(StateEntry(key, value, version, origin, stamp))
    store._restore_state(entries)
    store._restore_inbox(snap["inbox"])
    store._state_bytes = snap.get("wear_bytes", 0)
    return snap.get("boot", 0)  # type: ignore[no-any-return]
