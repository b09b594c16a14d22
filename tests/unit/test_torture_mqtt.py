"""The mqtt-* harnesses can fail: clients with a seeded bug miss their goals; the oracle is sound."""

from __future__ import annotations

import random
from typing import Any

import pytest

from cloud_shim.faults import scriptbroker as sb
from device.core import mqtt_codec as codec
from device.link.mqtt import MqttClient
from device.linkerrors import ProtocolError
from tools.torture import failed_goals, mqtt_conformance, mqtt_malformed
from tools.torture.mqtt_mutate import mutate, verdict


class DeliversDuplicates(MqttClient):
    """Forgets the incoming ids of a restored session: a DUP re-send is delivered again."""

    def _resume(self, session_present: Any) -> None:
        super()._resume(session_present)
        self._recent_in = []


class ResendsWithoutDup(MqttClient):
    """Re-sends unacknowledged QoS 1 after a reconnect without the DUP flag."""

    def _queue_publish(self, topic: Any, payload: Any, qos: Any, retain: Any, dup: Any, packet_id: Any) -> None:
        super()._queue_publish(topic, payload, qos, retain, False, packet_id)


class IgnoresSecondConnack(MqttClient):
    """Carries on after a CONNACK on an open connection (invalid input kept open)."""

    def _handle(self, packet: Any) -> None:
        if packet[0] != codec.CONNACK:
            super()._handle(packet)


class CrashesOnPuback(MqttClient):
    """A bug in the packet handler: an exception that is not a protocol error."""

    def _handle(self, packet: Any) -> None:
        if packet[0] == codec.PUBACK:
            raise KeyError(packet[1])
        super()._handle(packet)


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(mqtt_conformance.ROUNDS, "ci", 2)
    monkeypatch.setitem(mqtt_malformed.TCP_MUTATIONS, "ci", 60)
    monkeypatch.setitem(mqtt_malformed.DIRECT_MUTATIONS, "ci", 3000)
    corpus = sb.load_corpus()
    some = [c for c in corpus if c.kind == "CONNACK"][:60] + [c for c in corpus if c.kind == "PUBACK"][:60]
    monkeypatch.setattr(mqtt_malformed.sb, "load_corpus", lambda: some)


def _conformance(client: Any) -> dict:
    return mqtt_conformance.run("ci", 3, None, {"portable": client})


def test_conformance_passes_the_real_portable_client(small: None) -> None:
    result = _conformance(MqttClient)
    assert failed_goals(result) == []
    assert result["figures"]["portable.cases_passed"] == 2 * 8 + 1 + 5  # + the link refusal cases of round 0


def test_conformance_catches_a_duplicate_delivery(small: None) -> None:
    result = _conformance(DeliversDuplicates)
    assert result["figures"]["portable.failed_by_case"] == {"duplicate_in": 2}
    assert any("cases_failed" in miss for miss in failed_goals(result))


def test_conformance_catches_a_resend_without_dup(small: None) -> None:
    result = _conformance(ResendsWithoutDup)
    assert result["figures"]["portable.failed_by_case"] == {"resend_session": 2}
    assert failed_goals(result)


def test_malformed_catches_invalid_input_kept_open(small: None) -> None:
    result = mqtt_malformed.run("ci", 3, None, {"portable": IgnoresSecondConnack})
    figures = result["figures"]
    assert figures["portable.corpus.invalid_kept_open"] > 0
    assert "portable.corpus.invalid_kept_open: got" in " ".join(failed_goals(result))


def test_malformed_catches_a_crash_in_the_handler(small: None) -> None:
    result = mqtt_malformed.run("ci", 3, None, {"portable": CrashesOnPuback})
    figures = result["figures"]
    assert figures["portable.corpus.crashes"] > 0  # the read loop closed with "internal"
    assert figures["portable.direct.crashes"] > 0  # the KeyError itself
    assert any("crashes" in miss for miss in failed_goals(result))


def test_oracle_agrees_with_the_codec_on_mutations() -> None:
    """Two independent readings of the same bytes: the oracle and the decoder (+ the CONNACK rule)."""
    rng = random.Random(7)
    seen = set()
    for _ in range(5000):
        _, data = mutate(rng)
        decoder = codec.Decoder(8192)
        decoder.feed(data)
        try:
            packet = decoder.next()
            while packet is not None:
                if packet[0] == codec.CONNACK:
                    raise ProtocolError("CONNACK on an open connection")
                packet = decoder.next()
            got = "incomplete" if decoder.pending() else "valid"
        except ProtocolError:
            got = "invalid"
        assert got == verdict(data, 8192), data.hex()
        seen.add(got)
    assert seen == {"valid", "invalid", "incomplete"}


def test_oracle_on_known_bytes() -> None:
    assert verdict(sb.publish("a/b", b"x", 1, 7) + b"\xd0\x00") == "valid"
    assert verdict(sb.publish("a/+", b"x")) == "invalid"
    assert verdict(sb.publish("a", b"x", 1, 0)) == "invalid"
    assert verdict(b"\x40\x02\x00") == "incomplete"
    assert verdict(b"\x40\x03") == "invalid"
    assert verdict(sb.connack()) == "invalid"
    assert verdict(b"\x30\xff\xff\xff\xff\x01") == "invalid"
    assert verdict(b"\x30\x80\x80\x01", 8192) == "invalid"  # over the client's max_packet
