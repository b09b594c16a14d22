"""The LAN API's endpoints (contract: /v1/..., JSON in and out, errors ``{"error", "message"}``).

    GET  /v1/info                public   what a client needs to sign: device, apps, provisioned, boot, now_ms
    GET  /v1/state               read     the state cache (not the internal ``_*`` and ``lan.*`` keys)
    GET  /v1/status              read     ``Device.status()``
    GET  /v1/receipts            read     the link's outage receipts ([] with no link)
    GET  /v1/diagnostics         admin    counters: store, supervisor, link, sync, this server
    POST /v1/thermostat          control  {"mode", "setpoint_c", "cool_setpoint_c"} -> state keys
    POST /v1/bed/side/<side>     control  {"setpoint_c"} through the bed's envelope
    POST /v1/bed/base            control  {"section", "position"} or {"stop": true}, same envelope
    GET  /v1/camera/snapshot     read     the latest frame as a binary PGM (image/x-portable-graymap)
    POST /v1/commands/<name>     control  any app command handler, with the cloud's arguments

Writes go where the cloud's go: thermostat targets into the state keys the app
re-reads every tick (origin ``lan``; checked and clamped here by the app's own
``sanitize_targets``), bed requests into ``BedApp.request("lan", ...)`` (the
safety envelope). Nothing here touches a part or waits on a control tick.

Auth: ``device.lan.token`` (``load_verifier``/``authorize``). A device with no
key refuses every non-public request with 403 ``not_provisioned``: control,
admin, and reads too (the state and the camera are the owner's business).
"""

import asyncio
import json

from device.compat import heap_used, wait_for_ms
from device.lan.httpparse import HttpError
from device.log import get_logger

_log = get_logger("lan")

JSON = "application/json"
PGM = "image/x-portable-graymap"
COMMAND_TIMEOUT_MS = 5000
_THERMOSTAT_KEYS = {"mode": "thermostat.mode", "setpoint_c": "thermostat.setpoint_c"}
_THERMOSTAT_KEYS["cool_setpoint_c"] = "thermostat.cool_setpoint_c"

# (method, path, handler name, scope); a path ending in "*" takes one more segment.
ROUTES = (
    ("GET", "/v1/info", "info", None),
    ("GET", "/v1/state", "state", "read"),
    ("GET", "/v1/status", "status", "read"),
    ("GET", "/v1/receipts", "receipts", "read"),
    ("GET", "/v1/diagnostics", "diagnostics", "admin"),
    ("POST", "/v1/thermostat", "thermostat", "control"),
    ("POST", "/v1/bed/side/*", "bed_side", "control"),
    ("POST", "/v1/bed/base", "bed_base", "control"),
    ("GET", "/v1/camera/snapshot", "snapshot", "read"),
    ("POST", "/v1/commands/*", "command", "control"),
)


def match_route(method: str, path: str) -> tuple:
    """``(route, segment)`` for a request; HttpError 404 (no such path) or 405 (other methods)."""
    allowed = []
    for route in ROUTES:
        pattern = route[1]
        segment = None
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            if not path.startswith(prefix):
                continue
            segment = path[len(prefix) :]
            if not segment or "/" in segment:
                continue
        elif path != pattern:
            continue
        if route[0] == method:
            return route, segment
        allowed.append(route[0])
    if allowed:
        exc = HttpError(405, "method_not_allowed", "%s takes %s" % (path, ", ".join(allowed)))
        exc.headers = {"Allow": ", ".join(allowed)}  # type: ignore[attr-defined]
        raise exc
    raise HttpError(404, "not_found", "no endpoint %s" % (path,))


def json_object(body: bytes, empty_ok: bool = False) -> dict:
    """The body as a JSON object; HttpError 400 otherwise."""
    if not body and empty_ok:
        return {}
    try:
        value = json.loads(body.decode())
    except (ValueError, UnicodeError):
        raise HttpError(400, "bad_json", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise HttpError(400, "bad_json", "the body must be a JSON object")
    return value


def number(value: object, name: str) -> float:
    """A finite JSON number (not a bool); HttpError 400 otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HttpError(400, "bad_value", "%s must be a number" % (name,))
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise HttpError(400, "bad_value", "%s must be finite" % (name,))
    return value


class Api:
    """Routes requests for one device. ``handle(request) -> (status, content type, body, headers)``."""

    def __init__(self, device, lan_cfg: dict) -> None:  # type: ignore[no-untyped-def]
        self.device = device
        self.lan_cfg = lan_cfg
        self.verifier = None
        self._auth_error: object = None  # device.lan.token.AuthError once loaded
        self.auth_counters = {"allowed": 0, "refused": 0, "not_provisioned": 0}

    def load_auth(self) -> None:
        """Load the token verifier (None: not provisioned, so every non-public request is refused)."""
        try:
            from device.lan.token import AuthError, load_verifier
        except ImportError as exc:
            _log.warning("LAN API without token support (%s): non-public requests refused", exc)
            return
        self._auth_error = AuthError
        try:
            self.verifier = load_verifier(self.device.env, self.lan_cfg, self._known_id())
        except Exception as exc:  # a broken key file must not stop the server; it refuses control instead
            _log.warning("token key not loaded: %s", type(exc).__name__)
            self.verifier = None

    def auth_stats(self) -> dict:
        out = dict(self.auth_counters)
        stats = getattr(self.verifier, "stats", None)
        if stats is not None:
            out["verifier"] = stats()  # counts by refusal code; nothing secret
        return out

    async def handle(self, request) -> tuple:  # type: ignore[no-untyped-def]
        try:
            route, segment = match_route(request.method, request.path)
            if route[3] is not None:
                await self._authorize(request, route[3])
            result = await getattr(self, "_" + route[2])(request, segment)
        except HttpError as exc:
            extra = getattr(exc, "headers", None)
            body = json.dumps({"error": exc.code, "message": exc.message}).encode()
            return exc.status, JSON, body, extra
        if len(result) == 4:
            return result
        return result[0], JSON, json.dumps(result[1]).encode(), None

    async def _authorize(self, request, scope: str) -> None:  # type: ignore[no-untyped-def]
        verifier = self.verifier
        if verifier is None:
            self.auth_counters["not_provisioned"] += 1
            raise HttpError(403, "not_provisioned", "this device has no token key: provision it first")
        try:
            await verifier.authorize(  # type: ignore[attr-defined]
                request.method, request.target, request.headers, request.body, scope, peer=request.peer
            )
        except Exception as exc:
            if self._auth_error is None or not isinstance(exc, self._auth_error):  # type: ignore[arg-type]
                raise
            self.auth_counters["refused"] += 1
            refused = HttpError(getattr(exc, "status", 401), getattr(exc, "code", "unauthorized"), str(exc))
            retry = getattr(exc, "retry_after_s", 0)
            if retry:
                refused.headers = {"Retry-After": str(retry)}  # type: ignore[attr-defined]
            raise refused from None
        self.auth_counters["allowed"] += 1

    # -- helpers ------------------------------------------------------------------

    def _app(self, name: str):  # type: ignore[no-untyped-def]
        for app in self.device.apps:
            if app.name == name:
                return app
        raise HttpError(404, "no_app", "this device has no %s" % (name,))

    def _known_id(self):  # type: ignore[no-untyped-def]
        device = self.device
        for holder in (device, device.link):
            found = getattr(holder, "device_id", None) if holder is not None else None
            if isinstance(found, str):
                return found
        return None  # offline: the verifier takes it from its key file's name

    def device_id(self) -> str:
        """The id tokens must name: the link's, else the verifier's, else the board's name."""
        found = self._known_id() or getattr(self.verifier, "device_id", None)
        return found if isinstance(found, str) else self.device.env.board.get("name", "")

    # -- endpoints ------------------------------------------------------------------

    async def _info(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        env = self.device.env
        return 200, {
            "device": self.device_id(),
            "apps": [app.name for app in self.device.apps],
            "provisioned": self.verifier is not None,
            "boot": env.store.boot_id,
            "now_ms": env.clock.now_ms(),
        }

    async def _state(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        entries = await self.device.env.store.load_state()
        out = {}
        for key in entries:
            if key.startswith("_") or key.startswith("lan."):
                continue  # link book-keeping, nonces and revocations are not the owner's settings
            entry = entries[key]
            out[key] = {"value": entry.value, "version": entry.version, "origin": entry.origin}
        return 200, {"state": out}

    async def _status(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        return 200, self.device.status()

    async def _receipts(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        link = self.device.link
        return 200, {"receipts": list(link.receipts) if link is not None else [], "link": link is not None}

    async def _diagnostics(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        device = self.device
        supervisor = device.supervisor
        server = getattr(device, "lan_server", None)
        return 200, {
            "store": device.env.store.stats(),
            "supervisor": {"tasks": supervisor.stats(), "crash_total": supervisor.crash_total},
            "link": device.link.stats() if device.link is not None else None,
            "sync": device.sync.stats() if device.sync is not None else None,
            "lan": server.stats() if server is not None else None,
            "heap_used": heap_used(),
        }

    async def _thermostat(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        from device.core import thermostat as law

        app = self._app("thermostat")
        body = json_object(request.body)
        if not body:
            raise HttpError(400, "bad_value", "give mode, setpoint_c and/or cool_setpoint_c")
        for name in body:
            if name not in _THERMOSTAT_KEYS:
                raise HttpError(400, "bad_value", "unknown field %r" % (name,))
        if "mode" in body and body["mode"] not in law.MODES:
            raise HttpError(400, "bad_value", "mode must be one of %s" % ", ".join(law.MODES))
        store = self.device.env.store
        current = {}
        for name, key in _THERMOSTAT_KEYS.items():
            if name in body:
                current[name] = body[name] if name == "mode" else number(body[name], name)
            else:
                entry = await store.get_state(key)
                current[name] = entry.value if entry is not None else None
        # The app's own check (it runs it again each tick): out-of-range values are clamped, and said so.
        targets, notes = law.sanitize_targets(
            app.settings, current["mode"], current["setpoint_c"], current["cool_setpoint_c"]
        )
        applied = {}
        wall = self.device.env.clock.wall_ms()
        for name in body:
            value = getattr(targets, name)
            await store.put_state(_THERMOSTAT_KEYS[name], value, "lan", wall)
            applied[name] = value
        return 200, {"applied": applied, "notes": notes}

    async def _bed_side(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        from device.core import bed as bed_law

        app = self._app("bed")
        if segment not in bed_law.SIDES:
            raise HttpError(404, "not_found", "no bed side %r (sides: %s)" % (segment, ", ".join(bed_law.SIDES)))
        body = json_object(request.body)
        if "setpoint_c" not in body or len(body) != 1:
            raise HttpError(400, "bad_value", 'give exactly {"setpoint_c": number}')
        value = number(body["setpoint_c"], "setpoint_c")
        return _bed_answer(await app.request("lan", segment + ".setpoint_c", value))

    async def _bed_base(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        from device.core import bed as bed_law

        app = self._app("bed")
        body = json_object(request.body)
        if body.get("stop") is True and len(body) == 1:
            return _bed_answer(await app.request("lan", "base.stop"))
        section = body.get("section")
        if section not in bed_law.SECTIONS or "position" not in body or len(body) != 2:
            sections = ", ".join(bed_law.SECTIONS)
            raise HttpError(400, "bad_value", '{"section": %s, "position": number} or {"stop": true}' % sections)
        value = number(body["position"], "position")
        return _bed_answer(await app.request("lan", "base." + section, value))

    async def _snapshot(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        shot = self._app("camera").snapshot()
        if shot is None:
            raise HttpError(503, "no_frame", "the camera has no frame yet")
        width, height, frame, t_ms = shot
        body = ("P5\n%d %d\n255\n" % (width, height)).encode() + frame
        return 200, PGM, body, {"X-Frame-Ms": str(t_ms)}

    async def _command(self, request, segment) -> tuple:  # type: ignore[no-untyped-def]
        handler = None
        for app in self.device.apps:
            handler = getattr(app, "commands", {}).get(segment)
            if handler is not None:
                break
        if handler is None:
            raise HttpError(404, "unknown_command", "no command %r" % (segment,))
        args = json_object(request.body, empty_ok=True)
        try:
            result = await wait_for_ms(handler(args), COMMAND_TIMEOUT_MS)
        except asyncio.TimeoutError:
            raise HttpError(504, "command_timeout", "no result in %d ms" % COMMAND_TIMEOUT_MS) from None
        except Exception as exc:  # a handler's bug is the client's answer, not the server's crash
            raise HttpError(500, "command_failed", "%s: %s" % (type(exc).__name__, exc)) from None
        if result is None:
            result = {}
        return 200, {"name": segment, "status": "ok", "result": result}


def _bed_answer(result: dict) -> tuple:
    if result.get("status") == "rejected":
        raise HttpError(409, "rejected", str(result.get("note") or "the bed's safety envelope refused it"))
    return 200, result
