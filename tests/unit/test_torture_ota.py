"""The ``ota`` harness: registered, passes at ci size with >= 200 power cuts, and fails (naming the goal)
when the updater stages a bundle without checking its files."""

from __future__ import annotations

from typing import Any

import pytest

from device.ota.slots import Slots
from tools.torture import HARNESSES, failed_goals, load
from tools.torture import ota as ota_harness
from tools.torture.ota_kit import Device


def test_registered_as_ota() -> None:
    assert HARNESSES["ota"] == "tools.torture.ota" and load("ota") is ota_harness


def test_ci_size_passes_every_goal() -> None:
    result = ota_harness.run("ci", 1, None)
    figures = result["figures"]
    assert failed_goals(result) == [], figures["notes"]
    assert figures["power_cuts"] >= 200 and figures["torn_write_cuts"] > 0
    assert figures["bad_images_run"] == 0 and figures["booted_valid_pct"] == 100.0
    assert figures["refusals_ok"] == figures["refusal_cases"] >= 15
    assert figures["scenarios_ok"] == figures["scenario_cases"] >= 11


class Unchecked(Slots):
    def _copy_file(self, f: Any, start: int, size: int, dst: str) -> Any:
        yield from super()._copy_file(f, start, size, dst)
        return str(dict(self._digests)[dst.split("/", 2)[2]])  # trusts the manifest's hash

    def stage_steps(self, manifest: dict[str, Any], f: Any, payload_offset: int) -> Any:
        self._digests = [(path, digest) for path, _, digest in manifest["files"]]
        return (yield from super().stage_steps(manifest, f, payload_offset))


class UncheckedDevice(Device):
    slots_cls = Unchecked


def test_staging_without_hash_checks_fails_the_refusal_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ota_harness, "Device", UncheckedDevice)
    monkeypatch.setitem(ota_harness.SIZES, "ci", (4000, 0, 50.0))  # few cut points: this is about refusals
    result = ota_harness.run("ci", 1, None)
    misses = failed_goals(result)
    assert any(miss.startswith("refusals_ok:") for miss in misses), misses
    assert any("tampered payload" in note for note in result["figures"]["notes"])
