"""``mqtt-conformance``: a scripted broker checks the session rules of both MQTT clients.

Cases, each against ``portable`` (device/link/mqtt.py) and ``paho`` (device/link/paho_client.py):

* ``resend_session``   k QoS 1 PUBLISHes unacknowledged, the broker drops the connection; after
  the reconnect with session_present=1 each comes again with DUP, the same packet id, topic and
  payload, in order; their PUBACKs are reported once, nothing is reported dropped.
* ``resend_no_session`` the same, but session_present=0: nothing is re-sent (the first PUBLISH
  after the reconnect is a new one, without DUP) and the k ids are reported by ``take_dropped``.
* ``duplicate_in``     the broker sends a QoS 1 PUBLISH, gets its PUBACK, drops the connection
  and, in the restored session, sends it again with DUP: acknowledged again, delivered once.
* ``refused_<code>``   CONNACK return code 1..5: ``connect`` raises ``BrokerRefusedError`` with
  that code, the client closes the socket and is not open; the same object then connects again
  (the retry) and a QoS 1 PUBLISH goes through.
* ``refused_link_<code>`` the device's link (device/link/link.py, real backoff with jitter, 10..80 ms)
  over the client: three refusals with that code, each counted and backed off, then online on the
  fourth CONNECT with the same client object (every 5th round).
* ``keepalive``        keepalive 1 s: the CONNECT says so, a PINGREQ comes and its PINGRESP keeps
  the connection open, the next PINGREQ unanswered closes it with reason ``keepalive``.

Random topics, payloads, packet ids and k (seeded); every step is bounded (5 s). A case fails on
a wrong byte, a wrong report, a timeout or an exception other than the documented one.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from cloud_shim.faults import scriptbroker as sb
from device.linkerrors import BrokerRefusedError
from tools.torture.mqtt_clients import CLIENTS, Seen, close_quietly

NAME = "mqtt-conformance"
SUMMARY = "scripted broker: QoS 1 re-send with DUP, duplicate delivery, keepalive, CONNACK refusals"

ROUNDS = {"ci": 25, "long": 1000}  # rounds of the fast cases; keepalive runs once per client
TIME_BOUND_S = {"ci": 50.0, "long": 1800.0}
CASE_BOUND_S = 20.0


CaseFailed = sb.ScriptError


def _check(cond: bool, why: str) -> None:
    if not cond:
        raise CaseFailed(why)


async def _open(broker: sb.ScriptBroker, client: Any, present: bool) -> sb.Conn:
    conn: sb.Conn
    conn, task, _ = await sb.serve_connect(broker, client, present)
    got = await asyncio.wait_for(task, sb.STEP_TIMEOUT_S)
    _check(got is present, f"connect returned session_present={got!r}, CONNACK said {present}")
    _check(client.closed is None, f"open after CONNACK, yet closed={client.closed!r}")
    return conn


async def _drop(conn: sb.Conn, seen: Seen) -> None:
    conn.close()
    _check(await seen.until(lambda: seen.client.closed is not None), "did not notice the broker closing")


async def _read_publishes(conn: sb.Conn, count: int) -> list[sb.Publish]:
    out: list[sb.Publish] = []
    for _ in range(count):
        packet = await conn.read_until((sb.PUBLISH,))
        _check(packet is not None, f"expected {count} PUBLISHes, got {len(out)}")
        assert packet is not None
        out.append(sb.parse_publish(packet))
    return out


def _words(rng: random.Random) -> tuple[str, bytes]:
    topic = "bp/t%d/%s" % (rng.randrange(1000), "x" * rng.randrange(1, 20))
    return topic, rng.randbytes(rng.randrange(0, 300))


async def case_resend(broker: sb.ScriptBroker, make: Callable[..., Any], rng: random.Random, present: bool) -> None:
    client = make("conf-resend", keepalive_s=0, clean_session=False)
    seen = Seen(client)
    try:
        conn = await _open(broker, client, False)
        sent = [_words(rng) for _ in range(rng.randrange(1, 6))]
        pids = [client.publish(topic, payload, 1) for topic, payload in sent]
        first = await _read_publishes(conn, len(sent))
        for pub, (topic, payload), pid in zip(first, sent, pids, strict=True):
            _check((pub.qos, pub.dup, pub.packet_id) == (1, False, pid), f"first send {pub} (id {pid})")
            _check((pub.topic, pub.payload) == (topic, payload), "first send: topic/payload differ")
        await _drop(conn, seen)
        conn = await _open(broker, client, present)
        if present:
            again = await _read_publishes(conn, len(sent))
            for pub, (topic, payload), pid in zip(again, sent, pids, strict=True):
                _check(pub.dup and pub.qos == 1, f"re-send without DUP/QoS 1: {pub}")
                _check(pub.packet_id == pid, f"re-sent with id {pub.packet_id}, first sent as {pid}")
                _check((pub.topic, pub.payload) == (topic, payload), "re-send: topic/payload differ")
            for pid in pids:
                conn.send(sb.puback(pid))
            _check(await seen.until(lambda: len(seen.acks) >= len(pids)), f"acks {seen.acks}, want {pids}")
            await asyncio.sleep(0)
            seen.take()
            _check(sorted(seen.acks) == sorted(pids), f"acks {seen.acks}, want each of {pids} once")
            _check(not seen.dropped, f"reported dropped {seen.dropped} though the session persisted")
        else:
            marker = client.publish("bp/marker", b"new", 1)
            (pub,) = await _read_publishes(conn, 1)
            _check(pub.topic == "bp/marker" and not pub.dup, f"re-sent into a new session: {pub}")
            conn.send(sb.puback(marker))
            _check(await seen.until(lambda: marker in seen.acks), "marker not acked")
            _check(sorted(seen.dropped) == sorted(pids), f"dropped {seen.dropped}, want {pids}")
        _check(client.in_flight() == 0, f"in_flight {client.in_flight()} after every PUBACK")
    finally:
        await close_quietly(client)


async def case_duplicate_in(broker: sb.ScriptBroker, make: Callable[..., Any], rng: random.Random) -> None:
    client = make("conf-dup", keepalive_s=0, clean_session=False)
    seen = Seen(client)
    try:
        conn = await _open(broker, client, False)
        topic, payload = _words(rng)
        pid = rng.randrange(1, 65536)
        conn.send(sb.publish(topic, payload, 1, pid))
        ack = await conn.read_until((sb.PUBACK,))
        _check(ack == sb.puback(pid), f"PUBACK {ack!r} for id {pid}")
        await _drop(conn, seen)  # as if that PUBACK had been lost on the way
        conn = await _open(broker, client, True)
        conn.send(sb.publish(topic, payload, 1, pid, dup=True))
        ack = await conn.read_until((sb.PUBACK,))
        _check(ack == sb.puback(pid), f"no PUBACK {pid} for the DUP re-send (got {ack!r})")
        conn.send(sb.publish("bp/sentinel", b"end"))
        _check(await seen.until(lambda: ("bp/sentinel", b"end") in seen.messages), "sentinel not delivered")
        times = seen.messages.count((topic, payload))
        _check(times == 1, f"the message was delivered {times} times")
    finally:
        await close_quietly(client)


async def case_refused(broker: sb.ScriptBroker, make: Callable[..., Any], code: int) -> None:
    client = make("conf-refused", keepalive_s=0, clean_session=True)
    seen = Seen(client)
    try:
        conn, task, _ = await sb.serve_connect(broker, client, False, code)
        try:
            await asyncio.wait_for(task, sb.STEP_TIMEOUT_S)
        except BrokerRefusedError as exc:
            _check(exc.code == code, f"BrokerRefusedError code {exc.code}, CONNACK said {code}")
        else:
            raise CaseFailed(f"connect succeeded on CONNACK code {code}")
        _check(client.closed is not None, "refused, yet reports open")
        _check(await conn.wait_eof(), "refused, yet kept the socket open")
        # The retry (the link waits its backoff first; the object must be reusable).
        conn = await _open(broker, client, False)
        pid = client.publish("bp/after", b"retry", 1)
        (pub,) = await _read_publishes(conn, 1)
        _check(pub.packet_id == pid, f"PUBLISH after the retry: {pub}")
        conn.send(sb.puback(pid))
        _check(await seen.until(lambda: pid in seen.acks), "no ack after the retry")
    finally:
        await close_quietly(client)


class _HoldEngine:
    """The link's sync engine, reduced to: note the session, hold it until told to stop."""

    def __init__(self) -> None:
        self.served = asyncio.Event()
        self.sessions = 0

    async def serve(self, client: Any, rate_limited: bool = False) -> str:
        self.sessions += 1
        self.served.set()
        while client.closed is None:
            await client.wait(100)
        return "closed"


REFUSALS = 3  # CONNACK refusals before the scripted broker accepts the link


async def case_refused_link(broker: sb.ScriptBroker, make: Callable[..., Any], code: int) -> None:
    """The device's link (device/link/link.py) over this client: each refusal counted, backed off, retried."""
    from device.board import LINK_SPEC
    from device.clock import MonotonicClock
    from device.env import Env
    from device.link.link import Link
    from device.rand import Rand
    from device.schema import validate
    from device.store.memory import MemoryStore

    endpoint = {"name": "primary", "role": "primary", "host": sb.LOCAL, "port": broker.port, "tls": False}
    cfg = validate(LINK_SPEC, {"endpoints": [endpoint], "backoff_base_ms": 10, "backoff_cap_ms": 80}, "link")
    store = MemoryStore()
    await store.open()
    engine = _HoldEngine()
    made: list[Any] = []

    def make_client(ep: dict[str, Any]) -> Any:
        made.append(make("conf-link", keepalive_s=0, clean_session=True))
        return made[-1]

    link = Link(Env(MonotonicClock(), store, None, Rand(code)), cfg, "conf-link", engine, make_client, None)
    task = asyncio.ensure_future(link.run())
    try:
        for attempt in range(REFUSALS + 1):
            conn = await broker.accept()
            _check(conn is not None, f"the link did not retry after {attempt} refusals")
            assert conn is not None
            _check(await conn.read_packet() is not None, "no CONNECT")
            if attempt < REFUSALS:
                conn.send(sb.connack(False, code))
                _check(await conn.wait_eof(), f"refusal {attempt + 1}: socket left open")
            else:
                conn.send(sb.connack())
        await asyncio.wait_for(engine.served.wait(), sb.STEP_TIMEOUT_S)
        _check(link.counters["connect_failed"] == REFUSALS, f"link counters {link.counters}")
        _check(link.backoff.attempts >= REFUSALS, f"backoff attempts {link.backoff.attempts}")
        _check(len(made) == 1 and made[0].closed is None, "the link did not reuse one client and get online")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for client in made:
            await close_quietly(client)


async def case_keepalive(broker: sb.ScriptBroker, make: Callable[..., Any]) -> None:
    client = make("conf-keepalive", keepalive_s=1, clean_session=True)
    seen = Seen(client)
    try:
        conn, task, connect = await sb.serve_connect(broker, client, False)
        await asyncio.wait_for(task, sb.STEP_TIMEOUT_S)
        _check(sb.connect_keepalive(connect) == 1, f"CONNECT keepalive {sb.connect_keepalive(connect)}, want 1")
        ping = await conn.read_until((sb.PINGREQ,))
        _check(ping is not None, "no PINGREQ within 5 s at keepalive 1 s")
        conn.send(sb.PINGRESP_PACKET)
        ping = await conn.read_until((sb.PINGREQ,))
        _check(ping is not None and client.closed is None, f"answered ping, then closed={client.closed!r}")
        # This one goes unanswered: a half-open connection looks exactly like this.
        _check(await conn.wait_eof(8.0), "missing PINGRESP not detected within 8 s")
        _check(await seen.until(lambda: client.closed is not None), "socket closed but the client reports open")
        _check(client.closed == "keepalive", f"closed with reason {client.closed!r}, want 'keepalive'")
    finally:
        await close_quietly(client)


async def _run_case(
    name: str, work: Awaitable[None], broker: sb.ScriptBroker, failures: dict[str, int], notes: list[str]
) -> bool:
    try:
        await asyncio.wait_for(work, CASE_BOUND_S)
        return True
    except CaseFailed as exc:
        why = str(exc)
    except TimeoutError:
        why = f"timed out ({CASE_BOUND_S} s)"
    except Exception as exc:
        why = f"crash: {type(exc).__name__}: {exc}"
    finally:
        broker.close_all()
    failures[name] = failures.get(name, 0) + 1
    if len(notes) < 5:
        notes.append(f"{name}: {why}")
    return False


async def _client_campaign(
    kind: str, make: Callable[..., Any], size: str, seed: int, progress: TextIO | None
) -> dict[str, Any]:
    rng = random.Random(f"{seed}:{kind}")
    failures: dict[str, int] = {}
    notes: list[str] = []
    passed = total = 0
    started = time.monotonic()
    async with sb.ScriptBroker() as broker:
        total += 1
        passed += await _run_case("keepalive", case_keepalive(broker, make), broker, failures, notes)
        for done in range(ROUNDS[size]):
            if time.monotonic() - started > TIME_BOUND_S[size]:
                break
            work: list[tuple[str, Awaitable[None]]] = [
                ("resend_session", case_resend(broker, make, rng, True)),
                ("resend_no_session", case_resend(broker, make, rng, False)),
                ("duplicate_in", case_duplicate_in(broker, make, rng)),
            ]
            work += [(f"refused_{code}", case_refused(broker, make, code)) for code in range(1, 6)]
            if done % 5 == 0:
                work += [(f"refused_link_{code}", case_refused_link(broker, make, code)) for code in range(1, 6)]
            for name, job in work:
                total += 1
                passed += await _run_case(name, job, broker, failures, notes)
            if progress is not None and (done + 1) % 10 == 0:
                print(f"{NAME}: {kind}: {done + 1} rounds, {passed}/{total} passed", file=progress)
    return {"passed": passed, "total": total, "failures": failures, "notes": notes, "s": time.monotonic() - started}


async def _campaign(
    size: str, seed: int, progress: TextIO | None, clients: dict[str, Callable[..., Any]]
) -> dict[str, Any]:
    kinds = sorted(clients)
    results = await asyncio.gather(*(_client_campaign(k, clients[k], size, seed, progress) for k in kinds))
    return dict(zip(kinds, results, strict=True))


def run(
    size: str, seed: int, progress: TextIO | None, clients: dict[str, Callable[..., Any]] | None = None
) -> dict[str, Any]:
    """The harness (``clients``: name -> factory, default both implementations; tests seed bugs here)."""
    table = clients or CLIENTS
    by_kind = asyncio.run(_campaign(size, seed, progress, table))
    figures: dict[str, Any] = {}
    goals: dict[str, list[Any]] = {}
    for kind, res in by_kind.items():
        figures[f"{kind}.cases_passed"] = res["passed"]
        figures[f"{kind}.cases_total"] = res["total"]
        figures[f"{kind}.cases_failed"] = res["total"] - res["passed"]
        figures[f"{kind}.failed_by_case"] = dict(sorted(res["failures"].items()))
        figures[f"{kind}.first_failures"] = res["notes"]
        figures[f"{kind}.wall_s"] = round(res["s"], 2)
        goals[f"{kind}.cases_failed"] = ["==", 0]
        goals[f"{kind}.cases_total"] = [">=", 1 + 8 * min(ROUNDS[size], 10) + 5]
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
