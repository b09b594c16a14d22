"""``brickproof bundle``: build a signed OTA bundle of the device code.

    brickproof bundle --board B --version V --key PEM --out FILE [--target mpy|py] [--src DIR]

The bundle (format: ``device/ota/bundlefmt.py``) holds ``device/`` and ``hw/``
and nothing else: board.json, main.py and boot.py belong to the factory image
and OTA never replaces them.

- target ``mpy`` (default for a ``"runtime": "micropython"`` board): the files
  ``brickproof flash`` puts on a board (``tools.flash.source_files``: no
  hw/sim, hw/linux), compiled with mpy-cross (``tools.flash.compile_mpy``).
- target ``py`` (default otherwise): every ``.py`` under device/ and hw/,
  hw/sim included (host boards run the simulator), no ``__pycache__``.

``device/version.py`` is stamped with the bundle's version (its ``VERSION =``
line rewritten), so code running from a slot reports the version it was
installed as.

``--src DIR`` bundles the tree in DIR (it must hold ``device/``) instead of the
repo: tests use it for a bundle that crashes on boot. The manifest is signed
with ``--key`` (``tools/otakey.py``; ``brickproof provision`` makes one) and
names the key by its kid, so a device trusting another key refuses it.
Prints files, bytes, version and the sha256 of the bundle file (the ``bundle``
of an OTA offer). Exit 0 done, 2 a bad argument (named).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from device.errors import ConfigError
from device.ota import bundlefmt
from device.ota.ecdsa import ALG
from device.version import parse_version

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("device", "hw")
_MPY_CACHE = REPO / ".brickproof" / "flash" / "mpy"  # shared with ``brickproof flash``


def resolve_board(board: str) -> Path:
    """A board file: a path to a .json, or a name in the repo's boards/."""
    path = Path(board)
    if path.suffix == ".json" or path.exists():
        return path
    return REPO / "boards" / (board + ".json")


def _load_board(board: str) -> dict[str, Any]:
    from device.board import load_board

    path = resolve_board(board)
    if not path.is_file():
        raise ConfigError("board", f"no board file {path}")
    loaded: dict[str, Any] = load_board(str(path))
    return loaded


VERSION_FILE = "device/version.py"
_VERSION_LINE = re.compile(rb'^VERSION = "[^"\n]*"$', re.MULTILINE)


def stamp_version(source: bytes, version: str | None) -> bytes:
    """``device/version.py`` with its ``VERSION = "..."`` line set to ``version`` (unchanged when None)."""
    if version is None:
        return source
    return _VERSION_LINE.sub(b'VERSION = "' + version.encode() + b'"', source, count=1)


def py_files(root: Path, version: str | None = None) -> list[tuple[str, bytes]]:
    """(bundle path, bytes) of every .py under root's device/ and hw/, sorted, no __pycache__."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" not in rel.split("/"):
                data = path.read_bytes()
                out.append((rel, stamp_version(data, version) if rel == VERSION_FILE else data))
    return out


def mpy_files(root: Path, version: str | None = None) -> list[tuple[str, bytes]]:
    """(bundle path, mpy bytes) of the files ``brickproof flash`` compiles."""
    from tools.flash import compile_mpy, source_files
    from tools.mpboard import BoardError

    out = []
    with tempfile.TemporaryDirectory(prefix="bp-bundle-") as tmp:
        for path in source_files(root):
            rel = path.relative_to(root).as_posix()
            compiled_from = path
            if rel == VERSION_FILE and version is not None:
                compiled_from = Path(tmp) / path.name  # same name: mpy-cross records it as the source file
                compiled_from.write_bytes(stamp_version(path.read_bytes(), version))
            try:
                out.append((rel[: -len(".py")] + ".mpy", compile_mpy(compiled_from, _MPY_CACHE)))
            except BoardError as exc:
                raise ConfigError("src", str(exc)) from None
    return out


def manifest_bytes(
    files: list[tuple[str, bytes]], board_name: str, target: str, version: str, kid: str, alg: str = ALG
) -> bytes:
    """The canonical manifest JSON for ``files`` (payload order = list order)."""
    manifest = {
        "format": 1,
        "alg": alg,
        "kid": kid,
        "board": board_name,
        "target": target,
        "version": version,
        "files": [[path, len(data), hashlib.sha256(data).hexdigest()] for path, data in files],
        "payload_bytes": sum(len(data) for _, data in files),
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def build_bundle(
    board: str,
    version: str,
    key: str | Path,
    out: str | Path,
    target: str | None = None,
    src: str | Path | None = None,
) -> dict[str, Any]:
    """Write the bundle to ``out``; figures: path, board, target, version, files, bytes, sha256, kid.

    ConfigError (naming the argument) for a bad board, version, key, target or source tree.
    """
    from tools import otakey

    try:
        parse_version(version)
    except ValueError as exc:
        raise ConfigError("version", str(exc)) from None
    board_dict = _load_board(board)
    if target is None:
        target = "mpy" if board_dict.get("runtime") == "micropython" else "py"
    if target not in ("mpy", "py"):
        raise ConfigError("target", f"must be mpy or py, got {target!r}")
    root = Path(src) if src is not None else REPO
    if not (root / "device").is_dir():
        raise ConfigError("src", f"{root} has no device/ directory")
    try:
        signing_key = otakey.load_private(Path(key))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError("key", f"{key}: {exc}") from None
    kid = otakey.pub_dict(signing_key)["kid"]
    files = mpy_files(root, version) if target == "mpy" else py_files(root, version)
    head = manifest_bytes(files, board_dict["name"], target, version, kid)
    data = bundlefmt.encode_head(head, otakey.sign(signing_key, head)) + b"".join(d for _, d in files)
    out_path = Path(out)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(out_path)
    except OSError as exc:
        raise ConfigError("out", f"{exc.filename or out}: {exc.strerror}") from None
    return {
        "path": str(out_path),
        "board": board_dict["name"],
        "target": target,
        "version": version,
        "files": len(files),
        "payload_bytes": sum(len(d) for _, d in files),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "kid": kid,
    }


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bundle", help="build a signed OTA bundle of device/ and hw/")
    p.add_argument("--board", required=True, help="board profile: a .json path or a name in boards/")
    p.add_argument("--version", required=True, help="the bundle's version, N.N.N (must be newer than the device's)")
    p.add_argument("--key", required=True, metavar="PEM", help="OTA signing key (ota_signing.pem from provision)")
    p.add_argument("--out", required=True, metavar="FILE", help="bundle file to write")
    p.add_argument("--target", choices=("mpy", "py"), help="mpy (compiled) or py; default from the board's runtime")
    p.add_argument("--src", metavar="DIR", help="bundle device/ and hw/ from DIR instead of the repo")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    fig = build_bundle(args.board, args.version, args.key, args.out, args.target, args.src)
    sys.stdout.write(
        f"bundle {fig['path']}: board {fig['board']} target {fig['target']} version {fig['version']};"
        f" {fig['files']} files, {fig['bytes']} bytes; kid {fig['kid']}\n"
        f"sha256 {fig['sha256']}\n"
    )
    return 0
