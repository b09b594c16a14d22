"""Waiting on an MQTT client in tests: bounded in time and in count, never a timed assertion."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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
