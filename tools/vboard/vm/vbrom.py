"""``vfs`` for the virtual board: the built-in one plus ``rom_ioctl`` over a ROMFS partition.

A board whose firmware is built with ``MICROPY_VFS_ROM`` has a flash
partition that ``vfs.rom_ioctl`` exposes (1: how many segments, 2: segment
N as a memoryview, 3: erase a range, 4: write, 5: writing done, 6: erase
block size) and that the firmware mounts at ``/rom`` when it holds a valid
image. The unix ``micropython`` binary has ``vfs.VfsRom`` but no
``rom_ioctl`` and no memory mapping, so here the partition is a bytearray
in the VM's heap (allocated first, before anything else can fragment the
heap; the bridge made the heap bigger by that much), mirrored to a file
on the host so it survives resets. ``rom_heap_bytes`` says how much of
the heap it takes: ``brickproof hil`` leaves it out of its heap figures.

``install`` puts this module in ``sys.modules['vfs']`` so ``import vfs``
on the board returns it; everything but ``rom_ioctl`` is the built-in's.
"""

import gc
import sys

import vfs as _real  # captured before this module replaces it
from vfs import *  # noqa: F403 - this module stands in for vfs

HEADER = b"\xd2\xcd\x31"
BLOCK = 4096  # the erase block a segment reports (ioctl 6)
MIN_WRITE = 4  # the smallest write the segment takes (what ioctl 3 answers)
_EINVAL = 22
_FF = b"\xff" * 256

_part = None  # the partition's bytes (a bytearray in the heap), None: no ROMFS
_path = ""  # the host file behind it, as the VM reaches it
rom_heap_bytes = 0  # heap the partition takes (gc.mem_alloc() before and after)


def reserve(path: str, size: int) -> int:
    """Allocate the partition (``size`` bytes) and fill it from ``path``; the heap it took."""
    global _part, _path, rom_heap_bytes
    gc.collect()
    before = gc.mem_alloc()  # type: ignore[attr-defined]
    _part = bytearray(size)
    rom_heap_bytes = gc.mem_alloc() - before  # type: ignore[attr-defined]
    _path = path
    try:
        with open(path, "rb") as f:
            f.readinto(_part)
    except OSError:
        pass  # no file yet: the bridge makes one; an empty partition holds no image
    return rom_heap_bytes


def install(host_prefix: str) -> None:
    """Make ``import vfs`` return this module; host files are reached under ``host_prefix`` from now on."""
    global _path
    _path = host_prefix + _path
    sys.modules["vfs"] = sys.modules[__name__]


def holds_image() -> bool:
    return _part is not None and bytes(memoryview(_part)[:3]) == HEADER


def mount_rom() -> bool:
    """Mount the partition's image at ``/rom`` as the firmware does at start; False when it holds none."""
    if not holds_image():
        return False
    try:
        _real.mount(_real.VfsRom(memoryview(_part)), "/rom")
    except OSError:
        return False  # a corrupt image: the firmware boots without /rom
    return True


def _store(offset: int, data) -> None:  # type: ignore[no-untyped-def]
    import vbfs

    with vbfs._real_open(_path, "r+b") as f:  # the partition is not the filesystem's: no quota
        f.seek(offset)
        f.write(data)


def _erase(offset: int, length: int) -> int:
    if offset < 0 or length < 0 or offset + length > len(_part):  # type: ignore[arg-type]
        return -_EINVAL
    ff = memoryview(_FF)
    end = offset + length
    for at in range(offset, end, len(_FF)):
        n = min(len(_FF), end - at)
        _part[at : at + n] = ff[:n]  # type: ignore[index]
        _store(at, ff[:n])
    return MIN_WRITE


def rom_ioctl(op: int, *args):  # type: ignore[no-untyped-def]
    """``vfs.rom_ioctl`` over the one segment; negative errno for what a port would refuse."""
    if op == 1:
        return 1
    if not args or args[0] != 0:
        return -_EINVAL
    if op == 2:
        return memoryview(_part)
    if op == 6:
        return BLOCK
    if op == 3:
        return _erase(args[1], args[2]) if len(args) == 3 else _erase(0, args[1])
    if op == 4:
        offset, data = args[1], args[2]
        if offset < 0 or offset + len(data) > len(_part):  # type: ignore[arg-type]
            return -_EINVAL
        _part[offset : offset + len(data)] = data  # type: ignore[index]
        _store(offset, data)
        return 0
    if op == 5:
        return 0  # writes went straight through; the firmware mounts the new image at its next start
    return -_EINVAL
