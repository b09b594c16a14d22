"""``brickproof flash --romfs`` end to end on a virtual board with a ROMFS partition (``vm/vbrom.py``).

Real processes: the vboard CLI (the unix ``micropython`` binary), the flash
and hil CLIs over mpremote's transport. ``device/`` and ``hw/`` go into a
ROMFS image on partition 0, mounted at ``/rom``; the board's filesystem
keeps only the entry points, the profile and the manifest. Every wait is
bounded by a generous timeout; no assertion is on time.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tests.integration.test_vboard_e2e import BOARD, ENTRY, cli, serve, wait_for
from tools import flash, romfs
from tools.mpboard import Board

REPO = Path(__file__).resolve().parents[2]
NO_ROMFS = "this firmware has no ROMFS partition (MICROPY_VFS_ROM); flash without --romfs or use a ROMFS build"


def hil_heap(port: str) -> tuple[int, str]:
    """``brickproof hil`` on ``port`` (must pass): heap after boot and its output."""
    done = cli("hil", "--board", str(BOARD), "--port", port, "--seconds", "3", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("hil: control ok"))
    return int(line.split("heap after boot ", 1)[1].split()[0]), done.stdout


def module_file(port: str) -> str:
    with Board(port, 20) as board:
        return board.run("import device.core.thermostat as m\nprint(m.__file__)").strip()


def changed_tree(dest: Path) -> Path:
    """A copy of ``device/`` and ``hw/`` with one module's bytecode changed."""
    for package in ("device", "hw"):
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    version = dest / "device" / "version.py"
    version.write_text(version.read_text() + "\n_ROMFS_TEST_CHANGE = 1\n")
    return dest


def test_romfs_flash_runs_from_rom_redeploys_only_on_change_and_a_normal_flash_takes_over(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    with serve(fs) as port:
        first = cli("flash", "--board", str(BOARD), "--port", port, "--romfs")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "romfs: deployed and verified image" in first.stdout
        # The filesystem keeps only the entry points, the profile and its stamp, and the manifest:
        # nothing shadows /rom.
        assert sorted(p.name for p in fs.iterdir() if p.name != "data") == [
            "board.json",
            "board.ok.json",
            "boot.py",
            "main.py",
            "manifest.json",
        ]
        manifest = json.loads((fs / "manifest.json").read_text())
        image = fs.with_name(fs.name + ".romfs").read_bytes()
        rom = manifest["romfs"]
        assert hashlib.sha256(image[: rom["size"]]).hexdigest() == rom["sha256"]
        assert not [p for p in manifest["files"] if p.startswith(("device/", "hw/"))]
        assert wait_for(fs / "data" / "store" / "state.json"), "main.py did not start the device from /rom"

        assert module_file(port).startswith("/rom/device/")
        heap_rom, out = hil_heap(port)
        assert "ROMFS image held in the VM heap:" in out and "not counted" in out

        again = cli("flash", "--board", str(BOARD), "--port", port, "--romfs")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "not deployed" in again.stdout and "copied 0 files" in again.stdout

        tree = changed_tree(tmp_path / "tree")
        fig = flash.flash(str(BOARD), port, ENTRY, timeout_s=20, use_romfs=True, root=tree)
        assert fig["romfs"]["deploy"] is True and fig["copy"] == []
        assert fig["romfs"]["sha256"] != rom["sha256"]
        with Board(port, 20) as board:
            size = fig["romfs"]["size"]
            assert romfs.board_hash(board, size) == fig["romfs"]["sha256"]

        normal = cli("flash", "--board", str(BOARD), "--port", port)
        assert normal.returncode == 0, normal.stdout + normal.stderr
        assert "erased the ROMFS image" in normal.stdout and "copied /device/boot.mpy" in normal.stdout
        assert "romfs" not in json.loads((fs / "manifest.json").read_text())
        assert module_file(port).startswith("device/") or module_file(port).startswith("/device/")
        heap_files, _ = hil_heap(port)
        assert heap_rom < heap_files  # bytecode run in place from /rom is not copied into the heap


def test_firmware_without_romfs_is_refused_and_the_board_is_untouched(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    with serve(fs, "--romfs-bytes", "0") as port:
        for extra in ((), ("--dry-run",)):
            done = cli("flash", "--board", str(BOARD), "--port", port, "--romfs", *extra)
            assert done.returncode == 1
            assert NO_ROMFS in done.stderr
        assert not (fs / "manifest.json").exists() and not (fs / "main.py").exists()


def test_an_image_larger_than_the_partition_is_refused_naming_both_sizes(tmp_path: Path) -> None:
    with serve(tmp_path / "fs", "--romfs-bytes", "65536") as port:
        done = cli("flash", "--board", str(BOARD), "--port", port, "--romfs")
    assert done.returncode == 1
    assert "larger than the board's ROMFS partition (65536 bytes)" in done.stderr
    size = int(done.stderr.split("the ROMFS image is ", 1)[1].split()[0])
    assert size > 65536
    assert not (tmp_path / "fs" / "manifest.json").exists()
