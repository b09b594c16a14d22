"""The Home Assistant bridge: the device on the owner's LAN broker (a supervised task).

Its own MQTT session (clean, client id ``<device id>-ha``, will: availability
``offline`` retained) to the board's link endpoint with role ``lan``; the
cloud link never dials that endpoint and this never dials the cloud's, so it
keeps working while the cloud is down. On every connect it publishes the
discovery configs (``device.lan.hadiscovery``, retained), ``online``, and
every state; then state on change and every ``lan.ha.state_every_s``, and the
camera's latest frame (BMP) when it changes. Commands from Home Assistant go
where cloud commands go: the apps' ``commands`` handlers (the bed's through
its safety envelope) or, for the thermostat, which has none, its state keys
(origin ``lan``), which it re-reads and sanitises every tick. Home Assistant's
birth message (``<prefix>/status`` = ``online``) brings the configs again.

Nothing here is awaited by an app: publishes never await, handlers await only
the store. A lost connection is retried with capped, jittered backoff on the
device clock.
"""

from device.core.backoff import Backoff
from device.lan import hadiscovery as hd
from device.linkerrors import LinkBusyError, LinkError
from device.log import get_logger

_log = get_logger("ha")

POLL_MS = 200  # real ms between looks at the apps' status while connected
_BUSY_TRIES = 100  # waits for PUBACKs before a full window counts as a lost connection


def lan_endpoint(board: dict):  # type: ignore[no-untyped-def]
    for ep in board.get("link", {}).get("endpoints", ()):
        if ep["role"] == "lan":
            return ep
    return None


def attach_ha(device, device_id: str):  # type: ignore[no-untyped-def]
    """Add the bridge to ``device.extra_tasks`` (the board has a ``lan`` endpoint and ha enabled)."""
    bridge = HaBridge(device, device_id)
    device.ha_bridge = bridge
    device.extra_tasks.append(("ha", bridge.run))
    return bridge


class HaBridge:
    def __init__(self, device, device_id: str) -> None:  # type: ignore[no-untyped-def]
        env = device.env
        self.env = env
        self.device_id = device_id
        board = env.board
        self.link_cfg = board["link"]
        self.endpoint = lan_endpoint(board)
        if self.endpoint is None:
            raise LinkError("no link endpoint with role 'lan' for Home Assistant", "config")
        ha = board["lan"]["ha"]
        self.prefix = ha["prefix"]
        self.state_every_ms = ha["state_every_s"] * 1000
        self.apps = device.apps
        self.handlers: dict = {}
        settings: dict = {}
        for app in device.apps:
            self.handlers.update(getattr(app, "commands", {}))
            settings[app.name] = app.settings
        block = hd.device_block(device_id, device_id, board["name"])
        self.configs = hd.discovery(self.prefix, device_id, block, settings)
        self.routes = hd.command_routes(self.configs)
        self.availability = hd.availability_topic(device_id)
        cfg = self.link_cfg
        self.backoff = Backoff(cfg["backoff_base_ms"], cfg["backoff_cap_ms"], jitter=True, healthy_ms=cfg["healthy_ms"])
        self.client = None
        self._last: dict = {}  # topic -> payload last published this session
        self._snapshot_ms = None
        self._resend = False
        self.counters = {
            "connects": 0,
            "connect_failures": 0,
            "losses": 0,
            "discovery_sent": 0,
            "states_sent": 0,
            "snapshots_sent": 0,
            "commands": 0,
            "commands_limited": 0,
            "commands_rejected": 0,
        }
        self.last_error = ""

    # -- the task ---------------------------------------------------------------

    async def run(self) -> None:
        clock = self.env.clock
        while True:
            started = clock.now_ms()
            try:
                await self._session()
                self.counters["losses"] += 1
            except (LinkError, OSError) as exc:
                self.counters["connect_failures" if self.client is None else "losses"] += 1
                self.last_error = str(exc)
            self.client = None
            self.backoff.record_success(clock.now_ms() - started)
            await clock.sleep_ms(self.backoff.next_delay_ms(self.env.rand))

    async def _session(self) -> None:
        from device.link.build import make_resolver

        ep = self.endpoint
        cfg = self.link_cfg
        address = (await make_resolver(cfg).resolve(ep["host"], cfg["dns_budget_ms"]))[0]
        client = self._make_client()
        try:
            await client.connect(address, ep["port"], ep["host"])
            self.client = client
            self.counters["connects"] += 1
            _log.info("connected to the LAN broker %s:%s", ep["host"], ep["port"])
            filters = [(topic, 1) for topic in self.routes]
            filters.append((self.prefix + "/status", 1))
            await client.subscribe(filters)
            self._last = {}
            await self._announce(client)
            await self._serve(client)
        finally:
            if client.closed is None:  # a clean stop: say so ourselves (DISCONNECT suppresses the will)
                try:
                    client.publish(self.availability, hd.OFFLINE, 0, True)
                except LinkError:
                    pass
            await client.close()

    def _make_client(self):  # type: ignore[no-untyped-def]
        # The cloud's factory (build.client_factory) gives a persistent session and the cloud's
        # will; the bridge wants a clean session with its own availability will, so only the
        # choice of client is shared.
        from device.link.build import client_class, client_kind

        cfg = self.link_cfg
        kind = client_kind(cfg["client"])
        Client = client_class(kind)
        options: dict = {}
        if kind == "portable":
            # The send buffer must hold a whole snapshot (a BMP of the frame).
            options["buffer_size"] = 2048 + self._snapshot_bytes()
        tls = None
        if self.endpoint["tls"]:
            files = cfg["tls"]
            tls = {"ca": files["ca"], "cert": files.get("cert"), "key": files.get("key")}
        return Client(
            self.device_id + "-ha",
            keepalive_s=cfg["keepalive_s"],
            clean_session=True,
            window=cfg["window"],
            queue_len=cfg["queue_len"],
            tls=tls,
            connect_timeout_ms=cfg["connect_timeout_ms"],
            will=(self.availability, hd.OFFLINE, 1, True),
            **options,
        )

    def _snapshot_bytes(self) -> int:
        for app in self.apps:
            if app.name == "camera":
                return 1078 + ((app.width + 3) & ~3) * app.height
        return 0

    async def _announce(self, client) -> None:  # type: ignore[no-untyped-def]
        import json

        for topic, config in self.configs:
            await self._publish_qos1(client, topic, json.dumps(config).encode(), True)
            self.counters["discovery_sent"] += 1
        await self._publish_qos1(client, self.availability, hd.ONLINE, True)
        self._last = {}  # every state again
        self._snapshot_ms = None

    async def _publish_qos1(self, client, topic: str, payload: bytes, retain: bool) -> None:  # type: ignore[no-untyped-def]
        for _ in range(_BUSY_TRIES):
            try:
                client.publish(topic, payload, 1, retain)
                return
            except LinkBusyError:
                await client.wait(100)  # PUBACKs free the window
                client.take_acks()
        raise LinkBusyError("the LAN broker acknowledges nothing", "busy")

    async def _serve(self, client) -> None:  # type: ignore[no-untyped-def]
        clock = self.env.clock
        next_full = clock.now_ms()
        while client.closed is None:
            for topic, payload in client.take_messages():
                await self._on_message(client, topic, payload)
            client.take_acks()
            client.take_dropped()
            now = clock.now_ms()
            if now >= next_full:
                next_full = now + self.state_every_ms
                self._last = {}
            self._publish_states(client)
            await client.wait(POLL_MS)

    def _publish_states(self, client) -> None:  # type: ignore[no-untyped-def]
        statuses = {}
        for app in self.apps:
            statuses[app.name] = app.status()
        for topic, payload in hd.state_messages(self.device_id, statuses):
            if self._last.get(topic) == payload:
                continue
            try:
                client.publish(topic, payload, 0, True)
            except LinkBusyError:
                return  # the send buffer is full: the rest goes next round
            self._last[topic] = payload
            self.counters["states_sent"] += 1
        for app in self.apps:
            if app.name == "camera":
                self._publish_snapshot(client, app)

    def _publish_snapshot(self, client, camera) -> None:  # type: ignore[no-untyped-def]
        shot = camera.snapshot()
        if shot is None or shot[3] == self._snapshot_ms:
            return
        if self._snapshot_ms is not None and not camera.detector.moving and "snap" in self._last:
            return  # while nothing moves, one frame per state period is enough
        from device.lan.haimage import grey_bmp

        try:
            client.publish(hd.snapshot_topic(self.device_id), grey_bmp(shot[0], shot[1], shot[2]), 0, True)
        except LinkBusyError:
            return
        self._snapshot_ms = shot[3]
        self._last["snap"] = b""
        self.counters["snapshots_sent"] += 1

    async def _on_message(self, client, topic: str, payload: bytes) -> None:  # type: ignore[no-untyped-def]
        if topic == self.prefix + "/status":
            if payload == b"online":  # Home Assistant restarted: it needs the configs again
                await self._announce(client)
            return
        route = self.routes.get(topic)
        if route is None:
            return
        self.counters["commands"] += 1
        try:
            result = await self._apply(route, payload)
        except ValueError as exc:
            self.counters["commands_rejected"] += 1
            _log.warning("command on %s rejected: %s", topic, exc)
            return
        status = result.get("status") if isinstance(result, dict) else "ok"
        if status == "limited":
            self.counters["commands_limited"] += 1
        elif status == "rejected":
            self.counters["commands_rejected"] += 1
        self._last = {}  # answer with the state at once (the thermostat's follows its next tick)

    async def _apply(self, route: str, payload: bytes):  # type: ignore[no-untyped-def]
        mode = None
        if route.startswith("thermostat/"):  # the mode asked for last, even before a tick applied it
            entry = await self.env.store.get_state("thermostat.mode")
            mode = entry.value if entry is not None else None
        what = hd.decode_command(route, payload, mode)
        if what[0] == "put":
            await self.env.store.put_state(what[1], what[2], "lan", self.env.clock.wall_ms())
            return {"status": "ok"}
        handler = self.handlers.get(what[1])
        if handler is None:
            raise ValueError("no app handles %r" % (what[1],))
        return await handler(what[2])

    def stats(self) -> dict:
        out: dict = dict(self.counters)
        out["connected"] = self.client is not None and self.client.closed is None
        out["last_error"] = self.last_error
        return out
