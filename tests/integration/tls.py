"""Certificates for the mutual-TLS tests: our PKI and a rogue one the devices do not trust.

``make_pki(dir)`` provisions, with ``tools.provision``, a CA, a broker
certificate (SAN: ``BROKER_HOST``, ``localhost``, ``127.0.0.1``) and the
devices ``DEVICE_A`` and ``DEVICE_B``; then, under ``dir/rogue``, a second CA
with the same name and its own broker and device certificates. A device
dialling a broker that presents the rogue certificate must fail TLS
verification; a broker requiring certificates must reject a rogue device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cloud_shim.broker import BrokerTls
from tools.provision import Bundle, provision

# A made-up name, only in the broker certificate's SAN: tests dial 127.0.0.1 and verify this.
BROKER_HOST = "broker.brickproof.test"
DEVICE_A = "dev-a"
DEVICE_B = "dev-b"


@dataclass(frozen=True)
class Pki:
    ours: Bundle
    rogue: Bundle  # same CA name, other keys: nothing from it chains to ``ours.ca``

    def client_tls(self, device_id: str = DEVICE_A) -> dict[str, str]:
        """The ``tls`` option of an MQTT client for a device of ours."""
        return self.ours.client_tls(device_id)

    def rogue_client_tls(self, device_id: str = DEVICE_A) -> dict[str, str]:
        """A device certificate the broker does not trust, with our CA so the broker itself verifies."""
        tls = self.rogue.client_tls(device_id)
        tls["ca"] = str(self.ours.ca)
        return tls

    def broker_tls(self, require_certificate: bool = True) -> BrokerTls:
        return broker_tls(self.ours, require_certificate)

    def rogue_broker_tls(self) -> BrokerTls:
        """A broker with a certificate from the rogue CA, trusting our devices' certificates."""
        return BrokerTls(self.ours.ca, self.rogue.broker_cert, self.rogue.broker_key, require_certificate=True)


def broker_tls(bundle: Bundle, require_certificate: bool = True) -> BrokerTls:
    return BrokerTls(bundle.ca, bundle.broker_cert, bundle.broker_key, require_certificate)


def make_pki(directory: Path) -> Pki:
    ours = provision(directory / "ours", [DEVICE_A, DEVICE_B], [BROKER_HOST])
    rogue = provision(directory / "rogue", [DEVICE_A], [BROKER_HOST])
    return Pki(ours=ours, rogue=rogue)
