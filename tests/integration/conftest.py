"""Integration layer: a real mosquitto started by the test session on a free loopback port.

Each test gets its own topic prefix / client ids through ``unique_id`` so tests
sharing the session broker never see each other's messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from cloud_shim.broker import Mosquitto

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def broker() -> Iterator[Mosquitto]:
    """A plain-TCP mosquitto for the whole session (``broker.port``)."""
    with Mosquitto() as b:
        yield b


@pytest.fixture
def private_broker() -> Iterator[Mosquitto]:
    """A broker of this test's own, free to be killed and restarted."""
    with Mosquitto() as b:
        yield b


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """A device/client id unique in the session, readable in broker logs."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:40]
    return f"t{next(_counter)}-{name}"


# -- mutual TLS (tests/integration/tls.py) ----------------------------------------

from tests.integration.tls import Pki, make_pki  # noqa: E402  (appended section)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Our CA, a broker certificate, devices ``dev-a``/``dev-b``, and a rogue CA with its own certificates."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_broker(pki: Pki) -> Iterator[Mosquitto]:
    """mosquitto requiring client certificates from our CA on ``tls_port`` (plain on ``port``)."""
    with Mosquitto(tls=pki.broker_tls(require_certificate=True)) as b:
        yield b


@pytest.fixture(scope="session")
def rogue_tls_broker(pki: Pki) -> Iterator[Mosquitto]:
    """mosquitto on ``tls_port`` presenting a certificate from the rogue CA (same names, other keys)."""
    with Mosquitto(tls=pki.rogue_broker_tls()) as b:
        yield b


@pytest.fixture(scope="session")
def ota_keys(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An OTA signing key and its public key (``tools.otakey``), for the OTA integration tests."""
    from tests.integration.ota_rig import Keys

    return Keys(tmp_path_factory.mktemp("ota-keys"))


@pytest.fixture(scope="session")
def ota_bundles(tmp_path_factory: pytest.TempPathFactory, ota_keys: Any) -> dict[str, dict[str, Any]]:
    """The signed bundles the OTA integration tests offer (``ota_rig.make_bundles``), made once."""
    from tests.integration.ota_rig import make_bundles

    return make_bundles(tmp_path_factory.mktemp("ota-bundles"), ota_keys)
