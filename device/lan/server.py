"""The LAN HTTP server: asyncio streams, one request per connection, bounded in every way.

* **Connection cap** (``max_conns``): one more connection is answered 503 and
  closed at once, so a flood costs a few bytes each and never queues.
* **Timeouts** (real time, whatever clock the device simulates): each read
  waits at most ``read_timeout_ms``, and the whole request must be in within
  ``REQUEST_READS`` times that, so a slowloris dripping a byte at a time is
  cut (408) as surely as a silent one. Writes are bounded the same way.
* **Limits**: the parser refuses over-long lines, headers and bodies as the
  bytes arrive (``device.lan.httpparse``); a connection never holds more than
  about ``max_line + max_header + max_body`` bytes.
* **Never a crash**: everything a connection does is caught, counted
  (``crashes``) and answered 500 when an answer can still be sent.

Every answer carries ``Connection: close`` (no keep-alive: a board has few
sockets and a client reconnects cheaply on a LAN). ``start_lan_server(device)``
is the boot hook; the task is supervised as ``"lan"`` like any app.
"""

import asyncio
import json

from device.compat import const, monotonic_ms, wait_for_ms
from device.lan.httpparse import HttpError, RequestParser
from device.log import get_logger

_log = get_logger("lan")

READ_CHUNK = const(512)
REQUEST_READS = const(3)  # a whole request gets this many read timeouts, however it trickles in

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

COUNTER_NAMES = (
    "connections",  # accepted sockets
    "requests",  # complete requests handed to the routes
    "rejected",  # over the connection cap: 503
    "timeouts",  # 408: silent or slow client
    "bad_requests",  # refused by the parser
    "closed_early",  # the client left mid-request
    "write_failures",  # an answer that could not be sent in time
    "crashes",  # anything unexpected, caught
)


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


def response_head(status: int, content_type: str, length: int, extra=None) -> bytes:  # type: ignore[no-untyped-def]
    lines = [
        "HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
        "Content-Type: " + content_type,
        "Content-Length: %d" % length,
        "Connection: close",
        "Cache-Control: no-store",
    ]
    if extra:
        for name in extra:
            lines.append(name + ": " + extra[name])
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class LanServer:
    """The HTTP server task. ``port`` once bound (None before; on MicroPython a port-0 bind is not known)."""

    def __init__(self, device, lan_cfg: dict) -> None:  # type: ignore[no-untyped-def]
        from device.lan.routes import Api

        self.device = device
        self.cfg = lan_cfg["http"]
        self.api = Api(device, lan_cfg)
        self.port: int | None = None
        self.ready = asyncio.Event()  # set once listening
        self.active = 0
        self.peak = 0
        self.counters: dict = {}
        for name in COUNTER_NAMES:
            self.counters[name] = 0
        self.by_status: dict = {}
        self._writers: list = []

    async def run(self) -> None:
        """The supervised task: listen until cancelled."""
        cfg = self.cfg
        self.api.load_auth()
        server = await asyncio.start_server(self._connection, cfg["bind"], cfg["port"])
        self.port = _bound_port(server, cfg["port"])
        _log.info("LAN API on %s:%s", cfg["bind"], self.port)
        self.ready.set()
        try:
            await asyncio.Event().wait()  # nothing to do here: connections run as their own tasks
        finally:
            self.ready = asyncio.Event()
            self.port = None
            server.close()
            for writer in self._writers:
                _close_quietly(writer)

    def stats(self) -> dict:
        out = dict(self.counters)
        out["port"] = self.port
        out["active"] = self.active
        out["peak"] = self.peak
        out["by_status"] = dict(self.by_status)
        out["auth"] = self.api.auth_stats()
        return out

    # -- one connection -----------------------------------------------------------

    async def _connection(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        counters = self.counters
        counters["connections"] += 1
        if self.active >= self.cfg["max_conns"]:
            counters["rejected"] += 1
            await self._answer_error(writer, HttpError(503, "busy", "too many connections; try again"))
            await _close(writer)
            return
        self.active += 1
        self.peak = max(self.peak, self.active)
        self._writers.append(writer)
        try:
            await self._serve(reader, writer)
        except Exception as exc:  # never let one connection take the server down
            counters["crashes"] += 1
            _log.warning("LAN connection crashed: %s: %s", type(exc).__name__, exc)
            try:
                await self._answer_error(writer, HttpError(500, "internal", "the device could not answer"))
            except Exception:  # (the client may be gone; the crash is counted)
                pass
        finally:
            self.active -= 1
            if writer in self._writers:
                self._writers.remove(writer)
            await _close(writer)

    async def _serve(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        cfg = self.cfg
        parser = RequestParser(cfg["max_line_bytes"], cfg["max_header_bytes"], cfg["max_body_bytes"])
        timeout = cfg["read_timeout_ms"]
        deadline = monotonic_ms() + timeout * REQUEST_READS
        request = None
        while request is None:
            wait = min(timeout, deadline - monotonic_ms())
            try:
                if wait <= 0:
                    raise asyncio.TimeoutError
                data = await wait_for_ms(reader.read(READ_CHUNK), wait)
            except asyncio.TimeoutError:
                self.counters["timeouts"] += 1
                await self._answer_error(writer, HttpError(408, "timeout", "request not received in time"))
                return
            if not data:
                if parser.started:
                    self.counters["closed_early"] += 1
                return
            try:
                request = parser.feed(data)
            except HttpError as exc:
                self.counters["bad_requests"] += 1
                await self._answer_error(writer, exc)
                return
        self.counters["requests"] += 1
        request.peer = _peer(writer)
        status, content_type, body, extra = await self.api.handle(request)
        await self._answer(writer, status, content_type, body, extra)

    async def _answer_error(self, writer, exc: HttpError) -> None:  # type: ignore[no-untyped-def]
        await self._answer(writer, exc.status, "application/json", error_body(exc.code, exc.message), None)

    async def _answer(self, writer, status: int, content_type: str, body: bytes, extra) -> None:  # type: ignore[no-untyped-def]
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        try:
            writer.write(response_head(status, content_type, len(body), extra))
            if body:
                writer.write(body)
            await wait_for_ms(writer.drain(), self.cfg["read_timeout_ms"])
        except (OSError, asyncio.TimeoutError):
            self.counters["write_failures"] += 1


def _bound_port(server, asked: int):  # type: ignore[no-untyped-def]
    sockets = getattr(server, "sockets", None)  # CPython; MicroPython's Server keeps its socket private
    if sockets:
        return sockets[0].getsockname()[1]
    return asked if asked else None


def _peer(writer):  # type: ignore[no-untyped-def]
    try:
        addr = writer.get_extra_info("peername")
    except Exception:  # some builds cannot say; rate limiting then pools unknown peers
        return None
    if isinstance(addr, tuple) and addr:
        return addr[0]
    return addr if isinstance(addr, (str, bytes)) else None


def _close_quietly(writer) -> None:  # type: ignore[no-untyped-def]
    try:
        writer.close()
    except Exception:  # (closing a dead socket: nothing left to do)
        pass


async def _close(writer) -> None:  # type: ignore[no-untyped-def]
    _close_quietly(writer)
    try:
        await wait_for_ms(writer.wait_closed(), 1000)
    except Exception:  # (a peer that reset, or a close that hangs: the socket is gone either way)
        pass


def start_lan_server(device) -> LanServer:  # type: ignore[no-untyped-def]
    """Boot hook (``Device.start``): the server as the supervised task ``"lan"``; ``device.lan_server``."""
    server = LanServer(device, device.env.board["lan"])
    device.lan_server = server
    device.extra_tasks.append(("lan", server.run))
    return server
