"""ROMFS for ``brickproof flash --romfs``: the image (mpremote's writer) and its deploy through ``vfs.rom_ioctl``.

On firmware built with ``MICROPY_VFS_ROM`` a flash partition holds a
read-only filesystem image that the firmware mounts at ``/rom`` at start
and puts on ``sys.path`` (``/rom``, ``/rom/lib``) right after ``''`` and
``.frozen``. ``.mpy`` files there run in place: their bytecode and constant
strings are not copied into the heap, as they are from the board's
read-write filesystem.

The image is built with ``mpremote.romfs.VfsRomWriter`` (the format
``mpremote romfs build`` writes) from the same compiled files a normal flash
copies, names sorted, so the same tree gives the same bytes. The deploy
speaks the protocol ``mpremote romfs deploy`` does for a partition that
``rom_ioctl(2, 0)`` returns as a memoryview (ESP32, RP2, STM32): erase the
range (3), write in chunks (4), complete (5). The check reads the image
back on the board: sha256 of the partition's first ``size`` bytes.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Any

from tools.mpboard import EXIT_BOARD, Board, BoardError

ROM_PACKAGES = ("device", "hw")  # image paths under these go to ROMFS; the rest stay on the filesystem
HEADER = b"\xd2\xcd\x31"
CHUNK = 4096  # image bytes per write exec (as the file copy: ~5.5 KB of base64 source)
PREPARE_MAX = 32768  # bytes erased per call: a long erase would outlast the REPL's patience
NO_ROMFS = "this firmware has no ROMFS partition (MICROPY_VFS_ROM); flash without --romfs or use a ROMFS build"
# vfs.rom_ioctl operations
IOCTL_COUNT, IOCTL_SEGMENT, IOCTL_PREPARE, IOCTL_WRITE, IOCTL_COMPLETE, IOCTL_BLOCK = 1, 2, 3, 4, 5, 6


def is_rom_path(path: str) -> bool:
    return any(path.startswith(package + "/") for package in ROM_PACKAGES)


def split_image(image: dict[str, bytes]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """``(root filesystem files, ROMFS files)`` of a flash image."""
    root = {p: d for p, d in image.items() if not is_rom_path(p)}
    rom = {p: d for p, d in image.items() if is_rom_path(p)}
    return root, rom


def build_romfs(files: dict[str, bytes]) -> bytes:
    """The ROMFS image of ``files`` (path -> bytes), directories and names in sorted order."""
    from mpremote.romfs import VfsRomWriter  # type: ignore[import-untyped]

    tree: dict[str, Any] = {}
    for path, data in files.items():
        node = tree
        *dirs, name = path.split("/")
        for part in dirs:
            node = node.setdefault(part, {})
        node[name] = data
    writer = VfsRomWriter()

    def emit(node: dict[str, Any]) -> None:
        for name in sorted(node):
            if isinstance(node[name], dict):
                writer.opendir(name)
                emit(node[name])
                writer.closedir()
            else:
                writer.mkfile(name, node[name])

    emit(tree)
    return bytes(writer.finalise())


def prepare_ranges(size: int, block: int, part_size: int) -> list[tuple[int, int]]:
    """``(offset, length)`` erases covering ``size`` bytes in whole blocks, at most ``PREPARE_MAX`` each.

    A ``block`` of 0 or less (the port does not say), or the whole partition, is
    one erase of ``size`` bytes from 0 (``rom_ioctl(3, 0, size)``): offset -1.
    """
    if block <= 0 or block >= part_size:
        return [(-1, size)]
    per = max(block, PREPARE_MAX // block * block)
    ranges = []
    offset = 0
    while offset < size:
        length = min(per, (size - offset + block - 1) // block * block)
        ranges.append((offset, length))
        offset += length
    return ranges


def write_chunks(image: bytes, chunk: int, part_size: int) -> list[tuple[int, bytes]]:
    """``(offset, bytes)`` writes of ``image``: whole chunks (zero-padded at the end, within the partition)."""
    out = []
    for offset in range(0, len(image), chunk):
        piece = image[offset : offset + chunk]
        pad = min(chunk, part_size - offset) - len(piece)
        out.append((offset, piece + bytes(max(0, pad))))
    return out


def check_fits(size: int, part_size: int) -> None:
    if size > part_size:
        raise BoardError(
            EXIT_BOARD,
            f"the ROMFS image is {size} bytes, larger than the board's ROMFS partition ({part_size} bytes)",
        )


# -- on the board ---------------------------------------------------------------------------

_QUERY = """
import vfs
_r = getattr(vfs, 'rom_ioctl', None)
if _r is None:
    print('ROM none')
else:
    _d = _r(%d, 0) if _r(%d) > 0 else -1
    if isinstance(_d, int):
        print('ROM nopart', _d)
    elif hasattr(_d, 'ioctl'):
        print('ROM blockdev')
    else:
        print('ROM ok', len(_d), _r(%d, 0), bytes(memoryview(_d)[:3]) == %r)
    del _d
del _r
""" % (IOCTL_SEGMENT, IOCTL_COUNT, IOCTL_BLOCK, HEADER)

_HASH = """
import vfs, hashlib, binascii
_h = hashlib.sha256()
_h.update(memoryview(vfs.rom_ioctl(%d, 0))[:%%d])
print('ROMHASH', binascii.hexlify(_h.digest()).decode())
del _h
""" % (IOCTL_SEGMENT,)


def query(board: Board) -> dict[str, Any] | None:
    """The partition: ``{"size", "block", "holds_image"}``; None when the firmware has no ROMFS partition."""
    words = board.run(_QUERY).split()
    if words[:2] == ["ROM", "blockdev"]:
        raise BoardError(EXIT_BOARD, "this firmware's ROMFS partition is a block device; deploy with mpremote romfs")
    if words[:2] != ["ROM", "ok"] or len(words) != 5:
        return None
    return {"size": int(words[2]), "block": int(words[3]), "holds_image": words[4] == "True"}


def require(board: Board) -> dict[str, Any]:
    part = query(board)
    if part is None:
        raise BoardError(EXIT_BOARD, NO_ROMFS)
    return part


def board_hash(board: Board, size: int) -> str:
    """sha256 of the partition's first ``size`` bytes, read on the board."""
    out = board.run(_HASH % size, timeout_s=60)
    for line in out.splitlines():
        if line.startswith("ROMHASH "):
            return line.split()[1]
    raise BoardError(EXIT_BOARD, f"the board did not hash its ROMFS partition: {out.strip()!r}")


def _ioctl(board: Board, call: str) -> int:
    out = board.run("import vfs\nprint(vfs.rom_ioctl(%s))" % call).strip()
    try:
        value = int(out.split()[-1])
    except (ValueError, IndexError):
        value = 0  # a port that answers None for success
    if value < 0:
        raise BoardError(EXIT_BOARD, f"ROMFS partition refused rom_ioctl({call}): error {value}")
    return value


def deploy(board: Board, image: bytes, part: dict[str, Any]) -> None:
    """Erase, write and complete the partition with ``image`` (the caller checks it fits and verifies)."""
    board.run("import vfs\ntry:\n    vfs.umount('/rom')\nexcept OSError:\n    pass")
    min_write = 0
    for offset, length in prepare_ranges(len(image), part["block"], part["size"]):
        where = f"0,{length}" if offset < 0 else f"0,{offset},{length}"
        min_write = _ioctl(board, f"{IOCTL_PREPARE},{where}")
    board.run("import vfs\nfrom binascii import a2b_base64")
    for offset, data in write_chunks(image, max(CHUNK, min_write), part["size"]):
        b64 = binascii.b2a_base64(data, newline=False).decode()
        _ioctl(board, f"{IOCTL_WRITE},0,{offset},a2b_base64({b64!r})")
    _ioctl(board, f"{IOCTL_COMPLETE},0")


def erase(board: Board, part: dict[str, Any]) -> None:
    """Invalidate the partition's image (its first block erased): the firmware mounts nothing at ``/rom``."""
    board.run("import vfs\ntry:\n    vfs.umount('/rom')\nexcept OSError:\n    pass")
    length = part["block"] if 0 < part["block"] < part["size"] else part["size"]
    for offset, n in prepare_ranges(min(length, part["size"]), part["block"], part["size"]):
        _ioctl(board, f"{IOCTL_PREPARE},0,{n}" if offset < 0 else f"{IOCTL_PREPARE},0,{offset},{n}")
    _ioctl(board, f"{IOCTL_COMPLETE},0")


_REMOVE_TREES = """
import os
def _rm(p):
    try:
        st = os.stat(p)
    except OSError:
        return
    if st[0] & 0x4000:
        for e in os.ilistdir(p):
            _rm(p + '/' + e[0])
        os.rmdir(p)
    else:
        os.remove(p)
        print('RM', p[1:])
for _t in %r:
    _rm('/' + _t)
del _rm
"""


def remove_shadowing_trees(board: Board) -> list[str]:
    """Remove ``/device`` and ``/hw`` from the filesystem (``''`` comes before ``/rom`` on ``sys.path``:
    even an empty directory would shadow the image's package); the files removed."""
    out = board.run(_REMOVE_TREES % (list(ROM_PACKAGES),), timeout_s=60)
    return [line[3:] for line in out.splitlines() if line.startswith("RM ")]


# -- what a flash does to the partition ------------------------------------------------------


def plan_partition(
    board: Board, rom_image: bytes, rom_meta: dict[str, Any] | None, on_board_rom: dict[str, Any] | None
) -> dict[str, Any]:
    """What happens to the ROMFS partition: ``deploy`` (the image differs), ``erase`` (a normal flash
    over a ROMFS one), the partition ``part`` and the image's ``size``/``sha256``."""
    rom: dict[str, Any] = {"deploy": False, "erase": False, "part": None, "size": 0, "sha256": None}
    if rom_meta is None:  # a normal flash: erase the image an earlier --romfs flash deployed
        if on_board_rom is not None:
            part = query(board)
            rom["part"] = part
            rom["erase"] = bool(part and part["holds_image"])
        return rom
    part = require(board)
    check_fits(len(rom_image), part["size"])
    rom.update(part=part, size=rom_meta["size"], sha256=rom_meta["sha256"])
    held = board_hash(board, len(rom_image)) if part["holds_image"] else None
    rom["deploy"] = held != rom_meta["sha256"]
    return rom


def deploy_verified(board: Board, rom_image: bytes, part: dict[str, Any]) -> None:
    """Deploy, read back (sha256 on the board); once more on a mismatch, then fail."""
    want = hashlib.sha256(rom_image).hexdigest()
    for _attempt in range(2):
        deploy(board, rom_image, part)
        if board_hash(board, len(rom_image)) == want:
            return
    raise BoardError(EXIT_BOARD, "hash check failed on the board for the ROMFS image")


def summary(rom: dict[str, Any], dry_run: bool) -> str:
    """One line on what the flash does (or would do) to the ROMFS partition; "" for nothing."""
    part = rom.get("part")
    if rom.get("erase"):
        return ("would erase" if dry_run else "erased") + " the ROMFS image an earlier --romfs flash deployed"
    if not rom.get("sha256") or not part:
        return ""
    where = f"partition 0 ({part['size']} bytes)"
    if rom["deploy"]:
        verb = "would deploy" if dry_run else "deployed and verified"
        return f"romfs: {verb} image {rom['size']} bytes sha256 {rom['sha256'][:16]} to {where}"
    return f"romfs: image {rom['size']} bytes sha256 {rom['sha256'][:16]} already on {where}; not deployed"
