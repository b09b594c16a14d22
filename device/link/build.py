"""Build the cloud link for a device from its board's ``link`` section.

Picks the MQTT client (``link.client``: ``auto`` is paho on CPython and the
portable client on MicroPython) and the resolver (the UDP client when
``dns_servers`` are set, else the system resolver on CPython; MicroPython's
``getaddrinfo`` blocks the whole VM, so there a board with host names needs
``dns_servers``). Imports are lazy: a board loads only the client it uses.
"""

from device import compat
from device.core.dns_codec import parse_ipv4
from device.errors import ConfigError
from device.link.topics import status_topic


def parse_broker_url(url: str) -> dict:
    """``mqtt://host:port`` or ``mqtts://host[:port]`` -> an endpoint dict (role primary)."""
    if url.startswith("mqtts://"):
        tls, rest, port = True, url[8:], 8883
    elif url.startswith("mqtt://"):
        tls, rest, port = False, url[7:], 1883
    else:
        raise ConfigError("broker", "expected mqtt://HOST:PORT or mqtts://HOST:PORT, got %r" % (url,))
    rest = rest.rstrip("/")
    host = rest
    if ":" in rest:
        host, port_text = rest.rsplit(":", 1)
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError("broker", "bad port %r in %r" % (port_text, url)) from None
        if not 0 < port < 65536:
            raise ConfigError("broker", "port %d out of range in %r" % (port, url))
    if not host:
        raise ConfigError("broker", "no host in %r" % (url,))
    return {"name": "broker", "role": "primary", "host": host, "port": port, "tls": tls, "addresses": []}


def client_kind(kind: str) -> str:
    """``link.client`` resolved: ``"paho"`` or ``"portable"`` (``auto``: paho on CPython, portable on MicroPython)."""
    if kind == "auto":
        return "portable" if compat.IS_MICROPYTHON else "paho"
    if kind == "paho" and compat.IS_MICROPYTHON:
        raise ConfigError("link.client", "paho needs CPython; use 'portable' or 'auto'")
    return kind


def client_class(kind: str):  # type: ignore[no-untyped-def]
    """The MQTT client class for a resolved ``client_kind``; imported lazily (a board loads only its own)."""
    if kind == "paho":
        from device.link.paho_client import PahoClient  # type: ignore[attr-defined,unused-ignore]

        return PahoClient
    from device.link.mqtt import MqttClient

    return MqttClient


def client_factory(cfg: dict, device_id: str):  # type: ignore[no-untyped-def]
    """``make_client(endpoint) -> ClientBase`` for ``Link``."""
    Client = client_class(client_kind(cfg["client"]))
    tls_files = cfg["tls"]

    def make_client(ep: dict):  # type: ignore[no-untyped-def]
        tls = None
        if ep["tls"]:
            if not tls_files.get("ca"):
                raise ConfigError("link.tls.ca", "endpoint %r uses TLS: a CA certificate is needed" % ep["name"])
            tls = {"ca": tls_files["ca"], "cert": tls_files.get("cert"), "key": tls_files.get("key")}
        return Client(
            device_id,
            keepalive_s=cfg["keepalive_s"],
            clean_session=False,
            window=cfg["window"],
            queue_len=cfg["queue_len"],
            tls=tls,
            connect_timeout_ms=cfg["connect_timeout_ms"],
            will=(status_topic(device_id), b"offline", 1, True),
        )

    return make_client


def make_resolver(cfg: dict):  # type: ignore[no-untyped-def]
    from device.link.resolver import SystemResolver, UdpResolver

    if cfg["dns_servers"]:
        return UdpResolver(cfg["dns_servers"])
    if compat.IS_MICROPYTHON:
        for ep in cfg["endpoints"]:
            if parse_ipv4(ep["host"]) is None:
                raise ConfigError(
                    "link.dns_servers", "needed on MicroPython for host %r (getaddrinfo blocks the VM)" % ep["host"]
                )
    return SystemResolver()


def build_link(env, cfg: dict, device_id: str, policies: dict, commands=None):  # type: ignore[no-untyped-def]
    """Return ``(link, engine)``; run ``link.run`` as a supervised task."""
    from device.link.link import Link
    from device.link.sync import SyncEngine

    engine = SyncEngine(
        env,
        device_id,
        window=cfg["window"],
        drain_per_s=cfg["drain_per_s"],
        ack_timeout_ms=cfg["ack_timeout_ms"],
        policies=policies,
        commands=commands,
    )
    link = Link(env, cfg, device_id, engine, client_factory(cfg, device_id), make_resolver(cfg))
    engine.commands.register("link_phase", link.phase_command)
    return link, engine


def attach_device(device, device_id: str):  # type: ignore[no-untyped-def]
    """``(link, engine)`` for a ``device.boot.Device``: its apps' shadow policies, command handlers
    (plus ``ping``, which every device answers) and bulk sources (clips: uploaded in chunks once
    the outbox is drained). Here, not in ``device.boot``: an offline device never loads it."""
    policies: dict = {}
    handlers: dict = {"ping": _pinger(device)}  # cloud command name -> async handler(args)
    sources: list = []
    for app in device.apps:  # (the bed's handlers go through its envelope)
        policies.update(getattr(app, "shadow_policies", {}))
        handlers.update(getattr(app, "commands", {}))
        sources.extend(getattr(app, "bulk_sources", ()))
    if device.env.board.get("lan"):  # LAN token revocations and key rotation come from the cloud
        from device.lan.tokenkeys import SHADOW_POLICIES

        policies.update(SHADOW_POLICIES)
    link, engine = build_link(device.env, device.env.board["link"], device_id, policies, handlers)
    if sources:
        from device.link.bulk import BulkSender

        engine.bulk = BulkSender(device.env.store, device_id, sources)
    lan = device.env.board.get("lan")
    if lan and lan["ha"]["enabled"]:
        from device.lan.habridge import attach_ha, lan_endpoint

        if lan_endpoint(device.env.board) is not None:  # Home Assistant on the LAN broker: its own session
            attach_ha(device, device_id)
    return link, engine


def _pinger(device):  # type: ignore[no-untyped-def]
    async def ping(args: dict) -> dict:
        """Is the device alive, since when, how is it doing."""
        return {"up_ms": device.env.clock.now_ms() - device.boot_ms, "health": device.health(), "echo": args}

    return ping
