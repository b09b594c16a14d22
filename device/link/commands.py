"""Commands from the cloud: dedupe, expiry, a handler registry, results on the outbox.

A command arrives on ``bp/{d}/cmd`` as JSON::

    {"id": "c-42", "name": "set_mode", "args": {"mode": "heat"},
     "expires_wall_ms": 1735689600000}                 # absolute expiry, or
     "issued_wall_ms": 1735689570000, "ttl_ms": 30000}  # relative to when it was issued

What happens to it (``Commands.handle``), in this order:

1. Not JSON, not an object, or no string ``id``: dropped and counted
   (``malformed``): there is no id to answer to.
2. An id seen before (``store.inbox_seen``): ignored and counted
   (``duplicate``), whatever it says: QoS 1 may deliver a command twice.
3. The id goes into the inbox *before* anything runs, so a command runs at
   most once even if the device restarts while its handler runs (the cloud
   then hears no result and may send a new command with a new id).
4. Expired (the device's wall time at or past its expiry): not run; a result
   ``{"id", "name", "status": "expired"}`` goes out on lane ``result``.
   Without a wall clock (an offline boot, no NTP) expiry cannot be checked:
   the command is accepted and ``expiry_unchecked`` counts it. A ``ttl_ms``
   without ``issued_wall_ms`` cannot be checked either (counted the same way).
5. No handler for ``name``, or ``args`` not an object: ``"rejected"``.
6. Otherwise the handler runs: ``await handler(args) -> dict``, bounded by
   ``handler_timeout_ms`` (real time). Its dict goes out as
   ``{"id", "name", "status": "ok", "result": {...}}``; an exception gives
   ``"status": "error"`` with ``"error"``; the time limit ``"status": "timeout"``.

Results are outbox records, so they are durable, survive an outage and are
drained before telemetry. The inbox keeps an id until a while after the
command expires (``DEDUPE_MARGIN_MS``), or ``DEDUPE_MS`` after it arrived when
it has no expiry; ``expire_inbox`` forgets older ones (wall time). Ids seen
with no wall clock known are kept until evicted (the inbox holds
``INBOX_MAX``, the soonest to expire goes first).
"""

import asyncio
import json

from device.compat import wait_for_ms
from device.errors import StoreError

DEDUPE_MS = 24 * 3600 * 1000  # how long an id without expiry is remembered
DEDUPE_MARGIN_MS = 10 * 60 * 1000  # ids are remembered this long past their expiry (clock skew)
KEEP_FOREVER = 1 << 62  # inbox expiry of an id seen with no wall clock: kept until evicted
HANDLER_TIMEOUT_MS = 5000

COUNTER_NAMES = (
    "received",
    "accepted",
    "duplicate",
    "expired",
    "rejected",
    "failed",
    "timeout",
    "malformed",
    "expiry_unchecked",
    "results_lost",
)


def _is_int(value) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(value, int) and not isinstance(value, bool)


def expiry_of(command: dict):  # type: ignore[no-untyped-def]
    """``(expires_wall_ms or None, checkable)``: when the command expires, and whether that can be known.

    No expiry fields: ``(None, True)`` (it never expires). ``ttl_ms`` without
    ``issued_wall_ms``: ``(None, False)``.
    """
    expires = command.get("expires_wall_ms")
    if _is_int(expires):
        return expires, True
    ttl = command.get("ttl_ms")
    if _is_int(ttl):
        issued = command.get("issued_wall_ms")
        if _is_int(issued):
            return issued + ttl, True  # type: ignore[operator]
        return None, False
    return None, True


class Commands:
    """The registry of command handlers and the rules above.

    ``store``: the device's store (inbox for dedupe, outbox lane ``result``);
    ``clock``: ``now_ms()`` for records, ``wall_ms()`` for expiry (None: unknown).
    """

    def __init__(self, store, clock, handlers=None, handler_timeout_ms: int = HANDLER_TIMEOUT_MS) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.clock = clock
        self.handler_timeout_ms = handler_timeout_ms
        self.handlers: dict = {}
        if handlers:
            for name in handlers:
                self.register(name, handlers[name])
        self.counters = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0

    def register(self, name: str, handler) -> None:  # type: ignore[no-untyped-def]
        """``handler``: ``async def handler(args: dict) -> dict``."""
        if not isinstance(name, str) or not name:
            raise ValueError("a command name must be a non-empty string, got %r" % (name,))
        self.handlers[name] = handler

    async def handle(self, payload):  # type: ignore[no-untyped-def]
        """Handle one message from the command topic; return its status (None: malformed or duplicate)."""
        counters = self.counters
        counters["received"] += 1
        try:
            command = json.loads(payload)
        except ValueError:
            command = None
        if not isinstance(command, dict) or not isinstance(command.get("id"), str) or not command["id"]:
            counters["malformed"] += 1
            return None
        cid = command["id"]
        name = command.get("name")
        store = self.store
        if await store.inbox_seen(cid):
            counters["duplicate"] += 1
            return None
        wall = self.clock.wall_ms()
        expires, checkable = expiry_of(command)
        await store.inbox_add(cid, self._keep_until(expires, wall))
        if not checkable or (expires is not None and wall is None):
            counters["expiry_unchecked"] += 1
        elif expires is not None and wall >= expires:
            counters["expired"] += 1
            await self._report(cid, name, "expired")
            return "expired"
        handler = self.handlers.get(name) if isinstance(name, str) else None
        args = command.get("args", {})
        if handler is None or not isinstance(args, dict):
            counters["rejected"] += 1
            why = "unknown command" if handler is None else "args must be an object"
            await self._report(cid, name, "rejected", error=why)
            return "rejected"
        counters["accepted"] += 1
        try:
            result = await wait_for_ms(handler(args), self.handler_timeout_ms)
        except asyncio.TimeoutError:
            counters["timeout"] += 1
            await self._report(cid, name, "timeout", error="no result in %d ms" % self.handler_timeout_ms)
            return "timeout"
        except Exception as exc:  # a handler's bug is reported to the cloud, never raised into the engine
            counters["failed"] += 1
            await self._report(cid, name, "error", error="%s: %s" % (type(exc).__name__, exc))
            return "error"
        if result is None:
            result = {}
        if not isinstance(result, dict):
            result = {"value": result}
        status = await self._report(cid, name, "ok", result=result)
        return status

    def _keep_until(self, expires, wall):  # type: ignore[no-untyped-def]
        if expires is not None:
            return expires + DEDUPE_MARGIN_MS
        if wall is not None:
            return wall + DEDUPE_MS
        return KEEP_FOREVER

    async def expire_inbox(self) -> int:
        """Forget ids remembered past their time (needs wall time; 0 without it)."""
        wall = self.clock.wall_ms()
        if wall is None:
            return 0
        return await self.store.inbox_expire(wall)  # type: ignore[no-any-return]

    async def _report(self, cid: str, name, status: str, result=None, error=None) -> str:  # type: ignore[no-untyped-def]
        record = {"id": cid, "name": name if isinstance(name, str) else None, "status": status}
        if result is not None:
            record["result"] = result
        if error is not None:
            record["error"] = error
        try:
            await self.store.append("result", record, self.clock.now_ms())
        except StoreError as exc:
            if result is None:
                self.counters["results_lost"] += 1  # a full or failing store: counted, the engine goes on
                return status
            # Most likely a result that is not plain JSON: say so instead of losing the answer.
            return await self._report(cid, name, "error", error="result not storable: %s" % (exc,))
        return status
