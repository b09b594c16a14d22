"""``brickproof bench drain``: the raw side publishes what the engine publishes, and a small run reports."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud_shim.broker import Mosquitto
from tools.bench import drain

COUNT = 300
PATIENCE_S = 60


class _Tap:
    """Every message published under the bench device's out topics, as received."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tap-{time.monotonic_ns()}")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.subscribe("bp/%s/out/#" % drain.DEVICE_ID, qos=1)
        self._client.loop_start()
        assert self._subscribed.wait(PATIENCE_S), "no SUBACK"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + PATIENCE_S
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.messages)} of {count} messages within {PATIENCE_S} s")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def test_the_raw_side_sends_the_engines_very_messages(tmp_path: Path) -> None:
    with Mosquitto() as broker:
        wire = asyncio.run(drain.wire_messages(tmp_path, COUNT))
        tap = _Tap(broker.port)
        try:
            asyncio.run(drain.engine_drain(broker.port, tmp_path, "paho", COUNT))
            sent = tap.wait_for(COUNT)
        finally:
            tap.stop()
    assert len(wire) == len(sent) == COUNT
    for (raw_topic, raw), (topic, body) in zip(wire, sorted(sent, key=lambda m: json.loads(m[1])["seq"]), strict=True):
        assert raw_topic == topic
        assert len(raw) == len(body)  # same device id, same envelope, wall times of the same width
        raw_doc, doc = json.loads(raw), json.loads(body)
        assert abs(raw_doc.pop("wall_ms") - doc.pop("wall_ms")) < 60_000  # worked out at different moments
        assert raw_doc == doc


@pytest.mark.parametrize("count", [500])
def test_a_small_drain_run_reports_every_side_and_each_runs_ratio(count: int) -> None:
    result = drain.run(2, count=count)
    figures = result["figures"]
    assert result["name"] == "drain" and figures["records"] == count and figures["runs"] == 2
    for side in ("raw_paho", "engine_paho", "engine_portable"):
        assert figures[side + "_per_s"] > 0
    assert len(figures["ratios"]) == len(figures["portable_ratios"]) == 2
    assert min(figures["ratios"]) <= result["ratio"] <= max(figures["ratios"])
