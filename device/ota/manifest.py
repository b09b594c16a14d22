"""The signed manifest of an OTA bundle: every check a bundle must pass before it is staged.

Manifest JSON (``json.dumps(sort_keys=True, separators=(",", ":"))`` on the host)::

    {"format": 1, "alg": "ecdsa-p256-sha256", "kid": "<16 hex>", "board": "<board name>",
     "target": "mpy"|"py", "version": "0.2.0",
     "files": [[path, size, sha256hex], ...], "payload_bytes": N}

``check`` runs the checks in a fixed order (JSON/format, alg, kid, signature,
board, target, version, paths, payload size) so a bundle always earns the same
reason code; every refusal is a ``BundleError`` carrying one of ``REASONS``.
The signature is checked before anything the manifest claims is believed:
the fields before it are only compared, never acted on.
"""

import hashlib
import json
import sys

from device.ota import ecdsa
from device.ota.steps import run
from device.version import parse_version

REASONS = (
    "truncated",
    "bad_format",
    "wrong_alg",
    "untrusted_key",
    "bad_signature",
    "wrong_board",
    "wrong_target",
    "same_version",
    "downgrade",
    "bad_path",
    "bad_hash",
    "too_big",
)
WRITE_REASONS = ("no_space", "io_error")  # the device failed writing the update (updater.file_error)

FORMAT = 1
TARGETS = ("mpy", "py")
_ROOTS = ("device", "hw")
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
_HEX = "0123456789abcdef"
_TEXT_FIELDS = ("alg", "kid", "board", "target", "version")


class BundleError(Exception):
    """A bundle refused: ``reason`` is one of ``REASONS``, ``detail`` says what exactly."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason
        self.detail = detail


def target_here():
    """The bundle target this interpreter runs: ``"mpy"`` on MicroPython, ``"py"`` elsewhere."""
    return "mpy" if sys.implementation.name == "micropython" else "py"


def check(manifest_bytes, sig, pub, board_name, target, running_version, max_bytes=None):
    """The manifest as a dict when it may be staged here; BundleError otherwise.

    ``pub`` is the ``ota_pub.json`` dict; ``running_version`` the version this
    device runs (``device.version.VERSION`` or the booted slot's).
    """
    return run(check_steps(manifest_bytes, sig, pub, board_name, target, running_version, max_bytes))


def check_steps(manifest_bytes, sig, pub, board_name, target, running_version, max_bytes=None):
    """``check`` as a step generator (``device.ota.steps``: the signature check yields)."""
    manifest = _parse(manifest_bytes)
    if manifest["alg"] != ecdsa.ALG:
        raise BundleError("wrong_alg", "bundle alg " + manifest["alg"] + ", device verifies " + ecdsa.ALG)
    try:
        kid, x, y = ecdsa.load_pub(pub)
    except ValueError as exc:
        raise BundleError("untrusted_key", "device public key unusable: " + str(exc)) from None
    if manifest["kid"] != kid:
        raise BundleError("untrusted_key", "signed by key " + manifest["kid"] + ", device trusts " + kid)
    verdict = yield from ecdsa.verify_steps(x, y, hashlib.sha256(manifest_bytes).digest(), sig)
    if not verdict:
        raise BundleError("bad_signature", "manifest signature does not verify")
    if manifest["board"] != board_name:
        raise BundleError("wrong_board", "bundle for board " + manifest["board"] + ", this is " + str(board_name))
    if manifest["target"] != target:
        raise BundleError("wrong_target", "bundle target " + manifest["target"] + ", this runs " + str(target))
    _check_version(manifest["version"], running_version)
    _check_paths(manifest["files"], manifest["target"])
    total = manifest["payload_bytes"]
    if max_bytes is not None and total > max_bytes:
        raise BundleError("too_big", "payload " + str(total) + " bytes over the limit of " + str(max_bytes))
    size_sum = 0
    for entry in manifest["files"]:
        size_sum += entry[1]
    if size_sum != total:
        raise BundleError("bad_format", "payload_bytes " + str(total) + " but files sum to " + str(size_sum))
    return manifest


def entries(manifest):
    """``[(path, offset_in_payload, size, sha256hex)]`` in payload order."""
    out = []
    offset = 0
    for path, size, digest in manifest["files"]:
        out.append((path, offset, size, digest))
        offset += size
    return out


def _parse(manifest_bytes):
    try:
        text = bytes(manifest_bytes).decode()
        manifest = json.loads(text)
    except Exception as exc:  # ValueError/UnicodeError/TypeError: the ports differ
        raise BundleError("bad_format", "manifest is not JSON: " + str(exc)) from None
    if not isinstance(manifest, dict):
        raise BundleError("bad_format", "manifest is not a JSON object")
    if manifest.get("format") != FORMAT or isinstance(manifest.get("format"), bool):
        raise BundleError("bad_format", "manifest format " + repr(manifest.get("format")) + ", expected 1")
    for name in _TEXT_FIELDS:
        if not isinstance(manifest.get(name), str):
            raise BundleError("bad_format", "manifest " + name + " missing or not text")
    try:
        parse_version(manifest["version"])
    except ValueError as exc:
        raise BundleError("bad_format", str(exc)) from None
    if not _is_count(manifest.get("payload_bytes")):
        raise BundleError("bad_format", "manifest payload_bytes missing or not a count")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise BundleError("bad_format", "manifest files missing or empty")
    for entry in files:
        if not isinstance(entry, list) or len(entry) != 3:
            raise BundleError("bad_format", "file entry is not [path, size, sha256]: " + repr(entry)[:80])
        path, size, digest = entry
        if not isinstance(path, str) or not _is_count(size) or not _is_hex64(digest):
            raise BundleError("bad_format", "file entry is not [path, size, sha256]: " + repr(entry)[:80])
    return manifest


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hex64(value):
    if not isinstance(value, str) or len(value) != 64:
        return False
    for ch in value:
        if ch not in _HEX:
            return False
    return True


def _check_version(version, running_version):
    new = parse_version(version)
    running = parse_version(running_version)  # the device's own version: a ValueError is a bug, not a refusal
    if new == running:
        raise BundleError("same_version", "bundle version " + version + " is the running version")
    if new < running:
        raise BundleError("downgrade", "bundle version " + version + " is older than running " + running_version)


def _check_paths(files, target):
    suffix = ".mpy" if target == "mpy" else ".py"
    seen = {}
    for entry in files:
        path = entry[0]
        why = _path_problem(path, suffix)
        if why is None and path in seen:
            why = "listed twice"
        if why is not None:
            raise BundleError("bad_path", repr(path)[:80] + " " + why)
        seen[path] = True


def _path_problem(path, suffix):
    parts = path.split("/")
    if parts[0] not in _ROOTS:
        return "is not under device/ or hw/"
    if len(parts) < 2:
        return "names no file"
    for part in parts:
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' part"
        for ch in part:
            if ch not in _NAME_CHARS:
                return "has a character outside [A-Za-z0-9_.-]"
    if not path.endswith(suffix):
        return "does not end with " + suffix
    return None
