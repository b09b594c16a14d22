"""Drive the portable MQTT client against a live broker; runs under MicroPython (and CPython).

    micropython tests/portable/mqtt_live.py PORT CLIENT_ID [--count N] [--window W]
        [--refused-port P] [--tls CA CERT KEY HOSTNAME] [--bench]

Connects to 127.0.0.1:PORT, subscribes to ``bp/CLIENT_ID/cmd``, publishes N
QoS 1 messages of 100 bytes to that topic (keeping ``window`` in flight),
waits until every one is acknowledged and received back, then closes. With
``--refused-port`` it first checks that a refused port raises ConnectError.
Prints one line ``result {json}`` (counters, what was checked) and exits 0;
any failure prints ``error ...`` and exits 1. Every wait is bounded.
``--bench`` skips the subscription and reports only publish throughput.
"""

import sys

# This file is <root>/tests/portable/mqtt_live.py: put <root> on the path for ``device``.
sys.path.insert(0, "/".join(__file__.split("/")[:-3]) or ".")

import asyncio
import json

from device.compat import collect_garbage, heap_used, monotonic_ms
from device.link.mqtt import MqttClient
from device.linkerrors import ConnectError

PATIENCE_MS = 30000


def _options(argv):
    opts = {"count": 100, "window": 20, "refused_port": 0, "tls": None, "bench": False}
    opts["port"] = int(argv[0])
    opts["client_id"] = argv[1]
    i = 2
    while i < len(argv):
        arg = argv[i]
        if arg == "--count":
            opts["count"] = int(argv[i + 1])
            i += 2
        elif arg == "--window":
            opts["window"] = int(argv[i + 1])
            i += 2
        elif arg == "--refused-port":
            opts["refused_port"] = int(argv[i + 1])
            i += 2
        elif arg == "--tls":
            opts["tls"] = argv[i + 1 : i + 5]
            i += 5
        elif arg == "--bench":
            opts["bench"] = True
            i += 1
        else:
            raise ValueError("unknown argument " + arg)
    return opts


async def _check_refused(port):
    client = MqttClient("refused", connect_timeout_ms=5000)
    try:
        await client.connect("127.0.0.1", port)
    except ConnectError as exc:
        return exc.errno
    raise AssertionError("connect to a closed port did not raise ConnectError")


async def run(opts):
    result = {"checked": []}
    if opts["refused_port"]:
        result["refused_errno"] = await _check_refused(opts["refused_port"])
        result["checked"].append("refused")
    tls = None
    hostname = None
    if opts["tls"]:
        ca, cert, key, hostname = opts["tls"]
        tls = {"ca": ca, "cert": cert, "key": key}
    count = opts["count"]
    client = MqttClient(opts["client_id"], keepalive_s=30, window=opts["window"], queue_len=count + 1, tls=tls)
    topic = "bp/" + opts["client_id"] + "/cmd"
    result["session_present"] = await client.connect("127.0.0.1", opts["port"], server_hostname=hostname)
    collect_garbage()
    result["heap_connected"] = heap_used()
    result["checked"].append("connect")
    if not opts["bench"]:
        result["granted"] = await client.subscribe([(topic, 1)])
        result["checked"].append("subscribe")
    payload = b"m" * 100
    sent = 0
    acked = []
    received = []
    started = monotonic_ms()
    deadline = started + PATIENCE_MS
    while monotonic_ms() < deadline:
        while sent < count and client.in_flight() < opts["window"]:
            client.publish(topic, payload, 1)
            sent += 1
        acked.extend(client.take_acks())
        received.extend(client.take_messages())
        if len(acked) >= count and (opts["bench"] or len(received) >= count):
            break
        if client.closed is not None:
            raise AssertionError("connection closed: " + client.closed)
        await client.wait(1000)
    elapsed_ms = monotonic_ms() - started
    result["published"] = sent
    result["acked"] = len(acked)
    result["acked_unique"] = len(set(acked))
    result["received"] = len(received)
    result["received_ok"] = all(t == topic and p == payload for t, p in received)
    result["elapsed_ms"] = elapsed_ms
    result["per_second"] = (len(acked) * 1000 // elapsed_ms) if elapsed_ms > 0 else 0
    result["checked"].append("publish")
    await client.close()
    result["closed"] = client.closed
    result["stats"] = client.stats()
    return result


def main(argv):
    try:
        opts = _options(argv)
        result = asyncio.run(run(opts))
    except Exception as exc:  # report anything, the wrapper asserts on the output
        print("error %s: %s" % (type(exc).__name__, exc))
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc)  # type: ignore[attr-defined]
        return 1
    print("result " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
