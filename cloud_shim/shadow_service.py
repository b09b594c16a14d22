"""The cloud's device shadow: desired and reported documents per device, kept in SQLite.

Documents (``device/core/shadow.py`` has the formats)::

    desired   {"version": n, "state": {key: {"value": v, "stamp": hlc}}}    cloud -> device, retained
    reported  {"version": n, "state": {key: {"value", "version", "stamp", "origin"}}}
    delta     {"version": desired version, "state": {key: desired value}}  cloud -> observers, retained

* ``set_desired(device, state)`` bumps the device's desired version by one,
  stamps every key it sets with one fresh HLC stamp (``device.hlc``, physical
  part from ``wall_ms()``: in the simulator the *simulated* wall clock, the one
  the devices stamp with), persists the whole document, then publishes it
  retained (QoS 1). Keys it does not name keep their value and stamp.
* Reported documents (``bp/+/shadow/reported``) apply by version: one older
  than the stored one is ignored (``reported_stale``); the same document again
  (a retained redelivery) is counted as ``reported_same``. A device whose
  store was wiped reports from version 0 again and stays stale until
  ``forget(device)``.
* **Delta** (``bp/{d}/shadow/delta``, retained, QoS 1; the devices do not
  subscribe to it, observers do): the desired keys whose reported value
  differs (or is missing). Published whenever it changes, with an empty
  ``state`` once it is gone; all of them again, with the desired documents,
  after every (re)connect, since a broker without persistence forgets
  retained messages when it restarts.
* **Converged** (``converged(device)``): every key the cloud set is settled.
  A key is settled when the device reports the desired value, or reports
  another value that the device's merge rules keep on purpose:

  - the key's policy is ``device_wins`` (``policies``, e.g. from
    ``app_policies``): the device owns it, whatever the cloud asked;
  - the reported stamp is newer than the desired stamp: the owner changed it
    on the device after the cloud asked (during an outage, say); under
    ``latest_wins`` the device keeps it, and a ``cloud_wins`` document already
    applied is not applied again. The cloud's wish was superseded.

  A key the device has not reported is not settled. ``delta`` stays strict
  (any difference); ``converged`` is what the simulator's invariant checks.

Reads (``delta``, ``converged``, ``stats`` ...) are thread-safe and served
from memory; paho's thread feeds reported documents in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cloud_shim.service_client import ServiceClient
from device.core import shadow
from device.hlc import HLC
from device.link import topics

DELTA_TAIL = "shadow/delta"

COUNTER_NAMES = (
    "desired_sets",
    "desired_published",
    "republished",
    "reported_received",
    "reported_applied",
    "reported_same",
    "reported_stale",
    "reported_malformed",
    "deltas_published",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS desired (device TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reported (
    device TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL, received_wall_ms INTEGER
);
"""


def delta_topic(device_id: str) -> str:
    return "%s/%s/%s" % (topics.PREFIX, device_id, DELTA_TAIL)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_device(device: str) -> None:
    if not isinstance(device, str) or not device or any(c in device for c in "/+#"):
        raise ValueError("device id must be a non-empty string without '/', '+' or '#': %r" % (device,))


def app_policies(apps: Iterable[str]) -> dict[str, str]:
    """The merge policies the named apps declare (``shadow_policies``), for ``policies=``."""
    from device.boot import _app_class

    out: dict[str, str] = {}
    for name in apps:
        out.update(getattr(_app_class(name), "shadow_policies", {}) or {})
    return out


class ShadowService:
    def __init__(
        self,
        host: str,
        port: int,
        db_path: str | Path,
        wall_ms: Callable[[], int | None] = _now_ms,
        client_id: str | None = None,
        policies: dict[str, str] | None = None,
        default_policy: str = "latest_wins",
    ) -> None:
        self.wall_ms = wall_ms
        self.policies = shadow.check_policies(policies)
        self.default_policy = shadow.check_policy(default_policy)
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._lock = threading.RLock()  # memory, the db, and the order of publishes per device
        self._db = sqlite3.connect(str(db_path), check_same_thread=False)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA)
        self._hlc = HLC()
        self._desired: dict[str, dict[str, Any]] = {}
        self._reported: dict[str, dict[str, Any]] = {}
        self._delta_sent: dict[str, dict[str, Any]] = {}  # device -> delta state last published
        self._converged_at: dict[str, int | None] = {}  # device -> wall ms it became converged
        self._load()
        self._mqtt = ServiceClient(
            host,
            port,
            client_id or "shadow-%d" % id(self),
            [("%s/+/shadow/reported" % topics.PREFIX, 1)],
            self._on_message,
            on_connected=self._republish,
        )

    def _load(self) -> None:
        for device, doc in self._db.execute("SELECT device, doc FROM desired"):
            parsed = json.loads(doc)
            self._desired[device] = parsed
            for entry in parsed["state"].values():
                self._hlc.observe(int(entry["stamp"]))  # stamps keep increasing across restarts
        for device, doc in self._db.execute("SELECT device, doc FROM reported"):
            self._reported[device] = json.loads(doc)
        now = self.wall_ms()
        for device in self._desired:
            if self._converged_now(device):
                self._converged_at[device] = now if now is not None else 0

    # -- life --------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> ShadowService:
        self._mqtt.start(timeout_s)
        return self

    def stop(self) -> None:
        self._mqtt.stop()
        with self._lock:
            self._db.close()

    def __enter__(self) -> ShadowService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) for the PUBACKs of everything published so far."""
        return self._mqtt.flush(timeout_s)

    # -- the cloud's side ------------------------------------------------------------------

    def set_desired(self, device: str, state: dict[str, Any]) -> int:
        """Set desired keys of one device; returns its new desired version."""
        return self.set_desired_many([device], state)[device]

    def set_desired_many(self, devices: Iterable[str], state: dict[str, Any]) -> dict[str, int]:
        """The same keys on many devices: one stamp, one transaction; ``{device: new version}``."""
        devices = list(devices)
        for device in devices:
            _check_device(device)
        if not isinstance(state, dict) or not state:
            raise ValueError("desired state must be a non-empty object")
        for key in state:
            if not isinstance(key, str) or not key or shadow.is_private(key):
                raise ValueError("desired key %r: a non-empty string not starting with '_'" % (key,))
        json.dumps(state)  # TypeError now rather than half-way through
        out = {}
        with self._lock:
            stamp = self._hlc.now(self.wall_ms())
            docs = {}
            for device in devices:
                before = self._desired.get(device, {"version": 0, "state": {}})
                keys = dict(before["state"])
                for key, value in state.items():
                    keys[key] = {"value": value, "stamp": stamp}
                docs[device] = {"version": before["version"] + 1, "state": keys}
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO desired (device, version, doc) VALUES (?, ?, ?)",
                    [(d, doc["version"], json.dumps(doc, sort_keys=True)) for d, doc in docs.items()],
                )
            for device, doc in docs.items():
                self._desired[device] = doc
                self.counters["desired_sets"] += 1
                self._publish_desired(device)
                self._refresh(device)
                out[device] = doc["version"]
        return out

    def forget(self, device: str) -> None:
        """Drop the stored reported document (a device whose store was replaced reports from 0)."""
        with self._lock:
            self._reported.pop(device, None)
            with self._db:
                self._db.execute("DELETE FROM reported WHERE device = ?", (device,))
            self._refresh(device)

    # -- reads (any thread) ----------------------------------------------------------------

    def desired(self, device: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._desired.get(device)
            return json.loads(json.dumps(doc)) if doc is not None else None

    def reported(self, device: str) -> dict[str, Any] | None:
        with self._lock:
            doc = self._reported.get(device)
            return json.loads(json.dumps(doc)) if doc is not None else None

    def delta(self, device: str) -> dict[str, Any]:
        """``{key: desired value}`` for the desired keys the device does not report with that value."""
        with self._lock:
            return self._delta(device)

    def converged(self, device: str) -> bool:
        with self._lock:
            return self._converged_now(device)

    def converged_wall_ms(self, device: str) -> int | None:
        """When (``wall_ms()``) the device last became converged; None while it is not."""
        with self._lock:
            return self._converged_at.get(device)

    def converged_count(self, devices: Iterable[str] | None = None) -> int:
        """How many of ``devices`` (default: every device with a desired document) are converged."""
        with self._lock:
            names = list(self._desired) if devices is None else list(devices)
            return sum(1 for d in names if self._converged_now(d))

    def unconverged(self) -> list[str]:
        with self._lock:
            return sorted(d for d in self._desired if not self._converged_now(d))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.counters)
            out["devices"] = len(set(self._desired) | set(self._reported))
            out["desired_devices"] = len(self._desired)
            out["converged"] = sum(1 for d in self._desired if self._converged_now(d))
            out["unconverged"] = out["desired_devices"] - out["converged"]
            kinds = {"superseded": 0, "device_owned": 0}
            for device in self._desired:
                for key in self._delta(device):
                    kind = self._settled_by(device, key)
                    if kind in kinds:
                        kinds[kind] += 1
            out["superseded_keys"] = kinds["superseded"]
            out["device_owned_keys"] = kinds["device_owned"]
        out["connects"] = self._mqtt.connects
        out["callback_errors"] = self._mqtt.callback_errors
        out["unacked"] = self._mqtt.unacked()
        return out

    # -- rules (under the lock) ------------------------------------------------------------

    def _delta(self, device: str) -> dict[str, Any]:
        want = self._desired.get(device)
        if want is None:
            return {}
        have = (self._reported.get(device) or {}).get("state", {})
        out = {}
        for key, entry in want["state"].items():
            got = have.get(key)
            if not isinstance(got, dict) or "value" not in got or not shadow.same_value(got["value"], entry["value"]):
                out[key] = entry["value"]
        return out

    def _settled_by(self, device: str, key: str) -> str | None:
        """Why a differing key is settled anyway ("device_owned", "superseded"), or None."""
        got = (self._reported.get(device) or {}).get("state", {}).get(key)
        if not isinstance(got, dict) or "value" not in got:
            return None  # not reported: nothing settles it
        if shadow.policy_for(key, self.policies, self.default_policy) == "device_wins":
            return "device_owned"
        stamp = got.get("stamp")
        if isinstance(stamp, int) and stamp > self._desired[device]["state"][key]["stamp"]:
            return "superseded"
        return None

    def _converged_now(self, device: str) -> bool:
        return all(self._settled_by(device, key) is not None for key in self._delta(device))

    def _refresh(self, device: str) -> None:
        """After a change: publish the delta if it moved; note when the device converged."""
        delta = self._delta(device)
        if not shadow.same_value(delta, self._delta_sent.get(device, {})):
            self._publish_delta(device, delta)
        if device not in self._desired:
            return
        if self._converged_now(device):
            if self._converged_at.get(device) is None:
                now = self.wall_ms()
                self._converged_at[device] = now if now is not None else 0  # 0: wall time unknown
        else:
            self._converged_at[device] = None

    def _publish_desired(self, device: str) -> None:
        doc = self._desired[device]
        self._mqtt.publish(topics.desired_topic(device), json.dumps(doc).encode(), 1, True)
        self.counters["desired_published"] += 1

    def _publish_delta(self, device: str, delta: dict[str, Any]) -> None:
        version = self._desired.get(device, {"version": 0})["version"]
        body = json.dumps({"version": version, "state": delta}).encode()
        self._mqtt.publish(delta_topic(device), body, 1, True)
        self._delta_sent[device] = delta
        self.counters["deltas_published"] += 1

    # -- paho's thread ---------------------------------------------------------------------

    def _republish(self) -> None:
        """After every connect: the retained documents again (a restarted broker lost them)."""
        with self._lock:
            for device in sorted(self._desired):
                self._publish_desired(device)
                self._publish_delta(device, self._delta(device))
                self.counters["republished"] += 1

    def _on_message(self, topic: str, payload: bytes) -> None:
        device, rest = topics.split_topic(topic)
        if device is None or rest != "shadow/reported" or not payload:
            return  # an empty payload: a cleared retained message
        with self._lock:
            self.counters["reported_received"] += 1
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = None
            if not _valid_reported(doc):
                self.counters["reported_malformed"] += 1
                return
            before = self._reported.get(device)
            if before is not None:
                if doc["version"] < before["version"]:
                    self.counters["reported_stale"] += 1
                    return
                if doc == before:
                    self.counters["reported_same"] += 1
                    return
            self._reported[device] = doc
            with self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO reported (device, version, doc, received_wall_ms) VALUES (?, ?, ?, ?)",
                    (device, doc["version"], json.dumps(doc), self.wall_ms()),
                )
            self.counters["reported_applied"] += 1
            self._refresh(device)


def _valid_reported(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("state"), dict):
        return False
    version = doc.get("version")
    return isinstance(version, int) and not isinstance(version, bool) and version >= 0
