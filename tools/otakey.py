"""The OTA signing key (host only): made once by ``brickproof provision``, used by ``brickproof bundle``.

Files in the provisioning directory::

    ota_signing.pem   EC P-256 private key, PKCS#8 PEM, 0600. Stays on the build host.
    ota_pub.json      {"alg", "kid", "x", "y"}: what a device trusts (board ``ota.pubkey_file``)

An existing key is kept: replacing it would make every device in the field
refuse every later update (they trust only the key they were flashed with).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from device.ota.ecdsa import ALG, key_id

SIGNING_KEY = "ota_signing.pem"
PUBLIC_KEY = "ota_pub.json"

PrivateKey = ec.EllipticCurvePrivateKey


def make_or_load(out_dir: Path) -> Path:
    """The signing key's path in ``out_dir``, creating the key and ``ota_pub.json`` when missing."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pem = out_dir / SIGNING_KEY
    pub = out_dir / PUBLIC_KEY
    if pem.exists():
        key = load_private(pem)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(pem, data)
    if not pub.exists():
        pub.write_text(json.dumps(pub_dict(key), sort_keys=True, indent=1) + "\n")
    return pem


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600 from the start: never a moment where the key is world-readable.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_private(path: Path) -> PrivateKey:
    """The P-256 signing key in PEM file ``path``; ValueError when it is not one."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not an EC P-256 private key")
    return key


def sign(key: PrivateKey, data: bytes) -> bytes:
    """64 bytes r||s (big-endian): ECDSA P-256 over sha256(data)."""
    der = key.sign(hashlib.sha256(data).digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def pub_dict(key: PrivateKey) -> dict[str, Any]:
    """The ``ota_pub.json`` content for ``key``."""
    numbers = key.public_key().public_numbers()
    return {"alg": ALG, "kid": key_id(numbers.x, numbers.y), "x": f"{numbers.x:064x}", "y": f"{numbers.y:064x}"}
