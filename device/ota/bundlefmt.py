"""The OTA bundle file: a signed manifest followed by the payload.

    b"BPOTA1\\n" | 4-byte big-endian M | manifest JSON (M bytes) | 64-byte signature | payload

The signature is ECDSA P-256 over sha256(manifest bytes); the payload is the
files' bytes concatenated in manifest order (``manifest.entries`` gives each
file's offset). ``read_head`` reads only the head, so a device never holds the
payload in memory: the stager reads each file from ``payload_offset`` on.
``check_payload`` hashes every file in place (chunk by chunk) before anything
is staged. ``tools/bundle.py`` writes this format.
"""

import binascii
import hashlib

from device.ota.manifest import BundleError, entries

MAGIC = b"BPOTA1\n"
SIG_BYTES = 64
# A manifest lists ~100 bytes per file: 64 KiB is hundreds of files and still
# bounds what a hostile length field can make a 128 KiB board allocate.
MAX_MANIFEST_BYTES = 65536


def _read_exact(f, n, what):
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise BundleError("truncated", "bundle ends inside the " + what)
        data += chunk
    return data


def read_head(f) -> tuple:
    """``(manifest_bytes, sig, payload_offset)`` of the bundle in binary file ``f``; BundleError otherwise."""
    f.seek(0)
    magic = f.read(len(MAGIC)) or b""
    if len(magic) < len(MAGIC) and MAGIC.startswith(magic):
        raise BundleError("truncated", "bundle ends inside the magic")
    if magic != MAGIC:
        raise BundleError("bad_format", "not a Brickproof OTA bundle (bad magic)")
    length = int.from_bytes(_read_exact(f, 4, "manifest length"), "big")
    if length == 0 or length > MAX_MANIFEST_BYTES:
        raise BundleError("bad_format", "manifest length " + str(length) + " out of range")
    manifest_bytes = _read_exact(f, length, "manifest")
    sig = _read_exact(f, SIG_BYTES, "signature")
    return manifest_bytes, sig, len(MAGIC) + 4 + length + SIG_BYTES


def encode_head(manifest_bytes: bytes, sig: bytes) -> bytes:
    """The bytes before the payload (the host writer and tests use this)."""
    if len(sig) != SIG_BYTES:
        raise ValueError("signature must be 64 bytes")
    return MAGIC + len(manifest_bytes).to_bytes(4, "big") + manifest_bytes + sig


def check_payload(f, manifest, payload_offset, chunk_bytes=4096):
    """Hash each file of the payload in ``f`` against the (already checked) manifest.

    BundleError "truncated" when the file ends early, "bad_hash" naming the
    first file whose bytes differ, "bad_format" when bytes follow the payload.
    Reads ``chunk_bytes`` at a time: a 128 KiB board never holds a whole file.
    """
    f.seek(payload_offset)
    for path, _offset, size, digest in entries(manifest):
        h = hashlib.sha256()
        left = size
        while left > 0:
            chunk = f.read(min(chunk_bytes, left))
            if not chunk:
                raise BundleError("truncated", "bundle ends inside " + path)
            h.update(chunk)
            left -= len(chunk)
        if binascii.hexlify(h.digest()).decode() != digest:
            raise BundleError("bad_hash", path + " does not match its sha256")
    if f.read(1):
        raise BundleError("bad_format", "bytes after the payload")
