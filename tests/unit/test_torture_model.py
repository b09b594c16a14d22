"""The ``model-based`` harness can fail: a seeded bug in a store or a client makes a machine fail,
and the report carries Hypothesis's shrunk example."""

from __future__ import annotations

from typing import Any

from device.link.mqtt import MqttClient
from tools.torture import failed_goals, model_based
from tools.torture.model_mqtt import MqttSession
from tools.torture.model_outbox import LogOutbox


def run_one(name: str, cls: Any, examples: int = 60, shrink: bool = False) -> dict[str, Any]:
    saved = dict(model_based.CI)
    model_based.CI[name] = examples
    try:
        return model_based.run("ci", 5, None, machines={name: cls}, shrink=shrink)
    finally:
        model_based.CI.clear()
        model_based.CI.update(saved)


def test_the_real_machines_pass_a_short_run() -> None:
    result = run_one("outbox-log", LogOutbox, 15)
    assert failed_goals(result) == [] and result["figures"]["outbox-log_examples"] >= 15
    result = run_one("mqtt-session", MqttSession, 15)
    assert failed_goals(result) == [] and result["figures"]["mqtt-session_examples"] >= 15


class UnsyncedLog(LogOutbox):
    fsync = False  # a store that never syncs: a power cut takes what it promised


def test_a_log_store_that_does_not_sync_fails_the_crash_rule() -> None:
    result = run_one("outbox-log", UnsyncedLog)
    assert "outbox-log_failures: got 1, goal == 0" in failed_goals(result)
    example = result["figures"]["shrunk_examples"]["outbox-log"]
    assert "crash" in example and "UnsyncedLog()" in example


class NoResend(MqttClient):
    def _resume(self, session_present: bool) -> None:  # forgets to re-send after a reconnect
        if not session_present:
            super()._resume(session_present)


class NoResendSession(MqttSession):
    client_cls = NoResend


class AcksTwice(MqttClient):
    def _handle(self, packet: Any) -> None:
        if packet[0] == 4 and packet[1] not in self._inflight:
            self._note_ack(packet[1])  # a duplicate PUBACK reported as a second ack
            return
        super()._handle(packet)


class AcksTwiceSession(MqttSession):
    client_cls = AcksTwice


def test_a_client_that_does_not_resend_after_reconnect_is_caught() -> None:
    result = run_one("mqtt-session", NoResendSession, shrink=True)
    assert result["figures"]["mqtt-session_failures"] == 1
    example = result["figures"]["shrunk_examples"]["mqtt-session"]
    assert "connect(session=True)" in example and "publish" in example


def test_a_client_that_reports_an_ack_twice_is_caught() -> None:
    result = run_one("mqtt-session", AcksTwiceSession)
    assert result["figures"]["mqtt-session_failures"] == 1
    assert "broker_acks" in result["figures"]["shrunk_examples"]["mqtt-session"]
