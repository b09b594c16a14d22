"""The portable MQTT client under the ``micropython`` binary, for mqtt-malformed's corpus phase.

    micropython tools/torture/mqtt_mpclient.py PORT COUNT

Connects COUNT times to 127.0.0.1:PORT (the harness's scripted broker serves one
corpus case per connection: CONNACK, the case's bytes, a sentinel PUBLISH, EOF),
waits at most 1 s for the client to close, and prints one line per case::

    case I DELIVERED REASON HEAP

(DELIVERED 1 when the sentinel came out, REASON the close reason or ``hang``, HEAP
``gc.mem_alloc()`` after a collection), then ``done``. Runs under CPython too.
"""

import sys

# This file is <root>/tools/torture/mqtt_mpclient.py: put <root> on the path for ``device``.
sys.path.insert(0, "/".join(__file__.split("/")[:-3]) or ".")

import asyncio

from device.compat import collect_garbage, heap_used, monotonic_ms
from device.link.mqtt import MqttClient

HANG_MS = 1000


async def one(port: int, index: int) -> None:
    client = MqttClient("mp-malformed", keepalive_s=0, clean_session=True, queue_len=64, connect_timeout_ms=5000)  # type: ignore[no-untyped-call]
    delivered = 0
    try:
        await client.connect("127.0.0.1", port)  # type: ignore[no-untyped-call]
        deadline = monotonic_ms() + HANG_MS
        while client.closed is None and monotonic_ms() < deadline:
            await client.wait(50)
            for topic, _ in client.take_messages():
                if topic == "sentinel":
                    delivered = 1
        for topic, _ in client.take_messages():
            if topic == "sentinel":
                delivered = 1
        reason = client.closed or "hang"
    except Exception as exc:
        reason = "raised:" + type(exc).__name__
    await client.close()  # type: ignore[no-untyped-call]
    collect_garbage()
    print("case %d %d %s %d" % (index, delivered, reason, heap_used()))


async def main(port: int, count: int) -> None:
    for index in range(count):
        await one(port, index)
    print("done")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
