"""The OTA chunk channel (device/ota/channel.py) and the sync engine's ``extras`` hook.

The channel alone against a recording client, then inside a real
``SyncEngine`` session on the fake client of test_sync_engine: its topic is
subscribed, its requests go out from the engine's turns, chunk messages are
routed to it. Waits are bounded by a generous real-time limit, never asserted on.
"""

import json

from device.link.sync import SyncEngine
from device.linkerrors import LinkBusyError
from device.ota.channel import ChunkChannel, parse_chunk
from tests.pure._check import raises
from tests.pure.test_sync_engine import DEV, Env, FakeClient, FakeClock, make_store, session, until

SHA = "ab" * 32
GET = "bp/" + DEV + "/ota/get"
CHUNK = "bp/" + DEV + "/ota/chunk"


class Recorder:
    def __init__(self):  # type: ignore[no-untyped-def]
        self.sent = []
        self.busy = False

    def publish(self, topic, payload, qos=1, retain=False):  # type: ignore[no-untyped-def]
        if self.busy:
            raise LinkBusyError("window full", "busy")
        self.sent.append((topic, json.loads(payload), qos, retain))
        return 0


def chunk_message(off, data, bundle=SHA, total=1000):  # type: ignore[no-untyped-def]
    header = {"bundle": bundle, "off": off, "n": len(data), "total": total}
    return json.dumps(header).encode() + b"\n" + data


def test_parse_chunk_reads_the_header_line_and_the_bytes():
    header, data = parse_chunk(chunk_message(8, b"a\nb\x00c"))
    assert header["off"] == 8 and data == b"a\nb\x00c"
    header, data = parse_chunk(json.dumps({"bundle": SHA, "error": "unknown bundle"}).encode() + b"\n")
    assert header["error"] == "unknown bundle" and data == b""
    raises(ValueError, parse_chunk, b'{"bundle": "x", "off": 0, "n": 5}')  # no header line
    raises(ValueError, parse_chunk, b'{"bundle": "x", "off": 0, "n": 5}\nabc')  # fewer bytes than n
    raises(ValueError, parse_chunk, b"[1]\nabc")
    raises(ValueError, parse_chunk, b"not json\nabc")


async def test_one_request_goes_out_and_is_asked_again_only_after_the_timeout():
    ch = ChunkChannel(timeout_ms=1000)
    assert ch.subscriptions(DEV) == [(CHUNK, 1)]
    client = Recorder()
    ch.fill(client, 0)
    assert client.sent == []  # nothing wanted
    ch.request(SHA, 0, 100)
    ch.fill(client, 10)
    ch.fill(client, 500)
    ch.request(SHA, 0, 100)  # the same request again keeps its timer
    ch.fill(client, 900)
    assert client.sent == [(GET, {"bundle": SHA, "off": 0, "n": 100}, 0, False)]
    ch.fill(client, 1010)
    assert len(client.sent) == 2 and ch.counters["resent"] == 1
    client.busy = True
    ch.fill(client, 5000)
    assert len(client.sent) == 2 and ch.counters["busy"] == 1
    client.busy = False
    ch.fill(client, 5001)
    assert len(client.sent) == 3


async def test_only_the_chunk_wanted_is_kept_and_taken_once():
    ch = ChunkChannel()
    ch.subscriptions(DEV)
    await ch.on_message("ota/chunk", chunk_message(0, b"early"))  # nothing asked yet
    ch.request(SHA, 100, 50)
    await ch.on_message("ota/chunk", chunk_message(0, b"stale"))  # another offset
    await ch.on_message("ota/chunk", chunk_message(100, b"x" * 50, bundle="cd" * 32))  # another bundle
    await ch.on_message("ota/chunk", chunk_message(100, b"x" * 51))  # more than asked
    await ch.on_message("ota/chunk", b"garbage")
    assert ch.take() is None and ch.waiting()
    assert ch.counters["dropped"] == 4 and ch.counters["malformed"] == 1
    await ch.on_message("ota/chunk", chunk_message(100, b"y" * 50))
    assert not ch.waiting()
    assert ch.take() == (100, b"y" * 50)
    assert ch.take() is None
    await ch.on_message("ota/chunk", chunk_message(100, b"y" * 50))  # a duplicate (QoS 1)
    assert ch.take() is None and ch.counters["chunks"] == 1


async def test_an_error_answer_ends_the_request():
    ch = ChunkChannel()
    ch.request(SHA, 0, 10)
    await ch.on_message("ota/chunk", json.dumps({"bundle": SHA, "error": "unknown bundle"}).encode() + b"\n")
    assert ch.take() == ("error", "unknown bundle") and not ch.waiting()


async def test_the_engine_subscribes_an_extra_fills_it_and_routes_its_messages():
    store = await make_store()
    engine = SyncEngine(Env(store, FakeClock()), DEV, poll_ms=5)
    ch = ChunkChannel(timeout_ms=60000)
    engine.extras.append(ch)
    client = FakeClient(auto_ack=True)

    async def body():  # type: ignore[no-untyped-def]
        await until(lambda: (CHUNK, 1) in client.subscribed, "the chunk subscription")
        ch.request(SHA, 0, 4)
        await until(lambda: client.on(GET), "the request")
        client.feed(CHUNK, chunk_message(0, b"abcd"))
        client.feed("bp/" + DEV + "/ota/other", b"ignored")
        await until(lambda: not ch.waiting(), "the chunk")

    await session(engine, client, body)
    assert ch.take() == (0, b"abcd")
    assert len(client.on(GET)) == 1 and client.on(GET)[0][3] == 0  # QoS 0
    assert engine.counters["commands"] == 0
