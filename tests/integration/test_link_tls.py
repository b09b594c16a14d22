"""A whole device over mutual TLS through its Link, with DNS down: the seed address is dialled
and the broker's certificate is still checked against the endpoint's host name (SNI kept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.faults.dnsserver import FakeDnsServer
from cloud_shim.ledger import LedgerSubscriber
from device.board import load_board
from device.boot import Device, build_env
from device.config import configure_apps
from tests.integration.rig import REPO, SPEED
from tests.integration.tls import BROKER_HOST, DEVICE_A, Pki


@pytest.mark.parametrize("client", ["paho", "portable"])
async def test_mtls_device_delivers_through_seed_address_when_dns_fails(
    client: str, tmp_path: Path, pki: Pki, tls_broker: Mosquitto, unique_id: str
) -> None:
    assert tls_broker.tls_port is not None
    dns = FakeDnsServer()
    dns.start()
    dns.set(BROKER_HOST, "servfail")
    ledger = LedgerSubscriber("127.0.0.1", tls_broker.port, [unique_id], client_id="ledger-" + unique_id).start()
    try:
        board = load_board(str(REPO / "boards/host_sim.json"))
        board["storage"] = dict(board["storage"], backend="sqlite", path=str(tmp_path / "s.sqlite"), fsync=False)
        tls = pki.client_tls(DEVICE_A)
        board["link"].update(
            client=client,
            endpoints=[
                {
                    "name": "primary",
                    "role": "primary",
                    "host": BROKER_HOST,
                    "port": tls_broker.tls_port,
                    "tls": True,
                    "addresses": ["127.0.0.1"],
                }
            ],
            tls={"ca": tls["ca"], "cert": tls["cert"], "key": tls["key"]},
            dns_servers=[dns.address],
            dns_budget_ms=200,
            backoff_base_ms=200,
            backoff_cap_ms=2000,
        )
        env, world = build_env(board, SPEED, with_link=True)
        device = Device(env, configure_apps(board, ["thermostat"]), world)
        device.attach_link(unique_id)
        await device.start()
        try:
            clock = env.clock
            for _ in range(200):  # <= 100 simulated s = 20 s real
                if ledger.ledger.count(unique_id) >= 2 and env.store.depth()[0] == 0:
                    break
                await clock.run_until(clock.now_ms() + 500)
            link = device.link
            assert link is not None
            assert link.state.state == "degraded", link.stats()
            assert link.counters["dns_failed"] >= 1 and link.address == "127.0.0.1"
        finally:
            await device.stop()
        report = ledger.ledger.report(unique_id, range(1, env.store.next_seq()))
        assert report.ok and report.delivered >= 2, report
    finally:
        ledger.stop()
        dns.stop()
