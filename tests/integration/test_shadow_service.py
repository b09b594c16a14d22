"""The cloud's shadow service on a real mosquitto (and SQLite file).

A desired change reaches a real device (``rig.py``) and converges; a stale
reported document is ignored; the desired document survives a service restart
(and a broker that lost its retained messages); the delta is published while
the device differs and cleared once it agrees; the convergence rule's two
exceptions (``device_wins``, a newer local change). Every wait is bounded by
a generous timeout; nothing asserts how long something took.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto
from cloud_shim.service_client import ServiceClient
from cloud_shim.shadow_service import ShadowService, app_policies, delta_topic
from device.hlc import make_stamp
from device.link import topics
from tests.integration.rig import Rig, settle

LOCAL = "127.0.0.1"
PATIENCE_S = 60.0
SETPOINT = "thermostat.setpoint_c"


def wait(done: Callable[[], bool], what: str, timeout_s: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s * 100) + 1):
        if done():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert done(), "gave up waiting for " + what


class Watcher:
    """Collects (topic, decoded JSON or None) from the broker, for checking what the service published."""

    def __init__(self, port: int, filters: list[str], client_id: str) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.client = ServiceClient(LOCAL, port, client_id, [(f, 1) for f in filters], self._on)

    def _on(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, json.loads(payload) if payload else None))

    def on(self, topic: str) -> list[Any]:
        with self._lock:
            return [doc for t, doc in self.messages if t == topic]

    def __enter__(self) -> Watcher:
        self.client.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()


def reported_doc(state: dict[str, tuple[Any, int]], version: int) -> bytes:
    """A reported document as a device publishes it: key -> (value, stamp)."""
    body = {k: {"value": v, "version": 1, "stamp": s, "origin": "local"} for k, (v, s) in state.items()}
    return json.dumps({"version": version, "state": body}).encode()


@pytest.fixture
def publisher(private_broker: Mosquitto, unique_id: str) -> Iterator[ServiceClient]:
    client = ServiceClient(LOCAL, private_broker.port, "pub-" + unique_id, [], lambda t, p: None)
    client.start()
    yield client
    client.stop()


async def test_set_desired_reaches_a_real_device_and_converges(
    tmp_path: Path, broker: Mosquitto, unique_id: str
) -> None:
    rig = Rig(tmp_path, broker, unique_id)
    try:
        await rig.start()
        assert rig.clock is not None
        clock = rig.clock
        service = ShadowService(
            LOCAL,
            broker.port,
            tmp_path / "cloud.sqlite",
            wall_ms=clock.wall_ms,  # the device's simulated wall time: stamps compare
            client_id="shadow-" + unique_id,
            policies=app_policies(["thermostat"]),
        )
        with service, Watcher(broker.port, [delta_topic(unique_id)], "watch-" + unique_id) as watcher:
            await settle(rig)
            assert await rig.run_until(lambda: service.reported(unique_id) is not None, PATIENCE_S)
            version = service.set_desired(unique_id, {SETPOINT: 23.5})
            assert version == 1
            assert service.delta(unique_id) == {SETPOINT: 23.5}
            assert not service.converged(unique_id)
            assert await rig.run_until(lambda: service.converged(unique_id), PATIENCE_S)
            assert service.delta(unique_id) == {}
            assert rig.reported_value(SETPOINT) == 23.5
            assert rig.device is not None
            entry = (await rig.device.env.store.load_state())[SETPOINT]
            assert entry.value == 23.5 and entry.origin == "cloud"
            assert entry.stamp == service.desired(unique_id)["state"][SETPOINT]["stamp"]  # type: ignore[index]
            assert service.converged_wall_ms(unique_id) is not None
            assert service.converged_count([unique_id]) == 1
            # the delta was published while the device differed, then cleared
            wait(lambda: {} in [d["state"] for d in watcher.on(delta_topic(unique_id))], "the cleared delta")
            deltas = [d["state"] for d in watcher.on(delta_topic(unique_id))]
            assert {SETPOINT: 23.5} in deltas
            assert deltas.index({SETPOINT: 23.5}) < len(deltas) - 1 and deltas[-1] == {}
    finally:
        await rig.stop()
        rig.close()


def test_a_stale_reported_version_is_ignored(
    tmp_path: Path, private_broker: Mosquitto, unique_id: str, publisher: ServiceClient
) -> None:
    topic = topics.reported_topic(unique_id)
    with ShadowService(
        LOCAL, private_broker.port, tmp_path / "cloud.sqlite", client_id="shadow-" + unique_id
    ) as service:
        service.set_desired(unique_id, {"mode": "heat"})
        publisher.publish(topic, reported_doc({"mode": ("heat", 5)}, version=7))
        wait(lambda: service.stats()["reported_applied"] == 1, "the first reported document")
        assert service.converged(unique_id)
        publisher.publish(topic, reported_doc({"mode": ("off", 9)}, version=6))  # older version, newer stamp
        publisher.publish(topic, reported_doc({"mode": ("heat", 5)}, version=7))  # the same again
        wait(lambda: service.stats()["reported_received"] == 3, "three reported documents")
        stats = service.stats()
        assert stats["reported_stale"] == 1 and stats["reported_same"] == 1 and stats["reported_applied"] == 1
        assert service.reported(unique_id)["state"]["mode"]["value"] == "heat"  # type: ignore[index]
        assert service.converged(unique_id)
        # a newer version applies, and the delta follows it
        publisher.publish(topic, reported_doc({"mode": ("cool", 1)}, version=8))
        wait(lambda: service.stats()["reported_applied"] == 2, "the newer reported document")
        assert service.delta(unique_id) == {"mode": "heat"}
        assert not service.converged(unique_id)


def test_the_desired_document_survives_a_service_restart(
    tmp_path: Path, private_broker: Mosquitto, unique_id: str, publisher: ServiceClient
) -> None:
    db = tmp_path / "cloud.sqlite"
    frozen_wall = lambda: 1_700_000_000_000  # noqa: E731 - a wall clock that does not move
    desired = topics.desired_topic(unique_id)
    with ShadowService(LOCAL, private_broker.port, db, wall_ms=frozen_wall, client_id="shadow-" + unique_id) as first:
        assert first.set_desired(unique_id, {"a": 1}) == 1
        assert first.set_desired(unique_id, {"b": [1, 2]}) == 2
        before = first.desired(unique_id)
        assert first.flush(PATIENCE_S)
    assert before is not None
    # The broker forgets the retained document (as a restarted broker without persistence does).
    publisher.publish(desired, b"", retain=True)
    assert publisher.flush(PATIENCE_S)
    with ShadowService(LOCAL, private_broker.port, db, wall_ms=frozen_wall, client_id="shadow-" + unique_id) as second:
        assert second.desired(unique_id) == before
        assert second.flush(PATIENCE_S)  # re-published on connect
        with Watcher(private_broker.port, [desired], "watch-" + unique_id) as watcher:
            wait(lambda: len(watcher.on(desired)) >= 1, "the retained desired document")
            assert watcher.on(desired)[0] == before
        assert second.set_desired(unique_id, {"a": 3}) == 3
        after = second.desired(unique_id)
    assert after is not None
    assert after["state"]["b"] == before["state"]["b"]  # keys not named keep value and stamp
    assert after["state"]["a"]["value"] == 3
    # stamps keep increasing across the restart although the wall clock stood still
    assert after["state"]["a"]["stamp"] > max(e["stamp"] for e in before["state"].values())
    assert before["state"]["a"]["stamp"] >= make_stamp(frozen_wall())


def test_the_delta_is_published_and_cleared(
    tmp_path: Path, private_broker: Mosquitto, unique_id: str, publisher: ServiceClient
) -> None:
    reported = topics.reported_topic(unique_id)
    delta = delta_topic(unique_id)
    with (
        ShadowService(
            LOCAL, private_broker.port, tmp_path / "cloud.sqlite", client_id="shadow-" + unique_id
        ) as service,
        Watcher(private_broker.port, [delta], "watch-" + unique_id) as watcher,
    ):
        service.set_desired(unique_id, {"x": 1, "y": "on"})
        wait(lambda: len(watcher.on(delta)) >= 1, "a delta")
        assert watcher.on(delta)[-1] == {"version": 1, "state": {"x": 1, "y": "on"}}
        publisher.publish(reported, reported_doc({"x": (1, 1), "y": ("off", 1)}, version=2))
        wait(lambda: len(watcher.on(delta)) >= 2, "the narrower delta")
        assert watcher.on(delta)[-1]["state"] == {"y": "on"}
        publisher.publish(reported, reported_doc({"x": (1, 1), "y": ("on", 2)}, version=3))
        wait(lambda: len(watcher.on(delta)) >= 3, "the cleared delta")
        assert watcher.on(delta)[-1] == {"version": 1, "state": {}}
        assert service.delta(unique_id) == {} and service.converged(unique_id)
        # the same document again changes nothing: no new delta
        publisher.publish(reported, reported_doc({"x": (1, 1), "y": ("on", 2)}, version=3))
        wait(lambda: service.stats()["reported_same"] == 1, "the repeated document")
        assert service.flush(PATIENCE_S)
        assert len(watcher.on(delta)) == 3


def test_device_owned_and_superseded_keys_count_as_converged(
    tmp_path: Path, private_broker: Mosquitto, unique_id: str, publisher: ServiceClient
) -> None:
    wall = 1_700_000_000_000
    policies = {"limit.*": "device_wins"}
    with ShadowService(
        LOCAL,
        private_broker.port,
        tmp_path / "cloud.sqlite",
        wall_ms=lambda: wall,
        client_id="s-" + unique_id,
        policies=policies,
    ) as service:
        service.set_desired(unique_id, {"limit.max_c": 40, "setpoint": 21})
        cloud_stamp = service.desired(unique_id)["state"]["setpoint"]["stamp"]  # type: ignore[index]
        # the device keeps its own limit, and an older local setpoint: not converged
        doc = reported_doc({"limit.max_c": (30, 1), "setpoint": (18, cloud_stamp - 1)}, version=2)
        publisher.publish(topics.reported_topic(unique_id), doc)
        wait(lambda: service.stats()["reported_applied"] == 1, "the first reported document")
        assert service.delta(unique_id) == {"limit.max_c": 40, "setpoint": 21}
        assert not service.converged(unique_id)
        # the owner changed the setpoint after the cloud asked: the device's newer value stands
        doc = reported_doc({"limit.max_c": (30, 1), "setpoint": (19, cloud_stamp + 1)}, version=3)
        publisher.publish(topics.reported_topic(unique_id), doc)
        wait(lambda: service.stats()["reported_applied"] == 2, "the second reported document")
        assert service.delta(unique_id) == {"limit.max_c": 40, "setpoint": 21}  # the delta stays strict
        assert service.converged(unique_id)
        stats = service.stats()
        assert stats["device_owned_keys"] == 1 and stats["superseded_keys"] == 1 and stats["converged"] == 1


def test_bad_input_is_refused(tmp_path: Path) -> None:
    service = ShadowService(LOCAL, 1, tmp_path / "cloud.sqlite")  # never started
    with pytest.raises(ValueError):
        service.set_desired("a/b", {"x": 1})
    with pytest.raises(ValueError):
        service.set_desired("dev", {"_private": 1})
    with pytest.raises(ValueError):
        service.set_desired("dev", {})
    with pytest.raises(TypeError):
        service.set_desired("dev", {"x": object()})
    assert service.desired("dev") is None


def test_a_restarted_broker_gets_the_retained_documents_again(
    tmp_path: Path, private_broker: Mosquitto, unique_id: str
) -> None:
    desired = topics.desired_topic(unique_id)
    with ShadowService(LOCAL, private_broker.port, tmp_path / "cloud.sqlite", client_id="s-" + unique_id) as service:
        service.set_desired(unique_id, {"mode": "eco"})
        assert service.flush(PATIENCE_S)
        private_broker.kill()  # no persistence: the retained documents are gone with it
        private_broker.start()
        wait(lambda: service.stats()["connects"] >= 2 and service.stats()["republished"] >= 1, "the reconnect")
        assert service.flush(PATIENCE_S)
        with Watcher(private_broker.port, [desired, delta_topic(unique_id)], "watch-" + unique_id) as watcher:
            wait(lambda: len(watcher.on(desired)) >= 1 and len(watcher.on(delta_topic(unique_id))) >= 1, "both")
            assert watcher.on(desired)[0] == service.desired(unique_id)
            assert watcher.on(delta_topic(unique_id))[0]["state"] == {"mode": "eco"}
