"""A full flash at every point of a real signed update (device/ota/updater.py), on CPython.

The medium's capacity is swept from "the offer does not fit" to "the whole
update fits": each update either switches to the new slot or is refused with
``no_space`` having given its space back (no download, no staged slot, no
temp file; the boot record as it was; factory still boots). The same bundle
then installs once the space is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.ota import bootsel
from device.ota.manifest import BundleError
from device.ota.otafs import OtaFiles
from tools.torture.ota_kit import Device, Kit, fresh_root

CHUNK = 700
POINTS = 40  # capacities tried, evenly spread up to what the whole update needs


class FullFiles(OtaFiles):
    """Real files on a medium of ``capacity`` bytes (None: unbounded); ``peak``: the most ever in use."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.capacity: int | None = None
        self.peak = 0

    def used(self) -> int:
        return sum(p.stat().st_size for p in Path(self.root).rglob("*") if p.is_file())

    def _write(self, f: Any, rel: str, data: Any) -> None:
        need = self.used() + len(data)
        if self.capacity is not None and need > self.capacity:
            raise OSError(28, "No space left on device")
        self.peak = max(self.peak, need)
        super()._write(f, rel, data)

    def _sync_dir(self, directory: str) -> None:
        pass  # durability is not what this test is about


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    yield Kit(tmp_path_factory.mktemp("ota-space-kit"))


def _attempt(dev: Device, kit: Kit) -> str:
    """Offer, download and finish v2 -> the slot switched to, or the refusal's reason code."""
    updater = dev.updater()
    v2 = kit.good["v2"]
    accepted, why = updater.offer(v2.offer)
    if not accepted:
        return why.split(":", 1)[0]
    try:
        dev.download(updater, v2)
        return str(updater.finish()[0])
    except BundleError as exc:
        return exc.reason


def test_a_full_flash_anywhere_in_an_update_gives_the_space_back(kit: Kit, tmp_path: Path) -> None:
    probe = Device(FullFiles(fresh_root(tmp_path / "probe")), kit, CHUNK)
    assert _attempt(probe, kit) == "a"
    need = probe.files.peak  # type: ignore[attr-defined]
    # need - 1: the last write fails, the boot record's temp file of the switch (the peak: the
    # download and the staged slot are both on the flash then).
    capacities = [need * i // POINTS for i in range(POINTS + 1)] + [need - 1]
    outcomes = []
    for capacity in capacities:
        files = FullFiles(fresh_root(tmp_path / "d"))
        files.capacity = capacity
        dev = Device(files, kit, CHUNK)
        got = _attempt(dev, kit)
        outcomes.append(got)
        if got == "a":
            assert bootsel.select(files, "reset")[0] == "a"
            continue
        assert got == "no_space", (files.capacity, got)
        left = sorted(str(p.relative_to(files.root)) for p in Path(files.root).rglob("*") if p.is_file())
        assert left == [], (files.capacity, left)  # no record was ever written: none may appear
        assert bootsel.select(files, "power")[0] == "factory"
        files.capacity = None
        assert _attempt(dev, kit) == "a", files.capacity  # space freed: the same bundle installs
    assert outcomes == ["no_space"] * POINTS + ["a", "no_space"], outcomes
