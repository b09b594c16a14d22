"""The OTA power-cut sweep: a cut at EVERY mutating file op of two back-to-back updates.

The whole run, factory -> v2 -> v3 (boot, offer, every chunk, finish = verify +
stage + switch, trial boot, confirm, then the same again), is replayed on a fresh
device root once per op index k with the power cut at op k, and again torn (half
the bytes of the write in flight land) when op k is a write. After each cut the
device reboots (``dl_resume`` + ``bootsel.select(..., "power")``) and every boot
from then on is checked (``Device.boot_problem``): a complete slot whose
bundle.json is a manifest we signed and whose files hash to it, never older
than the version already confirmed before the cut. Then the updates are driven
to the end (resumed, restaged or re-offered as the files say) and must reach v3.
With ``second_cuts`` some recoveries are cut again at a random op.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from device.ota.otafs import PowerCut
from device.ota.slots import Slots
from device.version import parse_version
from tools.torture.ota_kit import CutFiles, Device, Kit, fresh_root

UPDATES = ("v2", "v3")
RECOVERY_ROUNDS = 8


def whole_update(dev: Device, marks: list[tuple[int, str]] | None = None) -> None:
    """Factory -> v2 -> v3 with a trial boot and a confirm each; ``marks``: (ops done, version) per confirm."""
    dev.reboot("power")
    for name in UPDATES:
        bundle = dev.kit.good[name]
        dev.install(bundle)
        dev.reboot("reset")
        if not Slots(dev.files).confirm():
            raise AssertionError("update to %s did not boot on trial" % bundle.version)
        if marks is not None and isinstance(dev.files, CutFiles):
            marks.append((len(dev.files.ops), bundle.version))
    dev.reboot("reset")


class Sweep:
    def __init__(
        self,
        kit: Kit,
        work: Path,
        chunk_bytes: int,
        device_cls: type[Device] = Device,
        files_cls: type[CutFiles] = CutFiles,
    ) -> None:
        self.kit = kit
        self.device_cls = device_cls
        self.files_cls = files_cls
        self.root = work / "device"
        self.chunk_bytes = chunk_bytes
        self.final = kit.good[UPDATES[-1]].version
        self.ops: list[tuple[str, str]] = []
        self.marks: list[tuple[int, str]] = []
        self.cuts = 0
        self.torn = 0
        self.second_cuts = 0
        self.boots = 0
        self.bad_boots = 0
        self.downgrades = 0
        self.not_recovered = 0
        self.notes: list[str] = []
        self._floor = kit.factory_version

    def _device(self, root: str, at: int | None = None, tear: bool = False) -> Device:
        return self.device_cls(self.files_cls(root, at, tear), self.kit, self.chunk_bytes)

    def plan(self) -> int:
        """Run the whole update once without cuts -> the number of mutating ops (the cut points)."""
        dev = self._device(fresh_root(self.root))
        whole_update(dev, self.marks)
        assert isinstance(dev.files, CutFiles)
        self.ops = list(dev.files.ops)
        rec = Slots(dev.files).record()
        if rec is None or rec["good_version"] != self.final or dev.boot_problem(rec["booted"], self.final):
            raise AssertionError("the uncut run did not end on %s: %r" % (self.final, rec))
        return len(self.ops)

    def points(self) -> list[tuple[int, bool]]:
        """(op index, torn) of every cut: each op, and each write op torn as well."""
        out = [(k, False) for k in range(len(self.ops))]
        out += [(k, True) for k, (kind, _) in enumerate(self.ops) if kind == "write"]
        return out

    def floor_at(self, at: int) -> str:
        """The newest version confirmed by the ops before ``at`` (factory before any)."""
        floor = self.kit.factory_version
        for done, version in self.marks:
            if done <= at:
                floor = version
        return floor

    def cut_at(self, at: int, tear: bool, second: int | None = None) -> None:
        root = fresh_root(self.root)
        dev = self._device(root, at, tear)
        try:
            whole_update(dev)
        except PowerCut:
            pass
        else:
            self.notes.append("cut at op %d did not happen" % at)
            self.not_recovered += 1
            return
        self.cuts += 1
        self.torn += tear
        self._floor = self.floor_at(at)
        if second is not None:
            again = self._device(root, second)
            try:
                self.recover(again)
            except PowerCut:
                self.second_cuts += 1
                self.cuts += 1
        self._finish(self._device(root), "op %d%s" % (at, " torn" if tear else ""))

    def _finish(self, dev: Device, where: str) -> None:
        try:
            done = self.recover(dev)
        except Exception as exc:  # any failure to go on is what this harness counts
            done = False
            self.notes.append("after cut at %s: %r" % (where, exc))
        if not done:
            self.not_recovered += 1
            if len(self.notes) < 20:
                self.notes.append("after cut at %s: did not reach %s" % (where, self.final))

    def _boot(self, dev: Device, cause: str) -> None:
        slot = dev.reboot(cause)
        self.boots += 1
        problem = dev.boot_problem(slot, self._floor)
        if problem:
            self.bad_boots += 1
            self.downgrades += "older than" in problem
            if len(self.notes) < 20:
                self.notes.append(problem)

    def recover(self, dev: Device) -> bool:
        """Reboot after the cut, then drive the updates to the end -> whether v3 is confirmed."""
        self._boot(dev, "power")
        for _ in range(RECOVERY_ROUNDS):
            slots = Slots(dev.files)
            rec = slots.record()
            trial = rec["trial"] if rec else None
            if trial is not None and rec is not None and rec["booted"] == trial["slot"]:
                slots.confirm()  # the health gate passes: these bundles are good
                self._floor = trial["version"]
                continue
            if trial is not None:
                self._boot(dev, "reset")
                continue
            running = dev.running_version()
            if running == self.final:
                return True
            newer = [
                b for b in (self.kit.good[n] for n in UPDATES) if parse_version(b.version) > parse_version(running)
            ]
            dev.install(newer[0])
            self._boot(dev, "reset")
        return False

    def run(self, deadline: float, seed: int, second_cuts: int) -> bool:
        """Every cut point, then ``second_cuts`` random points cut again in recovery -> False if out of time."""
        for at, tear in self.points():
            if time.monotonic() > deadline:
                return False
            self.cut_at(at, tear)
        rng = random.Random(seed)
        for _ in range(second_cuts):
            if time.monotonic() > deadline:
                return False
            self.cut_at(rng.randrange(len(self.ops)), rng.random() < 0.5, rng.randrange(1, 120))
        return True

    def figures(self) -> dict[str, Any]:
        valid = 100.0 * (self.boots - self.bad_boots) / self.boots if self.boots else 0.0
        return {
            "cut_points": len(self.ops),
            "power_cuts": self.cuts,
            "torn_write_cuts": self.torn,
            "second_cuts": self.second_cuts,
            "boots_checked": self.boots,
            "booted_valid_pct": round(valid, 3),
            "bad_images_run": self.bad_boots,
            "downgrades_booted": self.downgrades,
            "not_recovered": self.not_recovered,
        }
