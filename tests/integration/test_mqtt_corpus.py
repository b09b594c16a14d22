"""The portable MQTT client against Mosquitto's malformed and edge-case packets, sent by a scripted broker.

``shared/corpora/mosquitto-packets`` (beside the repository; see its README) holds the packets a
client may receive, from Mosquitto's own broker tests. A scripted broker (an
asyncio server on 127.0.0.1) plays each test's ``send`` payloads to
``MqttClient`` in two ways:

* after a normal CONNACK, followed by a valid PUBLISH on ``sentinel``: a client
  that accepted the payload delivers the sentinel (so "it stayed open" needs no
  timing); one that rejected it closes with reason ``"protocol"`` and counts it.
* instead of the CONNACK: only a valid CONNACK may open the connection; anything
  else is ``NotOurBrokerError``.

What a *client* must do differs from what Mosquitto (a broker) does with the
same bytes, so the verdicts here are the client's: PUBREC/PUBREL/PUBCOMP, QoS 2,
a second CONNACK and DISCONNECT (server-to-client only in MQTT 5) close the
connection; an unsolicited PUBACK/SUBACK/UNSUBACK/PINGRESP of valid form is
ignored. MQTT 5 cases get no verdict -- the client speaks 3.1.1 -- but must not
crash or hang either. Every case is bounded in time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloud_shim.faults import scriptbroker as sb
from device.link.mqtt import MqttClient
from device.linkerrors import NotOurBrokerError

LOCAL = sb.LOCAL
CASE_TIMEOUT_S = 10.0
CONNACK = sb.connack()
SENTINEL = sb.publish("sentinel", b"ok")
QUEUE_LEN = 4
VALID_CONNACKS = sb.VALID_CONNACKS
CORPUS = sb.corpus_dir()
# The corpus and each case's verdict for a client live in cloud_shim/faults/scriptbroker.py
# (shared with the mqtt-malformed torture harness).
CASES = sb.load_corpus()
V311 = [c for c in CASES if c.ver in (3, 4)]
V5 = [c for c in CASES if c.ver == 5]


@dataclass
class Script:
    """What the scripted broker sends for one connection, and what it heard."""

    first: bytes | None  # the CONNACK, or None to send the payloads in its place
    sends: list[bytes]
    trailer: bytes = SENTINEL
    eof_after: bool = False
    heard: bytearray = field(default_factory=bytearray)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ScriptedBroker:
    def __init__(self) -> None:
        self.script: Script | None = None
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedBroker:
        self.server = await asyncio.start_server(self._serve, LOCAL, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.script
        assert script is not None
        try:
            connect = await asyncio.wait_for(sb.read_packet(reader), CASE_TIMEOUT_S)
            script.heard += connect
            out = b"" if script.first is None else script.first
            writer.write(out + b"".join(script.sends) + script.trailer)
            await writer.drain()
            if script.eof_after:
                writer.write_eof()
            # Record what the client says until it hangs up (bounded).
            for _ in range(1000):
                data = await asyncio.wait_for(reader.read(4096), CASE_TIMEOUT_S)
                if not data:
                    break
                script.heard += data
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            script.done.set()


async def _settle(client: MqttClient, seen: list[tuple[str, bytes]]) -> None:
    """Wait until the client delivered the sentinel or closed (bounded by the caller)."""
    for _ in range(10_000):
        seen.extend(client.take_messages())
        if client.closed is not None or any(topic == "sentinel" for topic, _ in seen):
            return
        await client.wait(200)


@dataclass
class Outcome:
    closed: str | None
    messages: list[tuple[str, bytes]]
    stats: dict[str, Any]
    heard: bytes


async def run_after_connack(broker: ScriptedBroker, case: sb.CorpusCase, eof_after: bool = False) -> Outcome:
    script = Script(CONNACK, case.sends, eof_after=eof_after)
    broker.script = script
    client = MqttClient("corpus", keepalive_s=0, clean_session=True, queue_len=QUEUE_LEN, connect_timeout_ms=5000)
    await client.connect(LOCAL, broker.port)
    seen: list[tuple[str, bytes]] = []
    try:
        await asyncio.wait_for(_settle(client, seen), CASE_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"{case.label}: client neither delivered the sentinel nor closed in {CASE_TIMEOUT_S} s")
    closed = client.closed
    stats = client.stats()
    await asyncio.wait_for(client.close(), CASE_TIMEOUT_S)
    await asyncio.wait_for(script.done.wait(), CASE_TIMEOUT_S)
    assert len(seen) <= QUEUE_LEN + 1, f"{case.label}: message queue not bounded"
    return Outcome(closed, seen, stats, bytes(script.heard))


@pytest.fixture
async def scripted() -> Any:
    async with ScriptedBroker() as broker:
        yield broker


def _require_corpus() -> None:
    if not CASES:
        pytest.skip(f"corpus not found at {CORPUS}")


async def test_v311_cases_after_connack(scripted: ScriptedBroker, layer_summary: Any) -> None:
    _require_corpus()
    kept = closed = 0
    for case in V311:
        outcome = await run_after_connack(scripted, case)
        topics = [topic for topic, _ in outcome.messages]
        if case.client_keeps_open:
            assert outcome.closed is None, f"{case.label}: closed ({outcome.closed}) on valid input"
            assert topics[-1] == "sentinel", f"{case.label}: {topics}"
            if case.kind == "PUBLISH":
                assert topics == ["topic" if "2A6D4" not in case.name else "A\U0002a6d4", "sentinel"]
            pid = case.qos1_publish_id
            if pid is not None:
                assert b"\x40\x02" + pid.to_bytes(2, "big") in outcome.heard, f"{case.label}: no PUBACK"
            kept += 1
        else:
            assert outcome.closed == "protocol", f"{case.label}: expected a protocol close, got {outcome.closed}"
            assert outcome.stats["protocol_errors"] == 1
            assert "sentinel" not in topics, f"{case.label}: went on after invalid input"
            closed += 1
    assert kept >= 8 and closed >= 80
    line = f"mqtt corpus v3.1/v3.1.1 after CONNACK: {len(V311)} cases ({kept} kept open, {closed} closed on protocol)"
    print(line)
    layer_summary(line)


async def test_v311_payloads_in_place_of_connack(scripted: ScriptedBroker, layer_summary: Any) -> None:
    """Only a valid CONNACK opens the session: every other first packet is NotOurBrokerError."""
    _require_corpus()
    opened = refused = 0
    payloads = sorted({b"".join(c.sends) for c in V311})
    for payload in payloads:
        script = Script(None, [payload], trailer=b"", eof_after=True)
        scripted.script = script
        client = MqttClient("corpus", keepalive_s=0, clean_session=True, connect_timeout_ms=5000)
        expected = VALID_CONNACKS.get(payload.hex())
        if expected is None:
            with pytest.raises(NotOurBrokerError):
                await client.connect(LOCAL, scripted.port)
            assert client.closed is not None
            refused += 1
        else:
            assert await client.connect(LOCAL, scripted.port) is expected
            opened += 1
        await asyncio.wait_for(client.close(), CASE_TIMEOUT_S)
        await asyncio.wait_for(script.done.wait(), CASE_TIMEOUT_S)
    assert opened == 2
    line = (
        f"mqtt corpus as first packet: {len(payloads)} distinct payloads ({opened} valid CONNACKs, {refused} refused)"
    )
    print(line)
    layer_summary(line)


async def test_v5_cases_never_crash_or_hang(scripted: ScriptedBroker, layer_summary: Any) -> None:
    """MQTT 5 packets mean little to a 3.1.1 client: it may accept or close, never crash or hang."""
    _require_corpus()
    verdicts: dict[str, int] = {}
    for case in V5:
        outcome = await run_after_connack(scripted, case, eof_after=True)
        delivered = any(topic == "sentinel" for topic, _ in outcome.messages)
        verdict = "delivered" if delivered else str(outcome.closed)
        assert verdict in ("delivered", "protocol", "eof"), f"{case.label}: {verdict} {outcome.stats}"
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    line = f"mqtt corpus v5 (must not crash): {len(V5)} cases {dict(sorted(verdicts.items()))}"
    print(line)
    layer_summary(line)
