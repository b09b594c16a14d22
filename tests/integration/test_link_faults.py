"""End to end through every fault: the record ledger has each record exactly once, in order per lane.

A thermostat (plus a producer adding telemetry every 100 ms of simulated time)
runs on a real broker behind the fault proxy and the fake DNS server
(``tests/integration/rig.py``). Each test: connect and deliver, switch a
fault on (and drop the open connection, so the link has to come back
through the fault), live through it, switch it off, and then check:

* the ledger holds every record the store created, exactly once after
  dedupe, no conflict, no order violation within a lane;
* the control loop never stalled: no gap between ticks in simulated time;
* the link went where it should (DEGRADED through a DNS failure, back up after).

Control-tick latency during faults is a figure, not an assertion: see
``brickproof bench resume`` and the closing notes.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_shim.broker import Mosquitto
from cloud_shim.ledger import LedgerSubscriber
from tests.integration.rig import HOST, Rig, settle

Action = Callable[[Rig], None]


def _dns(mode: str, addrs: list[str] | None = None) -> Action:
    return lambda rig: rig.dns.set(HOST, mode, addrs or [])


def _proxy(mode: str, **kw: int) -> Action:
    return lambda rig: rig.proxy.set_mode(mode, **kw)


def _dns_ok(rig: Rig) -> None:
    rig.dns.set(HOST, "ok", ["127.0.0.1"])


def _proxy_pass(rig: Rig) -> None:
    rig.proxy.set_mode("pass")


# fault name -> (switch on, switch off, link state expected while it lasts or None)
FAULTS: dict[str, tuple[Action, Action, str | None]] = {
    "dns_nxdomain": (_dns("nxdomain"), _dns_ok, "degraded"),
    "dns_empty": (_dns("empty"), _dns_ok, "degraded"),
    "dns_servfail": (_dns("servfail"), _dns_ok, "degraded"),
    "dns_timeout": (_dns("timeout"), _dns_ok, "degraded"),
    "dns_garbage": (_dns("garbage"), _dns_ok, "degraded"),
    "dns_wrong_address": (lambda rig: rig.dns.set(HOST, "wrong", [rig.wrong.addr]), _dns_ok, "degraded"),
    "refused": (_proxy("refuse"), _proxy_pass, None),
    "reset_on_accept": (_proxy("reject"), _proxy_pass, None),
    "blackhole": (_proxy("blackhole"), _proxy_pass, None),
    "reset_mid_packet": (_proxy("reset_after", n=300), _proxy_pass, None),
    "data_limit": (_proxy("limit", n=700), _proxy_pass, None),
    "delay": (_proxy("delay", ms=150), _proxy_pass, None),
    "throttle": (_proxy("throttle", rate=3000), _proxy_pass, None),
    "slicer": (_proxy("slicer"), _proxy_pass, None),
    "slow_close": (_proxy("slow_close", ms=800), _proxy_pass, None),
    "drop_pubacks": (_proxy("drop_pubacks"), _proxy_pass, None),
}

FAULT_SIM_MS = 12000


async def _through(rig: Rig, fault: str) -> None:
    on, off, expect = FAULTS[fault]
    await rig.start()
    try:
        await settle(rig)
        before = rig.ledger.ledger.count(rig.device_id)
        on(rig)
        rig.proxy.kill_all()
        await rig.run_for(FAULT_SIM_MS)
        if expect is not None:
            ok = await rig.run_until(lambda: rig.link_state == expect, 20.0)
            assert ok, f"link {rig.link_state}, expected {expect} during {fault}"
            # degraded still delivers: records keep arriving through the last-known-good address
            assert await rig.run_until(lambda: rig.ledger.ledger.count(rig.device_id) > before + 5, 20.0)
        if fault == "drop_pubacks":
            # nothing closes the connection: the engine must notice the missing PUBACKs itself
            engine = rig.device.sync  # type: ignore[union-attr]
            assert await rig.run_until(lambda: engine.counters["ack_timeouts"] > 0, 30.0)
            assert rig.device.link.state.causes.get("ack_timeout", 0) >= 1  # type: ignore[union-attr]
        off(rig)
        if fault in ("delay", "throttle", "slicer"):
            rig.proxy.kill_all()  # faults on an open connection: come back through a clean one too
        await settle(rig)
    finally:
        await rig.stop()
    report = rig.report()
    assert report.ok, report
    assert report.lost == [] and report.conflicts == [] and report.order_violations == []
    assert report.unexpected == []
    assert rig.tick_gaps_ms == [], f"control ticks stalled: {rig.tick_gaps_ms}"
    assert rig.produced > 0


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_every_record_once_through_fault(fault: str, tmp_path: Path, broker: Mosquitto, unique_id: str) -> None:
    rig = Rig(tmp_path, broker, unique_id)
    try:
        await _through(rig, fault)
    finally:
        rig.close()


async def test_half_open_tcp_is_detected_by_keepalive(tmp_path: Path, broker: Mosquitto, unique_id: str) -> None:
    rig = Rig(tmp_path, broker, unique_id)
    try:
        await rig.start()
        try:
            await settle(rig)
            rig.proxy.set_mode("half_open")
            # keepalive 5 s real: the link must notice on its own (nothing closes the socket)
            assert await rig.run_until(lambda: not rig.connected(), 40.0), rig.link_state
            rig.proxy.set_mode("pass")
            await settle(rig)
            link = rig.device.link  # type: ignore[union-attr]
            assert link.state.outages >= 2
        finally:
            await rig.stop()
        report = rig.report()
        assert report.ok, report
        assert rig.tick_gaps_ms == []
    finally:
        rig.close()


async def test_broker_restart_loses_nothing(tmp_path: Path, private_broker: Mosquitto, unique_id: str) -> None:
    rig = Rig(tmp_path, private_broker, unique_id)
    try:
        await rig.start()
        try:
            await settle(rig)
            # Cut the device off first and let the cloud receive all the broker acknowledged:
            # a broker without persistence loses what it had not passed on yet, a cloud-side
            # loss no device can prevent.
            rig.proxy.set_mode("refuse")
            rig.proxy.kill_all()
            acked = lambda: len(rig.created()) - rig.outbox_depth()  # noqa: E731
            assert await rig.run_until(lambda: rig.ledger.ledger.count(unique_id) >= acked(), 20.0)
            rig.ledger.stop()
            private_broker.kill()
            rig.proxy.set_mode("pass")
            await rig.run_for(10000)
            assert not rig.connected()
            private_broker.start()
            # the cloud comes back too: a new subscriber session feeding the same ledger
            rig.ledger = LedgerSubscriber(
                "127.0.0.1",
                private_broker.port,
                [unique_id],
                client_id="ledger2-" + unique_id,
                ledger=rig.ledger.ledger,
            ).start()
            # records created while the broker was down arrive; those before were already counted
            # by the old ledger connection (a non-persistent broker forgets nothing we need:
            # the device re-sends what it has not had PUBACKed)
            await settle(rig)
        finally:
            await rig.stop()
        report = rig.report()
        assert report.ok, report
        assert rig.tick_gaps_ms == []
        receipts = rig.device.link.receipts  # type: ignore[union-attr]
        assert receipts and receipts[-1]["duration_ms"] >= 10000
        assert receipts[-1]["outbox_depth_start"] <= receipts[-1]["outbox_depth_end"] + 200
    finally:
        rig.close()


async def test_desired_state_converges_and_outage_change_survives(
    tmp_path: Path, broker: Mosquitto, unique_id: str
) -> None:
    key = "thermostat.setpoint_c"
    rig = Rig(tmp_path, broker, unique_id)
    try:
        await rig.start()
        try:
            await settle(rig)
            rig.publish_desired({key: 22.5}, version=1)
            assert await rig.run_until(lambda: rig.reported_value(key) == 22.5, 30.0)
            # outage: the owner sets 19.5 locally (LAN) while the cloud still holds 22.5
            rig.proxy.set_mode("refuse")
            rig.proxy.kill_all()
            await rig.run_for(3000)
            store = rig.device.env.store  # type: ignore[union-attr]
            await store.put_state(key, 19.5, "local", rig.clock.wall_ms())  # type: ignore[union-attr]
            rig.proxy.set_mode("pass")
            await settle(rig)
            assert await rig.run_until(lambda: rig.reported_value(key) == 19.5, 30.0)
            entry = await store.get_state(key)
            assert entry.value == 19.5  # the stale retained desired (22.5) did not clobber it
        finally:
            await rig.stop()
    finally:
        rig.close()


# Faults quick enough to chain: each lasts a few simulated seconds.
_CHAINABLE = sorted(f for f in FAULTS if f not in ("drop_pubacks", "blackhole", "dns_timeout"))


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(_CHAINABLE), st.integers(min_value=1000, max_value=6000), st.booleans()),
        min_size=2,
        max_size=4,
    )
)
def test_random_fault_sequences_lose_and_duplicate_nothing(
    plan: list[tuple[str, int, bool]], broker: Mosquitto, unique_id: str
) -> None:
    """Faults one after another (each for 1-6 simulated s, the connection cut or not), then recovery."""

    async def live_through(rig: Rig) -> None:
        await rig.start()
        try:
            await settle(rig)
            for fault, sim_ms, cut in plan:
                on, off, _ = FAULTS[fault]
                on(rig)
                if cut:
                    rig.proxy.kill_all()
                await rig.run_for(sim_ms)
                off(rig)
            rig.proxy.kill_all()
            await settle(rig)
        finally:
            await rig.stop()

    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), broker, f"{unique_id}-{abs(hash(tuple(plan))) % 10**8}")
        try:
            asyncio.run(live_through(rig))
            report = rig.report()
            assert report.ok, (plan, report)
            assert report.unexpected == [] and rig.tick_gaps_ms == []
        finally:
            rig.close()
