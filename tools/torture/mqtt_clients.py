"""The two MQTT client implementations the mqtt-* harnesses put through their cases, and a poller.

``CLIENTS`` maps a name to a factory ``make(client_id, **options)`` (the options of
``device/link/client.py``). A test seeds a bug by passing its own table to a harness's ``run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from device.link.mqtt import MqttClient


def _paho(client_id: str, **options: Any) -> Any:
    from device.link.paho_client import PahoClient  # CPython + paho-mqtt only

    return PahoClient(client_id, **options)


CLIENTS: dict[str, Callable[..., Any]] = {"portable": MqttClient, "paho": _paho}


class Seen:
    """What a client handed out (acks, messages, dropped ids), kept across polls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.acks: list[int] = []
        self.messages: list[tuple[str, bytes]] = []
        self.dropped: list[int] = []

    def take(self) -> None:
        self.acks += self.client.take_acks()
        self.messages += self.client.take_messages()
        self.dropped += self.client.take_dropped()

    async def until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        """Poll until ``done()`` (after taking what the client has); False after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.take()
            if done():
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await self.client.wait(max(1, min(100, int(left * 1000))))
            if self.client.closed is not None:
                await asyncio.sleep(0.005)  # closed: wait() returns at once, do not spin


async def close_quietly(client: Any) -> None:
    try:
        await asyncio.wait_for(client.close(), 5.0)
    except Exception:
        pass
