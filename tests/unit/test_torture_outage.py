"""outage-matrix: the proxy's new modes, and that the count catches a store that drops records."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from cloud_shim.faults.proxy import FaultProxy
from tools.torture import outage_matrix as om


async def _echo_upstream() -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


def test_linger_close_forwards_n_bytes_then_closes_late() -> None:
    async def scenario() -> tuple[bytes, bytes, int]:
        upstream = await _echo_upstream()
        proxy = FaultProxy("127.0.0.1", upstream.sockets[0].getsockname()[1])
        await proxy.serve()
        await proxy.aset_mode("linger_close", n=4, ms=300)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"abcdefgh")
        await writer.drain()
        got = await asyncio.wait_for(reader.read(100), 10)
        rest = await asyncio.wait_for(reader.read(), 10)  # EOF arrives, after the linger
        writer.close()
        await proxy.aclose()
        upstream.close()
        return got, rest, proxy.counters["lingered"]

    got, rest, lingered = asyncio.run(scenario())
    assert got == b"abcd"
    assert rest == b""
    assert lingered == 1


def test_stall_makes_connects_hang_and_pass_reopens() -> None:
    async def scenario() -> tuple[bool, bytes]:
        upstream = await _echo_upstream()
        proxy = FaultProxy("127.0.0.1", upstream.sockets[0].getsockname()[1])
        await proxy.serve()
        await proxy.aset_mode("stall")
        try:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy.port), 1.0)
            hung = False
        except TimeoutError:
            hung = True
        await proxy.aset_mode("pass")
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", proxy.port), 10)
        writer.write(b"ping")
        echoed = await asyncio.wait_for(reader.read(4), 10)
        writer.close()
        await proxy.aclose()
        upstream.close()
        return hung, echoed

    hung, echoed = asyncio.run(scenario())
    assert hung
    assert echoed == b"ping"


def _drops_records(device: Any) -> None:
    """The seeded bug: the store takes every fifth record and forgets it before it is sent."""
    store = device.env.store
    real_append = store.append

    async def append(lane: str, payload: dict[str, Any], now_ms: int = 0) -> int:
        seq = await real_append(lane, payload, now_ms)
        if seq % 5 == 0:
            await store.ack_seqs([seq])
        return int(seq)

    store.append = append


def test_the_count_catches_a_store_that_drops_records() -> None:
    fast = {"lanes": ["refused"], "devices": 1, "speed": 60.0, "seed": 3, "drain_real_s": 15.0}
    good = om.run_schedule((1, 1, 1), **fast)  # type: ignore[arg-type]
    assert good["expected"] > 10
    assert good["lost"] == 0 and good["duplicated"] == 0 and good["quiet_kinds"] == 0
    bad = om.run_schedule((1, 1, 1), device_hook=_drops_records, **fast)  # type: ignore[arg-type]
    assert bad["lost"] > 0
    assert bad["lanes"]["refused"]["lost"] == bad["lost"]


def test_socket_is_free_after_stall() -> None:
    # the stall's listener and fillers are closed by aclose: the port can be bound again
    async def scenario() -> int:
        proxy = FaultProxy("127.0.0.1", 9)
        await proxy.serve()
        await proxy.aset_mode("stall")
        port = proxy.port
        await proxy.aclose()
        return port

    port = asyncio.run(scenario())
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
