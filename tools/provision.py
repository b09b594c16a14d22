"""``brickproof provision``: a CA, a broker certificate and device certificates for mutual TLS.

    brickproof provision --device-id th-01 --out certs/
    brickproof provision --device-id th-01 --device-id th-02 --out certs/ --broker-host mqtt.example.com

Writes into ``--out``::

    ca.pem  ca.der                CA certificate (devices and the broker trust it)
    ca.key                        CA key (only when the CA lives in --out; see --ca-dir)
    broker.pem  broker.key        broker certificate (SAN: --broker-host names, localhost, 127.0.0.1)
    <id>.pem  <id>.key            device certificate (CN = device id, clientAuth) and key, PEM
    <id>.der  <id>.key.der        the same in DER, for MicroPython's ssl (mbedtls)
    <id>.lankey                   the device's LAN token key: 32 random bytes, hex, 0600; kept when
                                  it exists (replacing it would void every token issued for it)
    ota_signing.pem  ota_pub.json  the OTA bundle signing key (0600) and the public key devices trust;
                                  made once, kept when it exists (tools/otakey.py)

An existing CA (``ca.pem`` + ``ca.key`` in ``--ca-dir``, default ``--out``) is
reused, so devices provisioned later still chain to the broker's CA. Keys are
EC P-256 (MicroPython's mbedtls loads them, PEM or DER) and written 0600;
mosquitto needs world-readable copies (``cloud_shim.broker`` makes them).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from device.errors import ConfigError
from tools.argtypes import positive_int

DEFAULT_DAYS = 825
CA_MIN_DAYS = 3650
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
# A device id becomes a file name and an MQTT client id: keep it to a safe alphabet.
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_BACKDATE = datetime.timedelta(hours=1)  # tolerate a peer whose clock is a little behind

EcKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class DeviceFiles:
    device_id: str
    cert: Path  # PEM
    key: Path  # PEM (PKCS#8)
    cert_der: Path
    key_der: Path
    lankey: Path | None = None  # LAN token root key (device/lan/token.py); never printed

    def tls(self, ca: Path) -> dict[str, str]:
        """The ``tls`` option of an MQTT client (``device/link/client.py``)."""
        return {"ca": str(ca), "cert": str(self.cert), "key": str(self.key)}


@dataclass(frozen=True)
class Bundle:
    out_dir: Path
    ca: Path  # PEM
    ca_der: Path
    ca_key: Path
    ca_reused: bool
    broker_cert: Path
    broker_key: Path
    broker_hosts: tuple[str, ...]
    devices: dict[str, DeviceFiles] = field(default_factory=dict)
    ota_key: Path | None = None  # OTA signing key (tools/otakey.py); ota_pub.json beside it

    def device(self, device_id: str) -> DeviceFiles:
        return self.devices[device_id]

    def client_tls(self, device_id: str) -> dict[str, str]:
        return self.devices[device_id].tls(self.ca)


def provision(
    out_dir: str | Path,
    device_ids: list[str] | tuple[str, ...],
    broker_hosts: list[str] | tuple[str, ...] = (),
    ca_dir: str | Path | None = None,
    days: int = DEFAULT_DAYS,
    loopback: bool = True,
    ca_name: str = "Brickproof CA",
) -> Bundle:
    """Make (or reuse) the CA in ``ca_dir`` (default ``out_dir``), then broker and device certificates.

    Raises ``ConfigError`` for a bad device id, host name or day count.
    """
    ids = _check_ids(device_ids)
    hosts = _check_hosts(list(broker_hosts) + (list(LOOPBACK_HOSTS) if loopback else []))
    if days < 1:
        raise ConfigError("days", f"must be >= 1, got {days}")
    out = Path(out_dir)
    ca_home = Path(ca_dir) if ca_dir is not None else out
    out.mkdir(parents=True, exist_ok=True)
    ca_home.mkdir(parents=True, exist_ok=True)

    ca_cert, ca_key, reused = _load_or_make_ca(ca_home, ca_name, max(days, CA_MIN_DAYS))
    ca_pem = out / "ca.pem"
    if not (reused and ca_home.resolve() == out.resolve()):
        _write(ca_pem, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(out / "ca.der", ca_cert.public_bytes(serialization.Encoding.DER), 0o644)

    broker_key = _new_key()
    broker_cert = _issue(ca_cert, ca_key, broker_key, hosts[0], days, server=True, hosts=hosts)
    _write_pair(out / "broker.pem", out / "broker.key", broker_cert, broker_key, serialization.Encoding.PEM)

    devices = {}
    for device_id in ids:
        key = _new_key()
        cert = _issue(ca_cert, ca_key, key, device_id, days, server=False, hosts=())
        files = DeviceFiles(
            device_id,
            cert=out / (device_id + ".pem"),
            key=out / (device_id + ".key"),
            cert_der=out / (device_id + ".der"),
            key_der=out / (device_id + ".key.der"),
            lankey=_lankey(out, device_id),
        )
        _write_pair(files.cert, files.key, cert, key, serialization.Encoding.PEM)
        _write_pair(files.cert_der, files.key_der, cert, key, serialization.Encoding.DER)
        devices[device_id] = files
    from tools.otakey import make_or_load

    ota_key = make_or_load(out)
    return Bundle(
        out_dir=out,
        ca=ca_pem,
        ca_der=out / "ca.der",
        ca_key=ca_home / "ca.key",
        ca_reused=reused,
        broker_cert=out / "broker.pem",
        broker_key=out / "broker.key",
        broker_hosts=tuple(hosts),
        devices=devices,
        ota_key=ota_key,
    )


# -- checks ------------------------------------------------------------------


def _check_ids(device_ids: list[str] | tuple[str, ...]) -> list[str]:
    if not device_ids:
        raise ConfigError("device-id", "at least one device id is needed")
    seen: list[str] = []
    for device_id in device_ids:
        if not _DEVICE_ID.match(device_id):
            raise ConfigError(
                "device-id",
                f"{device_id!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        if device_id in ("ca", "broker"):
            raise ConfigError("device-id", f"{device_id!r} would overwrite the {device_id} files")
        if device_id not in seen:
            seen.append(device_id)
    return seen


def _check_hosts(hosts: list[str]) -> list[str]:
    out: list[str] = []
    for host in hosts:
        if not _is_ip(host) and not _is_dns_name(host):
            raise ConfigError("broker-host", f"{host!r} is neither an IP address nor a DNS name")
        if host not in out:
            out.append(host)
    if not out:
        raise ConfigError("broker-host", "the broker certificate needs at least one host name")
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_dns_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    if labels[0] == "*":  # a wildcard is allowed as the leftmost label only
        labels = labels[1:]
    return 0 < len(text) <= 253 and bool(labels) and all(_HOST_LABEL.match(label) for label in labels)


# -- LAN token key ---------------------------------------------------------------


def _lankey(out: Path, device_id: str) -> Path:
    """Write ``<id>.lankey`` (32 random bytes as hex, 0600) unless a usable one is there."""
    path = out / (device_id + ".lankey")
    try:
        text = path.read_text().strip()
        if len(text) == 64 and bytes.fromhex(text):
            os.chmod(path, 0o600)
            return path
    except (OSError, ValueError):
        pass
    _write(path, (os.urandom(32).hex() + "\n").encode(), 0o600)
    return path


# -- certificates --------------------------------------------------------------


def _new_key() -> EcKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load_or_make_ca(home: Path, name: str, days: int) -> tuple[x509.Certificate, EcKey, bool]:
    cert_path, key_path = home / "ca.pem", home / "ca.key"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigError("ca-dir", f"{home}: cannot read ca.pem/ca.key: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise ConfigError("ca-dir", f"{home}: ca.key does not belong to ca.pem (or is not an EC key)")
        return cert, key, True
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _now() - _BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pair(cert_path, key_path, cert, key, serialization.Encoding.PEM)
    return cert, key, False


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    ca_cert: x509.Certificate,
    ca_key: EcKey,
    key: EcKey,
    common_name: str,
    days: int,
    server: bool,
    hosts: list[str] | tuple[str, ...],
) -> x509.Certificate:
    start = _now() - _BACKDATE
    end = min(start + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    if hosts:
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(h)) if _is_ip(h) else x509.DNSName(h) for h in hosts
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _write_pair(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: EcKey, encoding: serialization.Encoding
) -> None:
    _write(cert_path, cert.public_bytes(encoding), 0o644)
    key_bytes = key.private_bytes(encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write(key_path, key_bytes, 0o600)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file + rename, so a key is never readable with a looser mode, even briefly."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask; the key must be exactly 0600
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# -- command line ----------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser("provision", help="make a CA, a broker certificate and device certificates for mutual TLS")
    p.add_argument("--device-id", action="append", required=True, metavar="ID", help="device id (repeat for more)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the certificates and keys")
    p.add_argument(
        "--ca-dir", metavar="DIR", help="where the CA lives (reused if ca.pem and ca.key exist); default --out"
    )
    p.add_argument(
        "--broker-host",
        action="append",
        default=[],
        metavar="NAME",
        help="DNS name or IP the broker is reached by (repeat); localhost and 127.0.0.1 are always added",
    )
    p.add_argument("--days", type=positive_int, default=DEFAULT_DAYS, metavar="N", help="certificate validity")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    try:
        bundle = provision(args.out, args.device_id, args.broker_host, ca_dir=args.ca_dir, days=args.days)
    except OSError as exc:
        raise ConfigError("out", f"{exc.filename or args.out}: {exc.strerror}") from None
    out = sys.stdout
    out.write(("reused CA " if bundle.ca_reused else "new CA ") + str(bundle.ca) + "\n")
    out.write(f"broker {bundle.broker_cert} (SAN: {', '.join(bundle.broker_hosts)})\n")
    for files in bundle.devices.values():
        out.write(f"device {files.device_id}: {files.cert} {files.key} {files.cert_der} {files.key_der}\n")
        if files.lankey is not None:
            out.write(f"device {files.device_id}: LAN token key {files.lankey}\n")
    if bundle.ota_key is not None:
        out.write(f"OTA signing key {bundle.ota_key} (public: {bundle.ota_key.with_name('ota_pub.json')})\n")
    return 0
