"""tools/otakey.py: the OTA signing key is made once, kept private, and signs what the device verifies."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from device.ota import ecdsa
from tools import otakey


def test_make_or_load_writes_a_private_key_and_the_public_json(tmp_path: Path) -> None:
    pem = otakey.make_or_load(tmp_path / "keys")
    assert pem == tmp_path / "keys" / "ota_signing.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    pub = json.loads((tmp_path / "keys" / "ota_pub.json").read_text())
    assert set(pub) == {"alg", "kid", "x", "y"}
    assert pub["alg"] == ecdsa.ALG
    key = otakey.load_private(pem)
    numbers = key.public_key().public_numbers()
    raw = numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
    assert pub["kid"] == hashlib.sha256(raw).hexdigest()[:16]
    assert pub["x"] == f"{numbers.x:064x}" and len(pub["y"]) == 64
    assert ecdsa.load_pub(pub) == (pub["kid"], numbers.x, numbers.y)
    assert not list((tmp_path / "keys").glob("*.tmp"))


def test_an_existing_key_is_kept(tmp_path: Path) -> None:
    pem = otakey.make_or_load(tmp_path)
    first_key, first_pub = pem.read_bytes(), (tmp_path / "ota_pub.json").read_bytes()
    assert otakey.make_or_load(tmp_path) == pem
    assert pem.read_bytes() == first_key
    assert (tmp_path / "ota_pub.json").read_bytes() == first_pub
    (tmp_path / "ota_pub.json").unlink()  # a lost public half is rebuilt from the kept key
    otakey.make_or_load(tmp_path)
    assert json.loads((tmp_path / "ota_pub.json").read_text()) == json.loads(first_pub)


def test_sign_makes_64_raw_bytes_that_both_verifiers_accept(tmp_path: Path) -> None:
    key = otakey.load_private(otakey.make_or_load(tmp_path))
    data = b"manifest bytes"
    sig = otakey.sign(key, data)
    assert len(sig) == 64
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    key.public_key().verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    _, x, y = ecdsa.load_pub(otakey.pub_dict(key))
    assert ecdsa.verify(x, y, hashlib.sha256(data).digest(), sig)


def test_load_private_refuses_other_keys(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for name, key in (("p384.pem", p384), ("rsa.pem", rsa_key)):
        path = tmp_path / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        with pytest.raises(ValueError):
            otakey.load_private(path)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValueError):
        otakey.load_private(tmp_path / "junk.pem")


def test_provision_makes_the_ota_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.cli import main

    assert main(["provision", "--device-id", "th-01", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "OTA signing key" in out and "ota_pub.json" in out
    pem = tmp_path / "ota_signing.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    first = pem.read_bytes()
    assert main(["provision", "--device-id", "th-02", "--out", str(tmp_path)]) == 0
    assert pem.read_bytes() == first
