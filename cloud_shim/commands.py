"""The cloud's command issuer: commands out on ``bp/{d}/cmd``, results back from lane ``result``.

``issue(device, name, args, ttl_ms)`` publishes (QoS 1, not retained)::

    {"id": "<issuer>-<n>", "name": name, "args": {...}, "issued_wall_ms": wall_ms(), "ttl_ms": ttl_ms}

(the format ``device/link/commands.py`` expects; ``wall_ms`` is the
simulated wall clock in the simulator, the one the devices check expiry
against). Ids are unique: a random prefix per issuer and a counter.
``resend(id)`` publishes the same command again (a retry; the device runs an
id at most once). Publishes do not block; ``flush`` waits for the PUBACKs.

Results are the devices' outbox records on ``bp/+/out/result``; their payload
``{"id", "name", "status", "result"|"error"}`` is matched to the issued id.
The device answers each id at most once (its inbox dedupes), so:

* the same record again (same ``(dev, seq)``: a QoS 1 redelivery) is
  absorbed and counted as ``redelivered``;
* another record for an id already answered is counted in ``duplicate_results`` (a
  command that ran twice: a bug on the device side);
* a result for an id this issuer did not issue is ``foreign`` (another issuer,
  or a test publishing by hand) and is ignored.

``stats()``: ``issued``, one count per status (``ok``, ``expired``,
``rejected``, ``error``, ``timeout``), ``unanswered`` (issued, no result
yet), ``overdue`` (unanswered and past expiry plus ``overdue_margin_ms``:
most likely lost, e.g. queued on a broker that restarted), the counters
above, ``malformed`` and ``other_status`` (a status not in ``STATUSES``).
(A token issuer for the LAN API is issue 7's, not here.)
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from cloud_shim.service_client import ServiceClient
from device.link import topics

STATUSES = ("ok", "expired", "rejected", "error", "timeout")
DEFAULT_TTL_MS = 10 * 60 * 1000
OVERDUE_MARGIN_MS = 60 * 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


class CommandIssuer:
    def __init__(
        self,
        host: str,
        port: int,
        wall_ms: Callable[[], int | None] = _now_ms,
        client_id: str | None = None,
        overdue_margin_ms: int = OVERDUE_MARGIN_MS,
        clean_session: bool = True,
    ) -> None:
        self.wall_ms = wall_ms
        self.overdue_margin_ms = overdue_margin_ms
        self.id_prefix = "c%s" % secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._changed = threading.Condition()
        self._issued: dict[str, dict[str, Any]] = {}  # id -> {"device", "name", "expires_wall_ms"}
        self._results: dict[str, dict[str, Any]] = {}  # id -> result payload (first answer)
        self._answered_by: dict[str, tuple[str, int]] = {}  # id -> (device, seq) of the first answer
        self._by_device: dict[str, list[str]] = {}  # device -> ids answered, in arrival order
        self.counters = dict.fromkeys(("redelivered", "duplicate_results", "foreign", "malformed", "other_status"), 0)
        self.status_counts = dict.fromkeys(STATUSES, 0)
        # clean_session=False (with a fixed client_id): results published while this issuer
        # reconnects are queued for it by the broker, which then keeps the session after stop().
        self._mqtt = ServiceClient(
            host,
            port,
            client_id or "commands-" + self.id_prefix,
            [("%s/+/out/result" % topics.PREFIX, 1)],
            self._on_message,
            clean_session=clean_session,
        )

    def start(self, timeout_s: float = 10.0) -> CommandIssuer:
        self._mqtt.start(timeout_s)
        return self

    def stop(self) -> None:
        self._mqtt.stop()

    def __enter__(self) -> CommandIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) until the broker acked every command published so far."""
        return self._mqtt.flush(timeout_s)

    # -- out --------------------------------------------------------------------------

    def issue(
        self,
        device: str,
        name: str,
        args: dict[str, Any] | None = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        issued_wall_ms: int | None = None,
    ) -> str:
        """Send a command; returns its id. ``issued_wall_ms`` defaults to ``wall_ms()`` now."""
        if not isinstance(device, str) or not device or any(c in device for c in "/+#"):
            raise ValueError("bad device id %r" % (device,))
        if not isinstance(name, str) or not name:
            raise ValueError("a command name must be a non-empty string")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError("args must be an object")
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 0:
            raise ValueError("ttl_ms must be an int >= 0, got %r" % (ttl_ms,))
        issued = self.wall_ms() if issued_wall_ms is None else issued_wall_ms
        cid = "%s-%d" % (self.id_prefix, next(self._ids))
        command: dict[str, Any] = {"id": cid, "name": name, "args": args, "ttl_ms": ttl_ms}
        if issued is not None:
            command["issued_wall_ms"] = issued
        body = json.dumps(command).encode()
        with self._changed:  # known before any answer can arrive
            self._issued[cid] = {
                "device": device,
                "name": name,
                "expires_wall_ms": None if issued is None else issued + ttl_ms,
                "body": body,
            }
        self._mqtt.publish(topics.command_topic(device), body, 1, False)
        return cid

    def resend(self, cid: str) -> None:
        """Publish an issued command again, same id (a retry: the device runs it at most once)."""
        with self._changed:
            entry = self._issued[cid]
        self._mqtt.publish(topics.command_topic(entry["device"]), entry["body"], 1, False)

    # -- in (paho's thread) ---------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        device, rest = topics.split_topic(topic)
        if device is None or rest != "out/result":
            return
        try:
            record = json.loads(payload)
        except ValueError:
            record = None
        body = record.get("p") if isinstance(record, dict) else None
        seq = record.get("seq") if isinstance(record, dict) else None
        with self._changed:
            if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not isinstance(seq, int):
                self.counters["malformed"] += 1
                return
            cid = body["id"]
            if cid not in self._issued:
                self.counters["foreign"] += 1
                return
            first = self._answered_by.get(cid)
            if first is not None:
                self.counters["redelivered" if first == (device, seq) else "duplicate_results"] += 1
                return
            self._answered_by[cid] = (device, seq)
            self._results[cid] = body
            self._by_device.setdefault(device, []).append(cid)
            status = body.get("status")
            if status in self.status_counts:
                self.status_counts[status] += 1
            else:
                self.counters["other_status"] += 1
            self._changed.notify_all()

    # -- reads (any thread) ----------------------------------------------------------------

    def result(self, cid: str) -> dict[str, Any] | None:
        with self._changed:
            return self._results.get(cid)

    def results(self, device: str) -> dict[str, dict[str, Any]]:
        """``{id: result payload}`` of one device's answered commands (arrival order)."""
        with self._changed:
            return {cid: self._results[cid] for cid in self._by_device.get(device, [])}

    def wait_result(self, cid: str, timeout_s: float) -> dict[str, Any] | None:
        """Block (bounded) until the command has a result; None if time ran out."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while cid not in self._results:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.5))
            return self._results[cid]

    def unanswered(self) -> list[str]:
        with self._changed:
            return [cid for cid in self._issued if cid not in self._results]

    def stats(self) -> dict[str, Any]:
        now = self.wall_ms()
        with self._changed:
            waiting = [cid for cid in self._issued if cid not in self._results]
            overdue = 0
            if now is not None:
                for cid in waiting:
                    expires = self._issued[cid]["expires_wall_ms"]
                    if expires is not None and now > expires + self.overdue_margin_ms:
                        overdue += 1
            out: dict[str, Any] = {"issued": len(self._issued)}
            out.update(self.status_counts)
            out["unanswered"] = len(waiting)
            out["overdue"] = overdue
            out.update(self.counters)
        out["unacked"] = self._mqtt.unacked()
        return out
