"""``brickproof vboard``: a virtual MicroPython board on a TCP port, for mpremote, flash and HIL runs.

    brickproof vboard --board B --listen 127.0.0.1:PORT [--fs DIR] [--heap BYTES] [--fs-bytes N] [--romfs-bytes N]

``mpremote connect socket://127.0.0.1:PORT`` then works as with a board on
a serial port (raw REPL, raw-paste, soft reset, ``fs``, ``exec``). PORT 0
picks a free port; the first line printed says which. The board's
filesystem is the directory DIR (default ``.brickproof/vboard/<board>/fs``);
the VM runs with the board's ``heap_budget_bytes`` (plus ``VM_OVERHEAD`` for the
agent and simulated machine) unless ``--heap`` says. ``--fs-bytes N`` gives the
filesystem a board's size (N bytes in 4 KB blocks, see ``vm/vbfs.py``): a
write past it fails with ENOSPC and ``os.statvfs`` reports it.

``--romfs-bytes N`` (default 384 KiB) gives the board firmware with a ROMFS
partition of N bytes (``MICROPY_VFS_ROM``): ``vfs.rom_ioctl`` as on an
ESP32 or RP2 build, the image mounted at ``/rom`` at every start (and
``/rom``, ``/rom/lib`` on ``sys.path``), which ``brickproof flash --romfs``
deploys to. N = 0 is firmware without ROMFS (no ``vfs.rom_ioctl``). The
partition is the file ``DIR.romfs`` beside the filesystem directory. Unlike a
board, where the image is memory-mapped flash, the unix VM has no mapping:
the whole partition is a bytearray allocated first in the VM's heap, and the
heap is made bigger by that allocation (``bridge.rom_heap_extra``), so the
board's heap budget is unchanged. ``gc.mem_alloc()`` on the VM therefore
counts the partition; ``vfs.rom_heap_bytes`` says how much, and
``brickproof hil`` leaves it out of its heap figures (and says so).
Runs until interrupted (Ctrl-C or SIGTERM). Exit 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

DEFAULT_HEAP = 131072
# The agent and simulated machine live in the VM's heap (~22 KB measured); a board's firmware
# REPL costs next to nothing, so the VM gets this much on top of the board's budget.
VM_OVERHEAD = 32768
DEFAULT_ROMFS = 393216  # 384 KiB: our image (~250 KB for esp32_generic) with room to grow


def resolve_board_path(name: str) -> str:
    """A board file path; a bare name means ``boards/NAME.json``."""
    path = Path(name)
    if path.suffix != ".json" and not path.exists():
        return str(Path("boards") / (name + ".json"))
    return name


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("vboard", help="serve a virtual MicroPython board on a TCP port (for mpremote)")
    p.add_argument("--board", required=True, help="board profile: a .json path or a name in boards/")
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free one)")
    p.add_argument("--fs", help="the board's filesystem directory (default .brickproof/vboard/<board>/fs)")
    p.add_argument("--heap", type=int, help="VM heap bytes (default: the board's heap_budget_bytes, else 128 KiB)")
    p.add_argument("--fs-bytes", type=int, default=0, help="filesystem size in bytes (4 KB blocks; default: no limit)")
    p.add_argument(
        "--romfs-bytes",
        type=int,
        default=DEFAULT_ROMFS,
        help="ROMFS partition size (default 384 KiB; 0: firmware without ROMFS)",
    )
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from device.board import load_board
    from tools.vboard.bridge import VirtualBoard
    from tools.vboard.wiring import wiring_for

    board = load_board(resolve_board_path(args.board))
    fs_dir = Path(args.fs or Path(".brickproof") / "vboard" / board["name"] / "fs")
    heap = args.heap or (board.get("heap_budget_bytes") or DEFAULT_HEAP) + VM_OVERHEAD
    host, port = args.listen
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if args.fs_bytes < 0 or args.romfs_bytes < 0:
        sys.stderr.write("error: --fs-bytes and --romfs-bytes must be >= 0\n")
        return 2
    wiring = wiring_for(board)
    wiring["fs_bytes"] = args.fs_bytes
    with VirtualBoard(fs_dir, wiring, heap, host, port, romfs_bytes=args.romfs_bytes) as vb:
        sys.stdout.write(
            f"vboard {board['name']} listening on socket://{vb.host}:{vb.port} fs={vb.fs_dir} heap={heap}"
            + (f" fs_bytes={args.fs_bytes}" if args.fs_bytes else "")
            + (f" romfs_bytes={args.romfs_bytes}" if args.romfs_bytes else " romfs=none")
            + "\n"
        )
        sys.stdout.flush()
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0
