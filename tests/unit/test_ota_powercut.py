"""Power cuts across whole OTA updates (tools/torture/ota_sweep.py): the real code survives every cut,
and the sweep catches the bugs it exists for (a record written in place, a download never repaired,
a slot marked complete before its files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.ota import bootsel
from device.ota.manifest import entries
from device.ota.slots import Slots
from tools.torture.ota_kit import CutFiles, Device, Kit
from tools.torture.ota_sweep import Sweep

CHUNK = 1200  # a few chunks per update: every kind of op, fewer cut points than the harness


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    yield Kit(tmp_path_factory.mktemp("ota-kit"))


def test_every_cut_plain_and_torn_boots_a_valid_slot_and_the_updates_complete(kit: Kit, tmp_path: Path) -> None:
    s = Sweep(kit, tmp_path, CHUNK)
    points = s.plan()
    kinds = {kind for kind, _ in s.ops}
    assert kinds == {"mkdir", "open", "write", "sync", "rename", "remove"}, kinds
    assert s.run(float("inf"), 3, 25)
    f = s.figures()
    writes = sum(kind == "write" for kind, _ in s.ops)
    assert f["power_cuts"] == points + writes + 25 + f["second_cuts"] and writes > 10
    assert f["second_cuts"] > 0  # some of the 25 random recoveries were cut again
    assert (f["bad_images_run"], f["downgrades_booted"], f["not_recovered"]) == (0, 0, 0), s.notes
    assert f["booted_valid_pct"] == 100.0 and f["boots_checked"] > f["power_cuts"]


class InPlaceRecord(CutFiles):
    """Writes the boot record in place (no temp + rename): a cut mid-write leaves it unreadable."""

    def write_json(self, rel: str, obj: Any) -> None:
        if rel != bootsel.RECORD:
            super().write_json(rel, obj)
            return
        import json

        self.ensure_parent(rel)
        handle = self.open_write(rel)
        try:
            handle.write(json.dumps(obj).encode())
            handle.sync()
        finally:
            handle.close()


def test_a_record_written_in_place_is_caught_as_a_downgrade(kit: Kit, tmp_path: Path) -> None:
    s = Sweep(kit, tmp_path, CHUNK, files_cls=InPlaceRecord)
    s.plan()
    s.run(float("inf"), 3, 0)
    f = s.figures()
    assert f["downgrades_booted"] > 0 and f["booted_valid_pct"] < 100.0


class NoRepair(Slots):
    def dl_resume(self) -> Any:
        return self.dl()  # a chunk torn by the cut stays in the part file

    def dl_append(self, offset: int, data: Any) -> int:
        handle = self.files.open_append("ota/dl.part")  # and appends after it blindly
        try:
            handle.write(data)
            handle.sync()
        finally:
            handle.close()
        progress = self.dl()
        progress["offset"] = offset + len(data)
        self.files.write_json("ota/dl.json", progress)
        return int(progress["offset"])


class NoRepairDevice(Device):
    slots_cls = NoRepair


def test_a_download_never_repaired_is_caught(kit: Kit, tmp_path: Path) -> None:
    s = Sweep(kit, tmp_path, CHUNK, device_cls=NoRepairDevice)
    s.plan()
    s.run(float("inf"), 3, 0)
    assert s.figures()["not_recovered"] > 0


class SwitchFirst(Slots):
    """Marks the slot complete and switches to it, THEN writes the files (the order the contract forbids)."""

    def stage_steps(self, manifest: dict[str, Any], f: Any, payload_offset: int) -> Any:
        slot = str(self.inactive())
        where = bootsel.slot_dir(slot)
        self.files.rmtree(where)
        self.files.makedirs(where)
        self.files.write_json(where + "/bundle.json", manifest)
        super().switch(slot, manifest["version"], "00" * 32)
        for path, offset, size, _ in entries(manifest):
            yield from self._copy_file(f, payload_offset + offset, size, where + "/" + path)
        return slot

    def switch(self, slot: str, version: str, bundle: str) -> None:
        pass  # done in stage


class SwitchFirstDevice(Device):
    slots_cls = SwitchFirst


def test_a_slot_switched_to_before_its_files_are_written_is_caught(kit: Kit, tmp_path: Path) -> None:
    s = Sweep(kit, tmp_path, CHUNK, device_cls=SwitchFirstDevice)
    s.plan()
    s.run(float("inf"), 3, 0)
    f = s.figures()
    assert f["bad_images_run"] > 0 and any("misses" in note for note in s.notes), s.notes
