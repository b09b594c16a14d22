"""A TCP fault proxy between a device and its broker: 127.0.0.1:port -> upstream, failing on demand.

    proxy = FaultProxy("127.0.0.1", broker.port)
    proxy.start()                       # its own loop in a thread; or `await proxy.serve()` in yours
    proxy.set_mode("drop_pubacks")      # takes effect at once, on open connections too
    proxy.set_mode("delay", "up", ms=200)
    proxy.kill_all()                    # RST every open connection
    proxy.stats()["pubacks_dropped"]
    proxy.stop()

Directions: ``up`` is device -> broker, ``down`` broker -> device; ``None``
means both (``drop_pubacks`` defaults to ``down``). Modes:

* ``pass``          forward untouched (also re-opens a refusing listener)
* ``refuse``        close the listening socket: new connects get ECONNREFUSED
* ``reject``        accept, then RST at once
* ``blackhole``     accept and never dial the broker: read and discard, send nothing
                    ("accept but never CONNACK"); open connections go quiet too
* ``half_open``     stop forwarding both ways and never close towards the device,
                    even when the broker hangs up: only keepalive can tell
* ``reset_after``   forward ``n`` more bytes, then RST both sides (reset mid-packet)
* ``limit``         forward ``n`` more bytes, then close both sides (FIN)
* ``delay``         hold each chunk ``ms`` before forwarding it
* ``throttle``      at most ``rate`` bytes per second
* ``slicer``        forward in 1-byte writes (TCP_NODELAY: 1-byte segments)
* ``slow_close``    forward, but pass a close on only after ``ms``
* ``drop_pubacks``  parse the MQTT stream (fixed header + remaining length) and drop
                    PUBACK packets (type 4), everything else intact
* ``linger_close``  forward ``n`` more bytes, then go silent and close (FIN) only after
                    ``ms``: the peer is gone but the device hears of it late
* ``stall``         new TCP connects never complete (a listener whose accept queue is
                    full: SYNs are dropped), so the device's connect times out; open
                    connections are left alone

Per device: ``set_offline(client_ids, True)`` cuts those MQTT clients off (their
home's internet is down): their open connections are reset, and a new one is
reset as soon as its CONNECT names one of them; ``False`` lets them back. The
proxy learns each connection's client id from its CONNECT.

The byte counts of ``reset_after``/``limit`` start when the mode is set. The
MQTT framing of each direction is tracked all the time, so ``drop_pubacks`` can
be switched on in the middle of a connection without losing sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass

from cloud_shim.faults.loopthread import ThreadServed
from cloud_shim.faults.mqttframe import PUBACK, MqttFramer, connect_client_id

MODES = (
    "pass",
    "refuse",
    "reject",
    "blackhole",
    "half_open",
    "reset_after",
    "limit",
    "delay",
    "throttle",
    "slicer",
    "slow_close",
    "drop_pubacks",
    "linger_close",
    "stall",
)
_LISTENER_MODES = ("refuse", "reject", "blackhole", "stall")
DIRECTIONS = ("up", "down")
CONNECT_TIMEOUT_S = 5.0
_READ_SIZE = 65536
_THROTTLE_SLICES_PER_S = 20

COUNTER_NAMES = (
    "connections",  # accepted from devices
    "upstream_connects",
    "upstream_failures",
    "rejected",
    "blackholed",
    "bytes_up",  # forwarded device -> broker
    "bytes_down",  # forwarded broker -> device
    "discarded_up",
    "discarded_down",
    "writes_up",
    "writes_down",
    "pubacks_dropped",
    "resets",  # reset_after fired
    "cuts",  # limit fired
    "killed",  # kill_all
    "offline_resets",  # connections of clients set offline
    "lingered",  # linger_close fired
)


@dataclass(frozen=True)
class Pipe:
    """What one direction does with its bytes. ``generation`` restarts per-connection byte counts."""

    mode: str = "pass"  # pass | discard | reset_after | limit | delay | throttle | slicer | slow_close | drop_pubacks
    n: int = 0
    ms: int = 0
    rate: int = 0
    hold: bool = False  # never pass the broker's close on to the device
    generation: int = 0


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0) instead of FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _fin(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Conn:
    """One device connection and, unless black-holed, its broker connection."""

    def __init__(self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.readers: dict[str, asyncio.StreamReader] = {"up": reader}
        self.writers: dict[str, asyncio.StreamWriter | None] = {"down": writer, "up": None}
        self.client_writer = writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.upstream_gone = False
        self.sent = {"up": 0, "down": 0}
        self.seen_generation = {"up": -1, "down": -1}
        self.framers = {"up": MqttFramer(), "down": MqttFramer()}
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.client_id: str | None = None  # from the device's CONNECT
        self.lingering = False  # linger_close: the close is on its way

    def close(self, reset: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client_writer, self.upstream_writer):
            _rst(writer) if reset else _fin(writer)
        current = asyncio.current_task()
        for task in self.tasks:
            if task is not current:
                task.cancel()

    async def swallow(self) -> None:
        """Black hole: read and discard until the device goes away."""
        reader = self.readers["up"]
        while True:
            try:
                data = await reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                return
            self.proxy.counters["discarded_up"] += len(data)

    async def pump(self, direction: str) -> None:
        reader = self.readers[direction]
        framer = self.framers[direction]
        counters = self.proxy.counters
        while True:
            reset = False
            try:
                data = await reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                data, reset = b"", True
            if not data:
                await self._end_of_stream(direction, reset)
                return
            if direction == "up" and self.client_id is None:
                self.client_id = connect_client_id(data) or ""
                if self.client_id in self.proxy.offline:
                    counters["offline_resets"] += 1
                    self.close(reset=True)
                    return
            pipe = self.proxy.pipes[direction]
            runs = framer.runs(data)
            if self.seen_generation[direction] != pipe.generation:
                self.seen_generation[direction] = pipe.generation
                self.sent[direction] = 0
            if pipe.mode == "discard" or (direction == "up" and self.upstream_gone):
                counters["discarded_" + direction] += len(data)
                continue
            if pipe.mode == "drop_pubacks":
                kept = []
                for start, end, kind, starts in runs:
                    if kind == PUBACK:
                        counters["pubacks_dropped"] += 1 if starts else 0
                        counters["discarded_" + direction] += end - start
                    else:
                        kept.append(data[start:end])
                data = b"".join(kept)
                if not data:
                    continue
            if not await self._forward(direction, pipe, data):
                return

    async def _forward(self, direction: str, pipe: Pipe, data: bytes) -> bool:
        """Write ``data`` on as ``pipe`` says; False when the connection is finished."""
        writer = self.writers[direction]
        assert writer is not None
        counters = self.proxy.counters
        try:
            if pipe.mode in ("reset_after", "limit", "linger_close"):
                room = max(0, pipe.n - self.sent[direction])
                part = data[:room]
                if part:
                    writer.write(part)
                    await writer.drain()
                    self.sent[direction] += len(part)
                    counters["bytes_" + direction] += len(part)
                    counters["writes_" + direction] += 1
                if self.sent[direction] >= pipe.n:
                    if pipe.mode == "linger_close":
                        return await self._linger(pipe)
                    counters["resets" if pipe.mode == "reset_after" else "cuts"] += 1
                    self.close(reset=pipe.mode == "reset_after")
                    return False
                return True
            if pipe.mode == "delay":
                await asyncio.sleep(pipe.ms / 1000)
            if pipe.mode == "slicer":
                pieces = [data[i : i + 1] for i in range(len(data))]
            elif pipe.mode == "throttle" and pipe.rate > 0:
                step = max(1, pipe.rate // _THROTTLE_SLICES_PER_S)
                pieces = [data[i : i + step] for i in range(0, len(data), step)]
            else:
                pieces = [data]
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                counters["bytes_" + direction] += len(piece)
                counters["writes_" + direction] += 1
                if pipe.mode == "throttle" and pipe.rate > 0:
                    await asyncio.sleep(len(piece) / pipe.rate)
        except (ConnectionError, OSError):
            self.close(reset=True)
            return False
        return True

    async def _linger(self, pipe: Pipe) -> bool:
        """``linger_close``: the byte budget is spent; close (FIN) only after ``pipe.ms``."""
        if not self.lingering:
            self.lingering = True
            self.proxy.counters["lingered"] += 1
            await asyncio.sleep(pipe.ms / 1000)
            self.close(reset=False)
        return False

    async def _end_of_stream(self, direction: str, reset: bool) -> None:
        """One side closed (or reset). The device side closing ends everything; the broker's may be held."""
        pipe = self.proxy.pipes[direction]
        if direction == "down" and (pipe.hold or pipe.mode == "discard"):
            self.upstream_gone = True  # the device must find out by itself
            return
        if pipe.mode == "slow_close" and pipe.ms > 0:
            await asyncio.sleep(pipe.ms / 1000)
        self.close(reset)


class FaultProxy(ThreadServed):
    """The proxy. Async use: ``await serve()`` / ``aset_mode`` / ``akill_all`` / ``aclose``;
    thread use: ``start()`` / ``set_mode`` / ``kill_all`` / ``stop()``."""

    thread_name = "fault-proxy"

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.listen_mode = "accept"  # accept | refuse | reject | blackhole
        self.pipes = {"up": Pipe(), "down": Pipe()}
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._generation = 0
        self._server: asyncio.Server | None = None
        self._conns: set[_Conn] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.offline: set[str] = set()  # MQTT client ids cut off (see set_offline)
        self._stall: list[socket.socket] = []  # stall: the full listener and the connects that fill it

    # ---------------------------------------------------------------- state

    def stats(self) -> dict[str, int]:
        stats = dict(self.counters)
        stats["open"] = len(self._conns)
        return stats

    def modes(self) -> dict[str, str]:
        return {"listen": self.listen_mode, "up": self.pipes["up"].mode, "down": self.pipes["down"].mode}

    # ---------------------------------------------------------------- in the caller's loop

    async def serve(self) -> None:
        """Start listening in the running loop (returns at once)."""
        await self._open_listener()

    async def _open_listener(self) -> None:
        self._unstall()
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._on_client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def _stall_listener(self) -> None:
        """Listen with a backlog of 0 and fill it: the kernel then drops new SYNs (connects hang)."""
        self._close_listener()
        if self._stall:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(0)
        self._stall.append(listener)
        for _ in range(3):  # more than a backlog of 0 admits
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError, OSError):
                filler.connect((self.host, self.port))
            self._stall.append(filler)

    def _unstall(self) -> None:
        for sock in reversed(self._stall):
            sock.close()
        self._stall = []

    def _close_listener(self) -> None:
        # Not wait_closed(): on newer Pythons it waits for every open connection too.
        if self._server is not None:
            self._server.close()
            self._server = None

    async def aset_mode(
        self, mode: str, direction: str | None = None, *, n: int = 0, ms: int = 0, rate: int = 0
    ) -> None:
        if mode not in MODES:
            raise ValueError("unknown mode %r (one of %s)" % (mode, ", ".join(MODES)))
        if direction is None:
            directions = ("down",) if mode == "drop_pubacks" else DIRECTIONS
        elif direction in DIRECTIONS:
            directions = (direction,)
        else:
            raise ValueError("direction must be 'up', 'down' or None (both)")
        if mode in ("reset_after", "limit", "linger_close") and n < 0:
            raise ValueError(mode + " needs n >= 0")
        if mode == "throttle" and rate <= 0:
            raise ValueError("throttle needs rate > 0 (bytes/s)")
        self._generation += 1
        if mode in _LISTENER_MODES:
            self.listen_mode = mode
            if mode == "refuse":
                self._close_listener()
                self._unstall()
                return
            if mode == "stall":
                self._stall_listener()
                return
            await self._open_listener()
            if mode != "blackhole":
                return
            pipe = Pipe("discard", generation=self._generation)
        else:
            self.listen_mode = "accept"
            await self._open_listener()
            hold = mode == "half_open"
            pipe = Pipe("discard" if hold else mode, n, ms, rate, hold, self._generation)
        for d in directions:
            self.pipes[d] = pipe

    async def akill_all(self, reset: bool = True) -> int:
        """Drop every open connection (RST, or FIN with ``reset=False``); how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.close(reset)
        self.counters["killed"] += len(conns)
        return len(conns)

    async def aset_offline(self, client_ids: list[str], offline: bool) -> int:
        """Cut ``client_ids`` off (or let them back); how many open connections were reset."""
        if not offline:
            self.offline.difference_update(client_ids)
            return 0
        self.offline.update(client_ids)
        cut = [conn for conn in self._conns if conn.client_id in self.offline]
        for conn in cut:
            conn.close(reset=True)
        self.counters["offline_resets"] += len(cut)
        return len(cut)

    async def aclose(self) -> None:
        self._close_listener()
        self._unstall()
        await self.akill_all()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = _Conn(self, reader, writer)
        self._conns.add(conn)
        self.counters["connections"] += 1
        try:
            await self._handle(conn, reader, writer)
        finally:
            conn.close(reset=False)
            self._conns.discard(conn)
            self._handlers.discard(task)

    async def _handle(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _nodelay(writer)
        if self.listen_mode == "reject":
            self.counters["rejected"] += 1
            conn.close(reset=True)
            return
        if self.listen_mode == "blackhole":
            self.counters["blackholed"] += 1
            await conn.swallow()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            self.counters["upstream_failures"] += 1
            conn.close(reset=True)
            return
        self.counters["upstream_connects"] += 1
        _nodelay(up_writer)
        conn.upstream_writer = up_writer
        conn.readers["down"] = up_reader
        conn.writers["up"] = up_writer
        if conn.closed:  # killed while dialling
            _rst(up_writer)
            return
        conn.tasks = [asyncio.create_task(conn.pump("up")), asyncio.create_task(conn.pump("down"))]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            for task in conn.tasks:
                task.cancel()

    # ---------------------------------------------------------------- sync API (after start())

    def set_mode(self, mode: str, direction: str | None = None, *, n: int = 0, ms: int = 0, rate: int = 0) -> None:
        self._in_thread().run(self.aset_mode(mode, direction, n=n, ms=ms, rate=rate))

    def kill_all(self, reset: bool = True) -> int:
        return self._in_thread().run(self.akill_all(reset))

    def set_offline(self, client_ids: list[str], offline: bool) -> int:
        return self._in_thread().run(self.aset_offline(client_ids, offline))
