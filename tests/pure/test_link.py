"""The link with scripted fakes: DNS failure -> last-known-good, wrong addresses, backoff, receipts.

No sockets: the client, resolver and engine are fakes, time is a VirtualClock.
"""

import asyncio

from device import log
from device.board import LINK_SPEC
from device.clock import VirtualClock
from device.core import linkstate as ls
from device.env import Env
from device.link.addrbook import KEY_PREFIX
from device.link.client import ClientBase
from device.link.link import Link
from device.linkerrors import ConnectError, DnsError, NotOurBrokerError, TlsError
from device.rand import Rand
from device.schema import validate
from device.store.memory import MemoryStore

PRIMARY = {"name": "primary", "role": "primary", "host": "iot.example.com", "port": 8883}
SECONDARY = {"name": "secondary", "role": "secondary", "host": "iot-west.example.com", "port": 8883}


def _cfg(endpoints, **extra):
    raw = {"endpoints": endpoints}
    for k, v in extra.items():
        raw[k] = v
    return validate(LINK_SPEC, raw, "link")


class FakeClient(ClientBase):
    """``script[addr]``: "ok" or an exception to raise from connect."""

    def __init__(self, script, dialled):
        ClientBase.__init__(self, "dev")
        self.script = script
        self.dialled = dialled

    async def connect(self, ip, port, server_hostname=None):
        self.dialled.append((ip, port, server_hostname))
        outcome = self.script.get(ip, ConnectError("refused", 111, "refused"))
        if outcome != "ok":
            raise outcome
        self._note_open(False)
        return False

    def in_flight(self):
        return 0

    async def close(self):
        self._note_closed("closed by us")


class FakeResolver:
    def __init__(self, answers):
        self.answers = answers
        self.asked = 0

    async def resolve(self, host, budget_ms):
        self.asked += 1
        answer = self.answers.get(host, DnsError("no such name", "nxdomain"))
        if isinstance(answer, Exception):
            raise answer
        return list(answer)


class FakeEngine:
    """Holds each connection for ``hold_ms`` of device time, then the peer resets it."""

    def __init__(self, clock, hold_ms):
        self.clock = clock
        self.hold_ms = hold_ms
        self.served = []

    async def serve(self, client, rate_limited=False):
        self.served.append((self.clock.now_ms(), rate_limited))
        await self.clock.sleep_ms(self.hold_ms)
        client._note_closed("reset")


def _run(main):
    lines = []
    log.set_sink(lines.append)
    try:
        return asyncio.run(main())
    finally:
        log.set_sink(None)


def _setup(cfg, script, answers, hold_ms=1000):
    clock = VirtualClock()
    store = MemoryStore()
    env = Env(clock, store, None, Rand(7))
    dialled = []
    engine = FakeEngine(clock, hold_ms)
    link = Link(env, cfg, "dev-1", engine, lambda ep: FakeClient(script, dialled), FakeResolver(answers))
    return clock, store, link, engine, dialled


async def _stop(task):
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _run_link(clock, store, link, until_ms):
    await store.open()
    task = asyncio.create_task(link.run())
    await clock.run_until(until_ms)
    await _stop(task)


def test_dns_answer_connects_online_and_remembers_the_address():
    async def main():
        clock, store, link, _engine, dialled = _setup(
            _cfg([PRIMARY]), {"10.0.0.5": "ok"}, {"iot.example.com": ["10.0.0.5"]}, hold_ms=10**9
        )
        await _run_link(clock, store, link, 5000)
        lkg = await store.get_state(KEY_PREFIX + "primary")
        events = await store.read_outbox(10)
        return link, dialled, lkg, events

    link, dialled, lkg, events = _run(main)
    assert dialled == [("10.0.0.5", 8883, "iot.example.com")]  # the host name kept for TLS
    assert link.state.state == ls.ONLINE
    assert lkg.value["addrs"] == ["10.0.0.5"]
    receipts = [r.payload for r in events if r.payload.get("type") == "outage"]
    assert len(receipts) == 1 and receipts[0]["cause"] == "boot" and receipts[0]["endpoint"] == "primary"


def test_dns_failure_dials_last_known_good_keeping_the_host_name():
    for kind in ("nxdomain", "empty", "servfail", "timeout"):

        async def main(kind=kind):
            clock, store, link, _engine, dialled = _setup(
                _cfg([PRIMARY]),
                {"10.0.0.5": "ok"},
                {"iot.example.com": DnsError("dns " + kind, kind)},
                hold_ms=10**9,
            )
            await store.open()
            await link.book.mark_good("primary", "10.0.0.5")
            await _run_link(clock, store, link, 5000)
            return link, dialled

        link, dialled = _run(main)
        assert dialled == [("10.0.0.5", 8883, "iot.example.com")], (kind, dialled)
        assert link.state.state == ls.DEGRADED, kind
        assert link.counters["dns_failed"] == 1 and link.counters["fallback_connects"] == 1
        assert link.state.causes["dns_" + kind] == 1


def test_wrong_dns_answer_is_detected_and_the_next_candidate_tried():
    async def main():
        script = {"203.0.113.9": NotOurBrokerError("no CONNACK"), "10.0.0.5": "ok"}
        clock, store, link, _engine, dialled = _setup(
            _cfg([PRIMARY]), script, {"iot.example.com": ["203.0.113.9"]}, hold_ms=10**9
        )
        await store.open()
        await link.book.mark_good("primary", "10.0.0.5")
        await _run_link(clock, store, link, 5000)
        return link, dialled, await link.book.known_good("primary")

    link, dialled, good = _run(main)
    assert [d[0] for d in dialled] == ["203.0.113.9", "10.0.0.5"]
    assert link.counters["not_our_broker"] == 1
    assert link.state.state == ls.DEGRADED  # connected through the book, not through DNS
    assert good == ["10.0.0.5"]  # the wrong answer never became "good"


def test_tls_failure_on_primary_falls_over_to_secondary():
    async def main():
        script = {"10.0.0.5": TlsError("certificate verify failed"), "10.1.0.5": "ok"}
        answers = {"iot.example.com": ["10.0.0.5"], "iot-west.example.com": ["10.1.0.5"]}
        clock, store, link, _engine, dialled = _setup(_cfg([SECONDARY, PRIMARY]), script, answers, hold_ms=10**9)
        await _run_link(clock, store, link, 5000)
        return link, dialled

    link, dialled = _run(main)
    assert [d[0] for d in dialled] == ["10.0.0.5", "10.1.0.5"]  # primary first whatever the board order
    assert link.state.state == ls.DEGRADED and link.receipts[-1]["endpoint"] == "secondary"
    assert link.counters["tls_failed"] == 1


def test_backoff_grows_and_a_short_session_does_not_reset_it():
    async def main():
        cfg = _cfg([PRIMARY], backoff_base_ms=1000, backoff_cap_ms=64000, healthy_ms=60000, long_outage_ms=10**9)
        clock, store, link, engine, _dialled = _setup(cfg, {"10.0.0.5": "ok"}, {"iot.example.com": ["10.0.0.5"]}, 500)
        await _run_link(clock, store, link, 600000)
        return link, engine

    link, engine = _run(main)
    starts = [t for t, _ in engine.served]
    gaps = [starts[i + 1] - starts[i] - 500 for i in range(len(starts) - 1)]
    # each connection lives 500 ms < healthy_ms, so the ceiling keeps doubling to the cap
    assert link.backoff.attempts >= 8
    assert len(starts) < 40  # without growth a 1 s base would give ~400 sessions in 600 s
    assert max(gaps) <= 64000 and min(gaps) >= 0


def test_long_outage_reconnects_on_the_device_phase_and_drains_rate_limited():
    async def main():
        cfg = _cfg([PRIMARY], long_outage_ms=60000, spread_ms=30000, backoff_cap_ms=20000)
        answers = {"iot.example.com": DnsError("gone", "empty")}
        clock, store, link, engine, _dialled = _setup(cfg, {"10.0.0.5": "ok"}, answers, hold_ms=10**9)
        await store.open()
        task = asyncio.create_task(link.run())
        await clock.run_until(300000)  # 5 minutes with DNS answering empty and no book
        answers["iot.example.com"] = ["10.0.0.5"]
        await clock.run_until(400000)
        await _stop(task)
        return link, engine

    link, engine = _run(main)
    assert len(engine.served) == 1
    at_ms, rate_limited = engine.served[0]
    assert rate_limited
    # the attempt that connected started on the device's phase (the connect itself takes no sim time)
    assert at_ms % 30000 == link.phase_ms, (at_ms, link.phase_ms)
    assert link.receipts[-1]["cause"] == "boot" and link.receipts[-1]["last_cause"] == "dns_empty"


def test_after_a_long_outage_the_link_tries_once_per_spread_on_its_phase_without_jitter():
    # Full jitter with a 120 s cap would try every 0-120 s (aligned: 30, 60, 90 or 120 s apart);
    # past long_outage_ms the link tries exactly once per spread_ms, so a returning fleet is flat.
    async def main():
        cfg = _cfg([PRIMARY], long_outage_ms=60000, spread_ms=30000, backoff_cap_ms=120000)
        answers = {"iot.example.com": DnsError("gone", "empty")}
        clock, store, link, _engine, _dialled = _setup(cfg, {"10.0.0.5": "ok"}, answers, hold_ms=10**9)
        await store.open()
        task = asyncio.create_task(link.run())
        await clock.run_until(300000 + link.phase_ms)  # well past the long-outage mark, just before a slot
        before = link.counters["rounds"]
        await clock.run_until(600000 + link.phase_ms)
        during = link.counters["rounds"] - before
        await _stop(task)
        return during

    assert _run(main) == 10  # 300 s / 30 s


def test_a_phase_assigned_by_the_cloud_is_used_on_wall_time_and_survives_a_reboot():
    async def main():
        cfg = _cfg([PRIMARY], long_outage_ms=60000, spread_ms=30000, backoff_cap_ms=20000)
        answers = {"iot.example.com": DnsError("gone", "empty")}
        clock, store, link, _engine, _dialled = _setup(cfg, {"10.0.0.5": "ok"}, answers, hold_ms=10**9)
        clock.set_wall_ms(1700000012345)  # wall time not a multiple of the spread: alignment shows
        await store.open()
        hashed = link.phase_ms
        assigned = (hashed + 12345) % 30000
        answer = await link.phase_command({"phase_ms": assigned, "spread_ms": 30000})
        # A reboot: a new link on the same store takes the assigned phase when it starts.
        engine2 = FakeEngine(clock, 10**9)
        rebooted = Link(link.env, cfg, "dev-1", engine2, lambda ep: FakeClient({"10.0.0.5": "ok"}, []), link.resolver)
        task = asyncio.create_task(rebooted.run())
        await clock.run_until(300000)  # a 5-minute outage, then the broker answers
        answers["iot.example.com"] = ["10.0.0.5"]
        await clock.run_until(400000)
        await _stop(task)
        return hashed, assigned, answer, rebooted, engine2

    hashed, assigned, answer, rebooted, engine2 = _run(main)
    assert answer == {"phase_ms": assigned, "source": "cloud"}
    assert rebooted.phase_ms == assigned != hashed and rebooted.stats()["phase"]["source"] == "cloud"
    assert len(engine2.served) == 1
    at_ms = engine2.served[0][0]
    assert (1700000012345 + at_ms) % 30000 == assigned, (at_ms, assigned)  # on the wall clock's phase


def test_a_bad_phase_from_the_cloud_is_refused_and_the_hash_phase_kept():
    async def main():
        cfg = _cfg([PRIMARY], spread_ms=30000)
        _clock, store, link, _engine, _dialled = _setup(cfg, {}, {})
        await store.open()
        errors = []
        for args in (
            {"phase_ms": 30000, "spread_ms": 30000},
            {"phase_ms": -1, "spread_ms": 30000},
            {"phase_ms": 5, "spread_ms": 60000},
            {"phase_ms": "5", "spread_ms": 30000},
            {"phase_ms": True, "spread_ms": 30000},
            [5, 30000],
        ):
            try:
                await link.phase_command(args)
            except ValueError as exc:
                errors.append(str(exc))
        return link, errors, await store.get_state("_link.phase")

    link, errors, kept = _run(main)
    assert errors == [
        "phase_ms 30000 is outside [0, 30000)",
        "phase_ms -1 is outside [0, 30000)",
        "spread_ms 60000 is not this device's 30000",
        "phase_ms must be an integer",
        "phase_ms must be an integer",
        "args must be an object",
    ]
    assert link.phase_source == "hash" and kept is None


def test_an_ip_host_is_dialled_without_asking_dns():
    async def main():
        ep = {"name": "primary", "role": "primary", "host": "10.0.0.5", "port": 1883}
        clock, store, link, _engine, dialled = _setup(_cfg([ep]), {"10.0.0.5": "ok"}, {}, hold_ms=10**9)
        await _run_link(clock, store, link, 5000)
        return link, dialled

    link, dialled = _run(main)
    assert link.resolver.asked == 0 and link.counters["dns_ok"] == 0
    assert dialled == [("10.0.0.5", 1883, "10.0.0.5")]
    assert link.state.state == ls.ONLINE and link.state.counts[ls.RESOLVING] == 0


def _degraded_then_dns(answer_later, **extra):
    """Connected on the last-known-good address while DNS fails; at 30 s DNS answers ``answer_later``."""

    async def main():
        clock, store, link, engine, dialled = _setup(
            _cfg([PRIMARY], **extra),
            {"10.0.0.5": "ok"},
            {"iot.example.com": DnsError("dns servfail", "servfail")},
            hold_ms=10**9,
        )
        await store.open()
        await link.book.mark_good("primary", "10.0.0.5")
        task = asyncio.create_task(link.run())
        await clock.run_until(25000)
        before = link.state.state
        link.resolver.answers["iot.example.com"] = answer_later
        await clock.run_until(200000)
        await _stop(task)
        return link, engine, dialled, before

    return _run(main)


def test_degraded_on_last_known_good_goes_online_in_place_when_dns_answers_with_it():
    link, engine, dialled, before = _degraded_then_dns(["10.0.0.9", "10.0.0.5"], dns_recheck_ms=20000)
    assert before == ls.DEGRADED
    assert link.state.state == ls.ONLINE
    assert link.counters["promoted_online"] == 1
    # promoted on the working connection: dialled once, one session, no second receipt
    assert dialled == [("10.0.0.5", 8883, "iot.example.com")] and len(engine.served) == 1
    assert link.counters["sessions"] == 1 and link.state.outages == 1
    # rechecks every 20 s: the ones at 20 s (DNS still out) and 40 s (answers): then it stops asking
    assert link.counters["dns_rechecks"] == 2 and link.resolver.asked == 3


def test_degraded_stays_on_a_working_address_that_dns_no_longer_names():
    link, engine, dialled, _before = _degraded_then_dns(["10.0.0.9"], dns_recheck_ms=20000)
    assert link.state.state == ls.DEGRADED and link.counters["promoted_online"] == 0
    assert len(dialled) == 1 and len(engine.served) == 1  # a working connection is never dropped for it
    assert link.counters["dns_rechecks"] == 10  # every 20 s up to 200 s


def test_dns_recheck_off_never_asks_again():
    link, _engine, dialled, _before = _degraded_then_dns(["10.0.0.5"], dns_recheck_ms=0)
    assert link.state.state == ls.DEGRADED and link.resolver.asked == 1 and len(dialled) == 1
