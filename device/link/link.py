"""``Link``: keeps the device connected to the best endpoint it can reach, never on the control path.

One supervised task. Each round walks the cloud endpoints (primary first,
then secondary; ``lan`` endpoints belong to the LAN side and are skipped)
and, per endpoint, its candidate addresses:

1. RESOLVING: DNS under ``dns_budget_ms``. Its answers come first; then the
   last-known-good addresses (``AddrBook``) and the board's seed addresses.
   When DNS fails (NXDOMAIN, empty, SERVFAIL, timeout) only the latter remain.
   The host name is always kept for TLS SNI and certificate checks.
2. CONNECTING: each candidate in turn. A peer that is not our broker (no
   valid CONNACK) is forgotten from the book; a TLS failure or a refused
   connection moves on to the next candidate.
3. ONLINE (DNS address of the primary) or DEGRADED (a fallback): the sync
   engine serves the connection until it drops. The address is marked good.
   Degraded on the primary, the link asks DNS again every ``dns_recheck_ms``
   and, once DNS answers with the address it is on, moves to ONLINE in place:
   a working connection is not dropped, and gates that wait for ONLINE (OTA)
   open again after the DNS outage ends.

When a round finds nothing, the link waits a capped exponential backoff
with full jitter (on the device clock), not reset by a connection that
lasted less than ``healthy_ms``. Once an outage has lasted
``long_outage_ms`` the jitter stops: the device tries once per ``spread_ms``,
on its own phase in that period, counted on wall time when the device knows
it (else on its own clock). The phase is a hash of the device id until the
cloud assigns one (command ``link_phase``: ``{"phase_ms", "spread_ms"}``,
kept in the private state key ``_link.phase``): independent hashes bunch
like dice (the busiest second of a 10,000-device return near mean + 3
sigma), while a cloud that knows its fleet can lay the phases out evenly
(``cloud_shim.phases``). A fleet then returns
evenly over one period whenever the cloud comes back, instead of bunching
at the start as full jitter does (a device is more likely to be in a long
sleep than a short one, so wake-ups just after the return come twice as
dense as the average); and the engine drains at the limited rate.
Every state change is counted; every outage ends in a receipt: an
``event`` record in the outbox (``{"type": "outage", ...}``, see
``device.core.linkstate``), so the cloud hears what the device lived through.
"""

import asyncio

from device.core import linkstate as ls
from device.core.backoff import Backoff, align_to_phase_ms, device_phase_ms
from device.core.dns_codec import parse_ipv4
from device.errors import StoreError
from device.link.addrbook import AddrBook
from device.linkerrors import DnsError, LinkError, NotOurBrokerError
from device.log import get_logger

_log = get_logger("link")

RECEIPTS_KEPT = 8
PHASE_KEY = "_link.phase"  # the phase the cloud assigned: {"phase_ms", "spread_ms"}


class Link:
    """Connects, hands the connection to ``engine.serve(client, rate_limited)``, reconnects.

    * ``env``          -- clock (backoff waits), store (receipts, last-known-good), rand (jitter)
    * ``cfg``          -- the board's validated ``link`` section
    * ``device_id``    -- the MQTT client id and topic id
    * ``engine``       -- ``device.link.sync.SyncEngine`` (anything with ``serve`` and ``stats``)
    * ``make_client``  -- ``make_client(endpoint) -> ClientBase``; called once per endpoint, the
                          object is reused across reconnects so a persistent session resumes
    * ``resolver``     -- ``await resolver.resolve(host, budget_ms) -> [ip, ...]`` or DnsError
    """

    def __init__(self, env, cfg: dict, device_id: str, engine, make_client, resolver) -> None:  # type: ignore[no-untyped-def]
        self.env = env
        self.cfg = cfg
        self.device_id = device_id
        self.engine = engine
        self._make_client = make_client
        self.resolver = resolver
        self.book = AddrBook(env.store, env.clock)
        self.endpoints = [ep for ep in cfg["endpoints"] if ep["role"] != "lan"]
        # primary before secondary, in board order within a role
        self.endpoints.sort(key=lambda ep: 0 if ep["role"] == "primary" else 1)
        self.backoff = Backoff(
            base_ms=cfg["backoff_base_ms"],
            cap_ms=max(cfg["backoff_cap_ms"], cfg["backoff_base_ms"]),
            jitter=True,
            healthy_ms=cfg["healthy_ms"],
        )
        self.phase_ms = device_phase_ms(device_id, cfg["spread_ms"])
        self.phase_source = "hash"  # or "cloud": assigned by the link_phase command
        depth, compacted = self._outbox_figures()
        self.state = ls.LinkState(env.clock.now_ms(), depth, compacted, env.clock.wall_ms())
        self.receipts: list = []
        self.endpoint_name: str | None = None
        self.address: str | None = None
        self._clients: dict = {}
        self.counters = {
            "rounds": 0,
            "dns_ok": 0,
            "dns_failed": 0,
            "connect_failed": 0,
            "not_our_broker": 0,
            "tls_failed": 0,
            "fallback_connects": 0,
            "dns_rechecks": 0,
            "promoted_online": 0,
            "sessions": 0,
            "receipt_errors": 0,
        }

    # -- the task ---------------------------------------------------------------

    async def run(self) -> None:
        clock = self.env.clock
        await self._load_phase()
        try:
            while True:
                self.counters["rounds"] += 1
                cause = await self._round()
                now = clock.now_ms()
                self._move(ls.OFFLINE, cause)
                delay = self.backoff.next_delay_ms(self.env.rand)
                if self.cfg["spread_ms"] > 0 and self.state.outage_ms(now) >= self.cfg["long_outage_ms"]:
                    # On wall time, a fleet's phases line up across devices that booted at different times.
                    wall = clock.wall_ms()
                    base = now if wall is None else wall
                    delay = align_to_phase_ms(base, self.backoff.base_ms, self.phase_ms, self.cfg["spread_ms"])
                await clock.sleep_ms(delay)
        finally:
            await self.close()

    # -- the reconnect phase the cloud assigns -------------------------------------------

    def _take_phase(self, value) -> str:  # type: ignore[no-untyped-def]
        """Use ``{"phase_ms", "spread_ms"}``; "" when taken, else why not."""
        if not isinstance(value, dict):
            return "args must be an object"
        phase, spread = value.get("phase_ms"), value.get("spread_ms")
        if not isinstance(phase, int) or isinstance(phase, bool):
            return "phase_ms must be an integer"
        if not isinstance(spread, int) or isinstance(spread, bool):
            return "spread_ms must be an integer"
        if spread != self.cfg["spread_ms"]:
            return "spread_ms %d is not this device's %d" % (spread, self.cfg["spread_ms"])
        if not 0 <= phase < spread:
            return "phase_ms %d is outside [0, %d)" % (phase, spread)
        self.phase_ms = phase
        self.phase_source = "cloud"
        return ""

    async def _load_phase(self) -> None:
        try:
            entry = await self.env.store.get_state(PHASE_KEY)
        except StoreError:
            return  # the hash phase serves until the cloud sends it again
        if entry is not None:
            self._take_phase(entry.value)  # a board whose spread changed since: back to the hash

    async def phase_command(self, args: dict) -> dict:
        """Command ``link_phase``: take the phase the cloud assigned and keep it across reboots."""
        why = self._take_phase(args)
        if why:
            raise ValueError(why)
        await self.env.store.put_state(PHASE_KEY, {"phase_ms": self.phase_ms, "spread_ms": self.cfg["spread_ms"]})
        return {"phase_ms": self.phase_ms, "source": self.phase_source}

    async def close(self) -> None:
        for name in list(self._clients):
            client = self._clients.pop(name)
            try:
                await client.close()
            except LinkError:
                pass

    async def _round(self) -> str:
        """Try every endpoint once; return why the round ended offline."""
        cause = "no_endpoints"
        for ep in self.endpoints:
            candidates, from_dns, cause = await self._candidates(ep)
            for addr in candidates:
                self._move(ls.CONNECTING, "")
                client = self._client(ep)
                try:
                    await client.connect(addr, ep["port"], ep["host"])
                except NotOurBrokerError as exc:
                    self.counters["not_our_broker"] += 1
                    cause = exc.cause
                    _log.warning("%s at %s is not our broker: %s", ep["name"], addr, exc)
                    await self.book.forget(ep["name"], addr)
                    continue
                except LinkError as exc:
                    self.counters["tls_failed" if exc.cause == "tls" else "connect_failed"] += 1
                    cause = exc.cause
                    _log.info("%s at %s: %s", ep["name"], addr, exc)
                    continue
                fallback = ep["role"] != "primary" or addr not in from_dns
                cause = await self._serve(ep, addr, client, fallback)
                return cause
        return cause

    async def _candidates(self, ep: dict) -> tuple:
        """``(addresses to try, the ones DNS gave now, the cause if DNS failed)``."""
        host = ep["host"]
        from_dns: list = []
        cause = "connect"
        if parse_ipv4(host) is not None:
            from_dns = [host]
        else:
            self._move(ls.RESOLVING, "")
            try:
                from_dns = await self.resolver.resolve(host, self.cfg["dns_budget_ms"])
                self.counters["dns_ok"] += 1
            except DnsError as exc:
                self.counters["dns_failed"] += 1
                cause = exc.cause
                self._move(ls.CONNECTING, cause)
                _log.info("DNS for %s failed (%s); trying last-known-good", host, exc.kind)
        out = list(from_dns)
        for addr in await self.book.known_good(ep["name"]):
            if addr not in out:
                out.append(addr)
        for addr in ep["addresses"]:
            if addr not in out:
                out.append(addr)
        return out, from_dns, cause

    async def _serve(self, ep: dict, addr: str, client, fallback: bool) -> str:  # type: ignore[no-untyped-def]
        clock = self.env.clock
        long_outage = self.state.outage_ms(clock.now_ms()) >= self.cfg["long_outage_ms"]
        if fallback:
            self.counters["fallback_connects"] += 1
        self.endpoint_name = ep["name"]
        self.address = addr
        self.counters["sessions"] += 1
        receipt = self._move(ls.DEGRADED if fallback else ls.ONLINE, "")
        await self.book.mark_good(ep["name"], addr)
        if receipt is not None:
            receipt["endpoint"] = ep["name"]
            await self._keep_receipt(receipt)
        started = clock.now_ms()
        cause = "closed"
        recheck = None
        if fallback and ep["role"] == "primary" and self.cfg["dns_recheck_ms"] and parse_ipv4(ep["host"]) is None:
            recheck = asyncio.create_task(self._recheck_dns(ep["host"], addr))
        try:
            cause = await self.engine.serve(client, long_outage) or cause
        except LinkError as exc:
            cause = exc.cause
        finally:
            if recheck is not None:
                recheck.cancel()
                try:
                    await recheck
                except asyncio.CancelledError:
                    pass
            self.backoff.record_success(clock.now_ms() - started)
            self.endpoint_name = None
            self.address = None
        if client.closed is None:
            await client.close()
        _log.info("link to %s at %s lost: %s", ep["name"], addr, cause)
        return cause

    async def _recheck_dns(self, host: str, addr: str) -> None:
        """Degraded on the primary: ask DNS now and then; ONLINE once it answers with ``addr``."""
        clock = self.env.clock
        while True:
            await clock.sleep_ms(self.cfg["dns_recheck_ms"])
            self.counters["dns_rechecks"] += 1
            try:
                answer = await self.resolver.resolve(host, self.cfg["dns_budget_ms"])
            except DnsError:
                continue  # still out: stay degraded on the working connection
            self.counters["dns_ok"] += 1
            if addr in answer:
                self._move(ls.ONLINE, "")
                self.counters["promoted_online"] += 1
                _log.info("DNS for %s answers again with %s: online", host, addr)
                return
            # DNS names other addresses: this one still works, so keep it (degraded) until it drops

    # -- helpers ----------------------------------------------------------------

    def _client(self, ep: dict):  # type: ignore[no-untyped-def]
        client = self._clients.get(ep["name"])
        if client is None:
            client = self._make_client(ep)
            self._clients[ep["name"]] = client
        return client

    def _outbox_figures(self) -> tuple:
        store = self.env.store
        try:
            depth = store.depth()[0]
        except StoreError:
            depth = -1
        return depth, store.counters.get("compacted", 0)

    def _move(self, state: str, cause: str):  # type: ignore[no-untyped-def]
        if state == self.state.state and state != ls.CONNECTING:
            return None
        clock = self.env.clock
        depth, compacted = self._outbox_figures()
        old = self.state.state
        receipt = self.state.move(state, clock.now_ms(), cause, depth, compacted, clock.wall_ms())
        _log.debug("link %s -> %s %s", old, state, cause)
        return receipt

    async def _keep_receipt(self, receipt: dict) -> None:
        self.receipts.append(receipt)
        if len(self.receipts) > RECEIPTS_KEPT:
            self.receipts.pop(0)
        _log.info(
            "outage over after %d ms (%s, %d attempts, outbox %d -> %d, %d compacted)",
            receipt["duration_ms"],
            receipt["cause"],
            receipt["attempts"],
            receipt["outbox_depth_start"],
            receipt["outbox_depth_end"],
            receipt["compacted"],
        )
        try:
            await self.env.store.append("event", receipt, self.env.clock.now_ms())
        except StoreError as exc:
            self.counters["receipt_errors"] += 1
            _log.warning("outage receipt not stored: %s", exc)

    def stats(self) -> dict:
        now = self.env.clock.now_ms()
        out = self.state.stats(now)
        out["endpoint"] = self.endpoint_name
        out["address"] = self.address
        out["backoff_attempts"] = self.backoff.attempts
        out["phase"] = {"ms": self.phase_ms, "source": self.phase_source}
        out["counters"] = dict(self.counters)
        out["addrbook_writes"] = self.book.writes
        clients = {}
        for name in self._clients:
            clients[name] = self._clients[name].stats()
        out["clients"] = clients
        return out
