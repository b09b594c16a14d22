"""The UDP DNS client and the resolvers against a real UDP server on 127.0.0.1.

The fake server (``cloud_shim.faults.dnsserver``) answers per name in each
failure mode; the same client also runs under the ``micropython`` binary.
Waits are bounded by generous limits, never asserted as latencies.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from cloud_shim.broker import free_port
from cloud_shim.faults.dnsserver import FakeDnsServer
from device.compat import sleep_ms
from device.errors import ConfigError
from device.link.dns import DnsStats, query_a
from device.link.resolver import SystemResolver, UdpResolver, gai_kind
from device.linkerrors import DnsError
from tests.portable.test_micropython import REPO_ROOT, _binary

NAME = "broker.test"
SLACK_S = 5.0  # generous bound on "returns within its budget" for a loaded machine


@pytest.fixture
async def dns() -> AsyncIterator[FakeDnsServer]:
    """The fake server in the test's own loop (the client must not block it)."""
    async with FakeDnsServer() as server:
        yield server


@pytest.fixture
def threaded_dns() -> Iterator[FakeDnsServer]:
    """The fake server in a thread of its own (for clients in another process)."""
    with FakeDnsServer() as server:
        yield server


async def _failure(resolver: UdpResolver, name: str = NAME, budget_ms: int = 2000) -> DnsError:
    with pytest.raises(DnsError) as info:
        await resolver.resolve(name, budget_ms)
    return info.value


# ---------------------------------------------------------------- each mode


async def test_ok_returns_the_addresses_and_ttl(dns: FakeDnsServer) -> None:
    dns.set(NAME, "ok", ["10.0.0.7", "10.0.0.8"])
    resolver = UdpResolver([dns.address])
    assert await resolver.resolve(NAME, 2000) == ["10.0.0.7", "10.0.0.8"]
    assert resolver.last_ttl_s == dns.ttl_s
    assert dns.queries(NAME) == 1
    assert resolver.stats.as_dict()["answers"] == 1


async def test_answer_through_a_cname(dns: FakeDnsServer) -> None:
    dns.set(NAME, "ok", ["10.9.9.9"], cname="edge.cdn.test")
    assert await UdpResolver([dns.address]).resolve(NAME, 2000) == ["10.9.9.9"]


async def test_wrong_addresses_are_returned_as_given(dns: FakeDnsServer) -> None:
    # The resolver cannot know an address is wrong: the link finds out when it dials.
    dns.set(NAME, "wrong", ["203.0.113.5"])
    assert await UdpResolver([dns.address]).resolve(NAME, 2000) == ["203.0.113.5"]


async def test_nxdomain_is_final_without_retries(dns: FakeDnsServer) -> None:
    dns.set(NAME, "nxdomain")
    error = await _failure(UdpResolver([dns.address]))
    assert error.kind == "nxdomain" and error.cause == "dns_nxdomain"
    assert dns.queries(NAME) == 1


async def test_empty_answer(dns: FakeDnsServer) -> None:
    dns.set(NAME, "empty")
    assert (await _failure(UdpResolver([dns.address]))).kind == "empty"
    assert dns.queries(NAME) == 1


async def test_servfail_is_retried_then_reported(dns: FakeDnsServer) -> None:
    dns.set(NAME, "servfail")
    assert (await _failure(UdpResolver([dns.address], tries=3))).kind == "servfail"
    assert dns.queries(NAME) == 3


async def test_garbage_is_an_error_not_a_crash(dns: FakeDnsServer) -> None:
    dns.set(NAME, "garbage")
    resolver = UdpResolver([dns.address], tries=3)  # one of each kind of garbage
    assert (await _failure(resolver)).kind == "error"
    assert dns.queries(NAME) == 3
    assert resolver.stats.malformed == 3


async def test_timeout_ends_within_the_budget(dns: FakeDnsServer) -> None:
    dns.set(NAME, "timeout")
    resolver = UdpResolver([dns.address])
    started = time.monotonic()
    error = await _failure(resolver, budget_ms=600)
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert elapsed < 0.6 + SLACK_S
    assert dns.queries(NAME) == 2  # both tries were sent before the budget ran out


async def test_late_answer_to_an_earlier_try_is_taken(dns: FakeDnsServer) -> None:
    # Each of the 2 tries waits 1.5 s; the answer to the first arrives after 1.6 s,
    # while the second try waits: it is still ours.
    dns.set(NAME, "ok", ["10.1.2.3"], delay_ms=1600)
    resolver = UdpResolver([dns.address], tries=2)
    assert await resolver.resolve(NAME, 3000) == ["10.1.2.3"]
    assert dns.queries(NAME) == 2


async def test_mode_changes_take_effect_on_the_next_query(dns: FakeDnsServer) -> None:
    resolver = UdpResolver([dns.address])
    dns.set(NAME, "ok", ["10.0.0.1"])
    assert await resolver.resolve(NAME, 2000) == ["10.0.0.1"]
    dns.set(NAME, "nxdomain")
    assert (await _failure(resolver)).kind == "nxdomain"
    dns.set(NAME, "wrong", ["10.6.6.6"])
    assert await resolver.resolve(NAME, 2000) == ["10.6.6.6"]


# ---------------------------------------------------------------- several servers


async def test_a_refused_server_is_skipped(dns: FakeDnsServer) -> None:
    dns.set(NAME, "ok", ["10.0.0.2"])
    dead = "127.0.0.1:%d" % free_port()  # nothing listens: ICMP port unreachable -> ECONNREFUSED
    resolver = UdpResolver([dead, dns.address])
    assert await resolver.resolve(NAME, 3000) == ["10.0.0.2"]
    assert resolver.stats.socket_errors >= 1


async def test_a_silent_server_is_followed_by_the_next(dns: FakeDnsServer) -> None:
    async with FakeDnsServer() as silent:
        silent.set(NAME, "timeout")
        dns.set(NAME, "ok", ["10.0.0.3"])
        resolver = UdpResolver([silent.address, dns.address])
        assert await resolver.resolve(NAME, 3000) == ["10.0.0.3"]
        assert silent.queries(NAME) == 1 and dns.queries(NAME) == 1


async def test_only_dead_servers_is_an_error() -> None:
    dead = "127.0.0.1:%d" % free_port()
    error = await _failure(UdpResolver([dead]), budget_ms=3000)
    assert error.kind in ("error", "timeout")  # refused when the ICMP error arrives in time


# ---------------------------------------------------------------- never blocks


async def test_the_loop_keeps_running_while_a_query_waits(dns: FakeDnsServer) -> None:
    dns.set(NAME, "timeout")
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await sleep_ms(10)

    task = asyncio.create_task(ticker())
    try:
        error = await _failure(UdpResolver([dns.address]), budget_ms=800)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert error.kind == "timeout"
    assert ticks > 10  # ~80 at 10 ms; a blocking client would leave it at 1


# ---------------------------------------------------------------- resolver edges


async def test_ip_literal_needs_no_query(dns: FakeDnsServer) -> None:
    resolver = UdpResolver([dns.address])
    assert await resolver.resolve("127.0.0.1", 100) == ["127.0.0.1"]
    assert await resolver.resolve("[::1]", 100) == ["::1"]
    assert dns.queries() == 0
    assert resolver.counters["literals"] == 2


async def test_bad_names_and_servers() -> None:
    with pytest.raises(ConfigError) as info:
        UdpResolver(["10.0.0.1", "dns.example.com"])
    assert info.value.path == "link.dns_servers[1]"
    with pytest.raises(ConfigError):
        UdpResolver([])
    error = await _failure(UdpResolver(["127.0.0.1:9"]), name="bad name.test")
    assert error.kind == "error"


async def test_query_ids_come_from_the_id_source(dns: FakeDnsServer) -> None:
    dns.set(NAME, "ok", ["10.0.0.4"])
    ids = iter([0x1234])
    stats = DnsStats()
    host, port = dns.address.split(":")
    assert await query_a(NAME, [(host, int(port))], 2000, id_source=lambda: next(ids), stats=stats) == (
        ["10.0.0.4"],
        dns.ttl_s,
    )
    assert stats.queries == 1


async def test_threaded_server_answers_a_client_in_this_loop(threaded_dns: FakeDnsServer) -> None:
    threaded_dns.set(NAME, "ok", ["10.0.0.5"])
    assert await UdpResolver([threaded_dns.address]).resolve(NAME, 2000) == ["10.0.0.5"]


async def test_system_resolver() -> None:
    resolver = SystemResolver()
    assert await resolver.resolve("localhost", 5000) == ["127.0.0.1"]
    assert await resolver.resolve("10.1.1.1", 5000) == ["10.1.1.1"]
    with pytest.raises(DnsError) as info:
        await resolver.resolve("localhost", 0)  # no budget at all: cut off before the worker answers
    assert info.value.kind == "timeout"
    assert gai_kind(socket.EAI_NONAME) == "nxdomain"
    assert gai_kind(socket.EAI_AGAIN) == "timeout"
    assert gai_kind(socket.EAI_FAIL) == "servfail"
    assert gai_kind(getattr(socket, "EAI_NODATA", -5)) == "empty"
    assert gai_kind(socket.EAI_SERVICE) == "error"


# ---------------------------------------------------------------- under MicroPython

MP_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
import asyncio
import json
from device.compat import sleep_ms
from device.linkerrors import DnsError
from device.link.resolver import UdpResolver

async def main():
    resolver = UdpResolver([sys.argv[2]])
    state = {"ticks": 0, "stop": False}

    async def ticker():
        while not state["stop"]:
            state["ticks"] += 1
            await sleep_ms(10)

    task = asyncio.create_task(ticker())
    try:
        out = {"ok": await resolver.resolve(sys.argv[3], int(sys.argv[4])), "ttl": resolver.last_ttl_s}
    except DnsError as exc:
        out = {"error": exc.kind}
    state["stop"] = True
    await task
    out["ticks"] = state["ticks"]
    print(json.dumps(out))

asyncio.run(main())
"""


def _run_micropython(script_dir: str, server: FakeDnsServer, budget_ms: int) -> dict[str, object]:
    micropython = _binary("micropython")
    script = script_dir + "/dns_probe.py"
    with open(script, "w") as f:
        f.write(MP_SCRIPT)
    done = subprocess.run(
        [micropython, script, str(REPO_ROOT), server.address, NAME, str(budget_ms)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.micropython
def test_micropython_ok(threaded_dns: FakeDnsServer, tmp_path: object) -> None:
    threaded_dns.set(NAME, "ok", ["10.0.0.9", "10.0.0.10"])
    result = _run_micropython(str(tmp_path), threaded_dns, 3000)
    assert result["ok"] == ["10.0.0.9", "10.0.0.10"] and result["ttl"] == threaded_dns.ttl_s


@pytest.mark.micropython
def test_micropython_nxdomain(threaded_dns: FakeDnsServer, tmp_path: object) -> None:
    threaded_dns.set(NAME, "nxdomain")
    assert _run_micropython(str(tmp_path), threaded_dns, 3000)["error"] == "nxdomain"


@pytest.mark.micropython
def test_micropython_timeout_does_not_block_the_vm(threaded_dns: FakeDnsServer, tmp_path: object) -> None:
    threaded_dns.set(NAME, "timeout")
    result = _run_micropython(str(tmp_path), threaded_dns, 800)
    assert result["error"] == "timeout"
    assert isinstance(result["ticks"], int) and result["ticks"] > 10
    assert threaded_dns.queries(NAME) == 2
