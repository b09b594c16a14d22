"""Waiting in tests, on an MQTT client or on a device in simulated time: bounded in time and count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from device.clock import VirtualClock
from device.link.client import ClientBase


async def until(client: ClientBase, done: Callable[[], bool], timeout_ms: int) -> None:
    """Let the client work until ``done()`` or the (generous) time is up; bounded in count too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    for _ in range(100_000):
        if done():
            return
        if loop.time() > deadline:
            break
        await client.wait(50)
        await asyncio.sleep(0.002)  # wait() returns at once while untaken messages are queued
    raise AssertionError(f"condition not met within {timeout_ms} ms; client stats {client.stats()}")


async def until_sim(clock: VirtualClock, predicate: Callable[[], Any], timeout_s: float) -> bool:
    """Run simulated time in 200 ms steps until ``predicate()`` or ``timeout_s`` of real time; return it."""
    deadline = time.monotonic() + timeout_s
    for _ in range(100_000):
        if predicate() or time.monotonic() > deadline:
            break
        await clock.run_until(clock.now_ms() + 200)
    return bool(predicate())
