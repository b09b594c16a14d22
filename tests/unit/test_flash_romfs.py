"""The pure parts of ``brickproof flash --romfs``: the image, the erase and write plans, the manifest
entry, the virtual board's partition file and heap share, and hil's heap figure on a virtual board."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools import flash, hil, romfs
from tools.mpboard import BoardError
from tools.vboard.bridge import prepare_partition, rom_heap_extra, romfs_image_size

FILES = {
    "device/__init__.mpy": b"M\x06pkg",
    "device/core/thermostat.mpy": b"M\x06law" * 50,
    "hw/mp/ds18b20.mpy": b"M\x06drv",
    "main.py": b"print('main')",
    "board.json": b"{}",
}


def test_the_image_splits_into_root_files_and_the_romfs_tree() -> None:
    root, rom = romfs.split_image(FILES)
    assert sorted(root) == ["board.json", "main.py"]
    assert sorted(rom) == ["device/__init__.mpy", "device/core/thermostat.mpy", "hw/mp/ds18b20.mpy"]


def test_the_romfs_image_is_mpremotes_format_and_the_same_for_the_same_tree() -> None:
    _, rom = romfs.split_image(FILES)
    image = romfs.build_romfs(rom)
    assert image.startswith(romfs.HEADER)
    assert romfs_image_size(image) == len(image)
    assert romfs.build_romfs(dict(reversed(list(rom.items())))) == image  # insertion order does not matter
    for data in rom.values():
        assert data in image  # files are stored verbatim
    changed = dict(rom, **{"hw/mp/ds18b20.mpy": b"M\x06drv2"})
    assert romfs.build_romfs(changed) != image


@given(
    size=st.integers(min_value=1, max_value=400_000),
    block=st.sampled_from([0, 512, 4096, 65536]),
    extra=st.integers(min_value=0, max_value=100_000),
)
def test_erase_ranges_cover_the_image_in_whole_blocks_within_the_partition(size: int, block: int, extra: int) -> None:
    part = size + extra
    ranges = romfs.prepare_ranges(size, block, part)
    if block <= 0 or block >= part:
        assert ranges == [(-1, size)]
        return
    offset = 0
    for at, length in ranges:
        assert at == offset and length % block == 0 and 0 < length <= max(block, romfs.PREPARE_MAX)
        offset += length
    assert size <= offset < size + block


@given(size=st.integers(min_value=1, max_value=50_000), room=st.integers(min_value=0, max_value=9000))
def test_writes_carry_the_image_in_whole_chunks_and_never_past_the_partition(size: int, room: int) -> None:
    image = bytes(i % 251 for i in range(size))
    part = size + room
    chunks = romfs.write_chunks(image, 4096, part)
    joined = b"".join(data for _, data in chunks)
    assert joined[:size] == image and set(joined[size:]) <= {0}
    for offset, data in chunks:
        assert offset % 4096 == 0 and offset + len(data) <= part
        assert len(data) == min(4096, part - offset)


def test_an_image_too_big_for_the_partition_names_both_sizes() -> None:
    romfs.check_fits(65536, 65536)
    with pytest.raises(BoardError) as exc:
        romfs.check_fits(252874, 65536)
    assert exc.value.code == 1
    assert "252874 bytes" in str(exc.value) and "(65536 bytes)" in str(exc.value)


def test_the_manifest_records_the_image_and_keeps_it_while_other_files_change() -> None:
    rom = {"sha256": "ab" * 32, "size": 1234}
    text = flash.manifest_text({"main.py": {"sha256": "00", "size": 1}}, rom).decode()
    assert flash.parse_romfs(text) == rom and flash.parse_manifest(text) == {"main.py": {"sha256": "00", "size": 1}}
    kept = flash.manifest_without(flash.parse_manifest(text), ["main.py"], rom).decode()
    assert flash.parse_romfs(kept) == rom and flash.parse_manifest(kept) == {}
    assert flash.parse_romfs(flash.manifest_without({}, [], None).decode()) is None
    assert flash.parse_romfs("not json") is None and flash.parse_romfs('{"romfs": 3}') is None


def test_the_summary_says_what_happens_to_the_partition() -> None:
    part = {"size": 393216, "block": 4096, "holds_image": True}
    rom = {"deploy": True, "erase": False, "part": part, "size": 1000, "sha256": "f" * 64}
    assert "would deploy image 1000 bytes" in romfs.summary(rom, True)
    assert "deployed and verified" in romfs.summary(rom, False)
    assert "not deployed" in romfs.summary(dict(rom, deploy=False), False)
    assert "erased the ROMFS image" in romfs.summary({"erase": True, "part": part}, False)
    assert romfs.summary({"deploy": False, "erase": False, "part": None, "sha256": None}, False) == ""


def test_the_partition_file_is_erased_when_new_and_keeps_an_image_that_still_fits(tmp_path: Path) -> None:
    path = tmp_path / "fs.romfs"
    prepare_partition(path, 8192)
    assert path.read_bytes() == b"\xff" * 8192
    image = romfs.build_romfs({"device/a.mpy": b"x" * 100})
    path.write_bytes(image + b"\xff" * (8192 - len(image)))
    prepare_partition(path, 16384)  # bigger: the image stays, the new space is erased
    data = path.read_bytes()
    assert len(data) == 16384 and data.startswith(image) and data.endswith(b"\xff" * 8192)
    prepare_partition(path, 64)  # smaller than the image: it would be cut short, so it is erased
    assert path.read_bytes() == b"\xff" * 64


def test_the_vm_heap_grows_by_at_least_the_partition_and_its_allocation_tables() -> None:
    assert rom_heap_extra(0) == 0
    for size in (4096, 65536, 393216):
        # the unix port keeps ~1/85 of heapsize for its tables; the bytearray costs < 128 bytes more
        assert rom_heap_extra(size) * 84 // 85 >= size + 128
        assert rom_heap_extra(size) < size * 1.02 + 256


def _control_output(heap: str) -> str:
    status = {"thermostat": {"temp_c": 20.5, "health": "ok"}}
    summary = {"task_crashes": 0, "thermostat": {"ticks": 3}}
    return f"HEAP {heap}\nSTATUS {json.dumps(status)}\nSUMMARY {json.dumps(summary)}\n"


def test_hil_leaves_the_virtual_boards_romfs_partition_out_of_the_heap_figures() -> None:
    result = hil.check_control(_control_output("500000 430000 393248"))
    assert result["heap_after_boot"] == 500000 - 393248 and result["heap_before_boot"] == 430000 - 393248
    assert result["rom_heap_bytes"] == 393248
    board = hil.check_control(_control_output("90000 20000 0"))  # a real board: nothing held
    assert board["heap_after_boot"] == 90000 and board["rom_heap_bytes"] == 0
    old = hil.check_control(_control_output("90000 20000"))  # the two-figure report still reads
    assert old["heap_after_boot"] == 90000 and old["rom_heap_bytes"] == 0
