"""The device shadow: the reported and desired documents and the per-key merge (pure).

Two documents travel over MQTT (topics in ``device/link/__init__.py``)::

    reported  {"version": n, "state": {key: {"value": v, "version": k, "stamp": s, "origin": o}}}
    desired   {"version": n, "state": {key: {"value": v, "stamp": s}}}

``stamp`` is a hybrid-logical-clock int (``device.hlc``); the cloud stamps its
desired entries the same way (wall ms * 65536 + counter). The reported
``version`` is the sum of the reported keys' own versions: every local put of
a reported key raises it by one, it survives reboots (entry versions are
persisted) and needs no counter of its own. The desired ``version`` is the
cloud's: it goes up each time the cloud changes the document.

Keys starting with ``_`` are private to the device (the link's last-known-good
addresses, the sync engine's own book-keeping): never reported, never
applied from the cloud.

Merge policy, per key (``policies``: key -> policy; a key ending in ``*`` is
a prefix pattern, the longest matching one wins; others get
``default_policy``):

* ``device_wins`` -- safety limits. Desired never applies; when the cloud
  wants another value, the key is reported back so the cloud sees the
  device's value.
* ``latest_wins`` -- the higher stamp wins; on a tie the device keeps its
  value. A desired entry without a stamp counts as stamp 0 (it loses to any
  local value) unless the device has no value at all.
* ``cloud_wins`` -- desired applies whenever the document's version is newer
  than the last desired version applied; a document already applied (the
  same retained document received again on reconnect) changes nothing.

Either way a change the owner made locally during an outage survives the
reconnect: its stamp is newer than the stale desired entry (``latest_wins``),
and the retained desired document's version was already applied
(``cloud_wins``).
"""

import json

POLICIES = ("device_wins", "latest_wins", "cloud_wins")
PRIVATE_PREFIX = "_"


def is_private(key: str) -> bool:
    return key.startswith(PRIVATE_PREFIX)


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise ValueError("unknown merge policy %r: use one of %s" % (policy, ", ".join(POLICIES)))
    return policy


def check_policies(policies) -> dict:  # type: ignore[no-untyped-def]
    """Validate a ``{key or prefix*: policy}`` mapping; return a copy (``{}`` for None)."""
    out = {}
    if policies:
        for key in policies:
            out[key] = check_policy(policies[key])
    return out


def policy_for(key: str, policies: dict, default_policy: str) -> str:
    policy = policies.get(key)
    if policy is not None:
        return policy  # type: ignore[no-any-return]
    best = -1
    chosen = default_policy
    for pattern, policy in policies.items():
        if pattern.endswith("*"):
            stem = pattern[:-1]
            if len(stem) > best and key.startswith(stem):
                best = len(stem)
                chosen = policy
    return chosen


def same_value(a, b) -> bool:  # type: ignore[no-untyped-def]
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``; dicts and lists compared deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        for k in a:
            if k not in b or not same_value(a[k], b[k]):
                return False
        return True
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return False
        for i in range(len(a)):
            if not same_value(a[i], b[i]):
                return False
        return True
    if isinstance(b, (dict, list, tuple)):
        return False
    return a == b  # type: ignore[no-any-return]


# -- reported ---------------------------------------------------------------------


def reported_version(entries: dict) -> int:
    """The reported document's version: the sum of the reported keys' versions."""
    total = 0
    for key, entry in entries.items():
        if not is_private(key):
            total += entry.version
    return total


def reported_doc(entries: dict) -> dict:
    """The reported document for ``{key: StateEntry}`` (anything with value/version/stamp/origin)."""
    state = {}
    total = 0
    for key, e in entries.items():
        if is_private(key):
            continue
        total += e.version
        state[key] = {"value": e.value, "version": e.version, "stamp": e.stamp, "origin": e.origin}
    return {"version": total, "state": state}


# -- desired ----------------------------------------------------------------------


def parse_desired(data):  # type: ignore[no-untyped-def]
    """A desired document from JSON bytes, str or an already decoded dict.

    Returns ``{"version": int, "state": {key: {"value": v, "stamp": int or None}}}``.
    Raises ``ValueError`` naming what is wrong; an empty payload (a cleared
    retained message) gives None. Entries that are not ``{"value": ...}``
    objects, and stamps that are not non-negative ints, are refused as a whole:
    a half-understood document is not applied.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if not data:
            return None
        try:
            data = json.loads(data)
        except ValueError:
            raise ValueError("desired document is not JSON") from None
    elif isinstance(data, str):
        if not data:
            return None
        try:
            data = json.loads(data)
        except ValueError:
            raise ValueError("desired document is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("desired document is not a JSON object")
    version = data.get("version")
    if not _is_int(version) or version < 0:  # type: ignore[operator]
        raise ValueError("desired document has no version (a non-negative int): %r" % (version,))
    state = data.get("state", {})
    if not isinstance(state, dict):
        raise ValueError("desired document's state is not an object")
    out = {}
    for key in state:
        item = state[key]
        if not isinstance(key, str) or not key:
            raise ValueError("desired key %r is not a non-empty string" % (key,))
        if not isinstance(item, dict) or "value" not in item:
            raise ValueError("desired entry %r is not an object with a value" % (key,))
        stamp = item.get("stamp")
        if stamp is not None and (not _is_int(stamp) or stamp < 0):
            raise ValueError("desired entry %r has a bad stamp %r" % (key, stamp))
        out[key] = {"value": item["value"], "stamp": stamp}
    return {"version": version, "state": out}


def _is_int(value) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(value, int) and not isinstance(value, bool)


def private_keys(desired: dict) -> list:
    """The private keys a desired document names (ignored by ``merge``)."""
    return [key for key in desired["state"] if is_private(key)]


def merge(local: dict, desired: dict, policies: dict, default_policy: str, last_applied: int) -> tuple:
    """Merge a parsed desired document into the local state.

    ``local``: ``{key: entry}`` with ``.value`` and ``.stamp`` (``StateEntry``);
    ``last_applied``: the version of the last desired document applied
    (0 before any). Returns ``(changes, report, new_last_applied)``:

    * ``changes``: ``[(key, value, stamp or None), ...]`` to put with origin
      "cloud" (a None stamp: let the store's clock stamp it);
    * ``report``: keys where the device keeps a value the cloud does not want
      (the reported document should be published so the cloud learns it);
    * ``new_last_applied``: ``max(last_applied, desired version)``.

    Keys are handled in sorted order, so the result does not depend on dict order.
    """
    version = desired["version"]
    fresh = version > last_applied
    changes = []
    report = []
    state = desired["state"]
    for key in sorted(state):
        if is_private(key):
            continue
        want = state[key]
        value = want["value"]
        stamp = want["stamp"]
        entry = local.get(key)
        differs = entry is None or not same_value(entry.value, value)
        if not differs:
            continue
        policy = policy_for(key, policies, default_policy)
        if policy == "device_wins":
            apply = False
        elif policy == "cloud_wins":
            apply = fresh
        else:  # latest_wins
            apply = entry is None or (stamp is not None and stamp > entry.stamp)
        if apply:
            changes.append((key, value, stamp))
        elif entry is not None:
            report.append(key)
    return changes, report, version if fresh else last_applied
