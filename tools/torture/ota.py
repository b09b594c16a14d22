"""``ota``: power cuts across whole OTA updates, every refusal, and the trial/rollback paths, without a network.

* Sweep (``ota_sweep``): a power cut at every mutating file op of two
  back-to-back updates (and torn at every write), each followed by a reboot and
  a drive to the end; at ``long`` size more chunks (smaller) and random second
  cuts during recovery. Every boot is checked: complete slot, a manifest we
  signed, files that hash to it, no downgrade.
* Refusals: same version, previous version, unsigned, untrusted key, wrong
  algorithm, wrong board/target, tampered payload, bytes that are not the
  offered bundle, too big, finish before the end, busy during a trial, a
  malformed offer. Each must be refused with its reason code and leave the boot
  record, the booted slot and the download area as they were.
* Scenarios: back-to-back updates, disconnect-and-resume (the same offer again
  keeps the offset), a reboot mid-chunk, cancel (a new offer replaces the old),
  crash / watchdog reset / exception on the trial boot, health-gate failure,
  trial boots exhausted, rollback to an earlier OTA slot, an incomplete trial.

Bundles are tiny (a few files) and made with ``tools.bundle``/``tools.otakey``
in a temp dir, so a run is quick. Figures: ``power_cuts`` (goal >= 200 at both
sizes), ``booted_valid_pct`` (== 100), ``bad_images_run`` (== 0),
``refusals_ok``/``refusal_cases``, ``scenarios_ok``/``scenario_cases``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.ota import bootsel
from device.ota.manifest import BundleError
from device.ota.slots import DL_JSON, DL_PART, Slots
from tools.torture.ota_kit import MAX_BYTES, CutFiles, Device, Kit, bump, fresh_root
from tools.torture.ota_sweep import Sweep

NAME = "ota"
SUMMARY = (
    "OTA: power cut at every file op of two back-to-back updates (plain and torn writes), "
    "every refusal reason, resume/cancel, crash/watchdog/health-gate rollbacks"
)

# size -> (chunk bytes, random second cuts, time bound s)
SIZES = {"ci": (400, 0, 50.0), "long": (96, 300, 1800.0)}


class Checks:
    """Boots and cases of the refusal/scenario part."""

    def __init__(self, kit: Kit, work: Path, chunk_bytes: int) -> None:
        self.kit = kit
        self.root = work / "cases"
        self.chunk_bytes = chunk_bytes
        self.boots = 0
        self.bad_boots = 0
        self.failed: list[str] = []

    def device(self) -> Device:
        return Device(CutFiles(fresh_root(self.root)), self.kit, self.chunk_bytes)

    def boot(self, dev: Device, cause: str, floor: str | None = None) -> str:
        slot = dev.reboot(cause)
        self.boots += 1
        if dev.boot_problem(slot, floor or self.kit.factory_version):
            self.bad_boots += 1
        return slot

    def installed(self, dev: Device, name: str) -> Device:
        """``dev`` after installing and confirming good bundle ``name``."""
        dev.install(self.kit.good[name])
        assert self.boot(dev, "reset") != "factory"
        assert Slots(dev.files).confirm()
        return dev

    def run_case(self, name: str, case: Callable[[], None]) -> bool:
        try:
            case()
        except Exception as exc:  # a case that raises failed; say how
            self.failed.append("%s: %r" % (name, exc))
            return False
        return True

    # -- refusals -----------------------------------------------------------------------------

    def refused(self, dev: Device, offer: dict[str, Any], data: bytes, reason: str) -> None:
        """Offer ``data`` as ``offer``; it must be refused with ``reason`` and leave the device as it was."""
        before = Slots(dev.files).record()
        booted = Slots(dev.files).booted()
        spare = Slots(dev.files).inactive()
        spare_before = self._slot_manifest(dev, spare)
        updater = dev.updater()
        accepted, why = updater.offer(offer)
        got = why.split(":")[0]
        if accepted:
            for _ in range(offer["size"] // self.chunk_bytes + 2):
                want = updater.want()
                if want is None:
                    break
                updater.chunk(want[0], data[want[0] : want[0] + want[1]])
            try:
                updater.finish()
                got = "installed"
            except BundleError as exc:
                got = exc.reason
        assert got == reason, "expected %s, got %s" % (reason, got)
        files = dev.files
        assert not files.exists(DL_JSON) and not files.exists(DL_PART), "download left behind"
        assert Slots(files).record() == before, "boot record changed"
        assert self._slot_manifest(dev, spare) in (None, spare_before), "refused bundle left a complete slot"
        assert self.boot(dev, "reset") == booted, "boots another slot"

    @staticmethod
    def _slot_manifest(dev: Device, slot: str | None) -> Any:
        return None if slot is None else dev.files.read_json(bootsel.slot_dir(slot) + "/bundle.json")

    def refusals(self) -> tuple[int, int]:
        kit = self.kit
        v2 = kit.good["v2"]
        factory = kit.factory_version
        newer = bump(factory, 1)

        def lying(bundle: Any, version: str) -> dict[str, Any]:
            return dict(bundle.offer, version=version)

        def make(name: str, version: str = newer, **how: Any) -> Any:
            return kit.make(name, version, **how)

        cases: list[tuple[str, Callable[[], None]]] = []

        def add(name: str, fn: Callable[[Device], None], setup: Callable[[], Device] | None = None) -> None:
            cases.append((name, lambda: fn(setup() if setup else self.device())))

        same = make("same", factory)
        add("same_version offer", lambda d: self.refused(d, same.offer, same.data, "same_version"))
        add("same_version signed", lambda d: self.refused(d, lying(same, newer), same.data, "same_version"))
        at_v3 = lambda: self.installed(self.installed(self.device(), "v2"), "v3")  # noqa: E731
        add("previous version offer", lambda d: self.refused(d, v2.offer, v2.data, "downgrade"), at_v3)
        add(
            "previous version signed",
            lambda d: self.refused(d, lying(v2, bump(factory, 5)), v2.data, "downgrade"),
            at_v3,
        )
        for name, how, reason in (
            ("unsigned", {"flip_sig": True}, "bad_signature"),
            ("untrusted key", {"key": kit.other_key}, "untrusted_key"),
            ("wrong algorithm", {"alg": "ecdsa-p384-sha384"}, "wrong_alg"),
            ("wrong board", {"board": "esp32_generic"}, "wrong_board"),
            ("wrong target", {"target": "mpy"}, "wrong_target"),
            ("tampered payload", {"flip_payload": True}, "bad_hash"),
        ):
            bad = make(name.replace(" ", "_"), **how)

            def refuse(d: Device, b: Any = bad, r: str = reason) -> None:
                self.refused(d, b.offer, b.data, r)

            add(name, refuse)
        add("not the offered bytes", lambda d: self.refused(d, v2.offer, same.data[: v2.offer["size"]], "bad_hash"))
        add("too big", lambda d: self.refused(d, dict(v2.offer, size=MAX_BYTES + 1), v2.data, "too_big"))
        add("malformed offer", lambda d: self.refused(d, dict(v2.offer, bundle="xyz"), v2.data, "bad_format"))

        def early_finish(dev: Device) -> None:
            updater = dev.updater()
            assert updater.offer(v2.offer)[0]
            dev.download(updater, v2, stop_after=1)
            try:
                updater.finish()
            except BundleError as exc:
                assert exc.reason == "truncated", exc.reason
            else:
                raise AssertionError("finished a partial download")
            assert not dev.files.exists(DL_JSON)

        add("finish before the end", early_finish)

        def busy(dev: Device) -> None:
            dev.install(v2)
            assert self.boot(dev, "reset") == "a"
            v3 = kit.good["v3"]
            assert dev.updater().offer(v3.offer) == (False, "busy")
            assert Slots(dev.files).confirm() and dev.updater().offer(v3.offer)[0]

        add("busy during a trial", busy)
        ok = sum(self.run_case("refusal " + name, case) for name, case in cases)
        return ok, len(cases)

    # -- scenarios ----------------------------------------------------------------------------

    def scenarios(self) -> tuple[int, int]:
        kit = self.kit
        v2, v3, v4 = kit.good["v2"], kit.good["v3"], kit.good["v4"]

        def back_to_back() -> None:
            dev = self.installed(self.installed(self.device(), "v2"), "v3")
            assert self.boot(dev, "power", v3.version) == "b" and dev.running_version() == v3.version
            dev = self.installed(dev, "v4")  # and a third one lands in a again
            assert Slots(dev.files).booted() == "a" and dev.running_version() == v4.version

        def resume() -> None:
            dev = self.device()
            updater = dev.updater()
            assert updater.offer(v2.offer) == (True, "accepted")
            dev.download(updater, v2, stop_after=2)
            again = dev.updater()  # the link dropped; the cloud offers the same bundle again
            accepted, why = again.offer(v2.offer)
            assert accepted and why == "resumed at %d" % (2 * self.chunk_bytes), why
            assert again.want() == (2 * self.chunk_bytes, self.chunk_bytes)
            dev.download(again, v2)
            assert again.finish()[0] == "a"

        def reboot_mid_chunk() -> None:
            dev = self.device()
            updater = dev.updater()
            assert updater.offer(v2.offer)[0]
            dev.download(updater, v2, stop_after=1)
            handle = dev.files.open_append(DL_PART)  # a chunk written, its progress never recorded
            handle.write(b"x" * 100)
            handle.close()
            self.boot(dev, "power")
            updater = dev.updater()
            assert updater.want() == (self.chunk_bytes, self.chunk_bytes)
            dev.download(updater, v2)
            assert updater.finish()[0] == "a"

        def cancel() -> None:
            dev = self.device()
            updater = dev.updater()
            assert updater.offer(v2.offer)[0]
            dev.download(updater, v2, stop_after=2)
            assert updater.offer(v4.offer) == (True, "accepted") and updater.want() == (0, self.chunk_bytes)
            dev.download(updater, v4)
            assert updater.finish()[1]["version"] == v4.version

        def trial_rollback(cause: str, reason: str, base: tuple[str, ...] = ()) -> Callable[[], None]:
            def case() -> None:
                dev = self.device()
                for name in base:
                    self.installed(dev, name)
                good = Slots(dev.files).booted()
                floor = dev.running_version()
                dev.install(v3)
                trial = self.boot(dev, "reset", floor)
                assert trial != good
                if cause == "exception":
                    assert bootsel.crashed_on_trial(dev.files, reason)
                    cause_now = "reset"
                elif cause == "health":
                    assert Slots(dev.files).rollback(reason)
                    cause_now = "reset"
                elif cause == "power":
                    for _ in range(2):
                        assert self.boot(dev, "power", floor) == trial
                    cause_now = "power"
                else:
                    cause_now = cause
                assert self.boot(dev, cause_now, floor) == good
                last = Slots(dev.files).take_last()
                assert last and last["event"] == "rolled_back" and last["reason"] == reason, last
                Slots(dev.files).clear_last()
                assert Slots(dev.files).take_last() is None and dev.running_version() == floor

            return case

        def incomplete_trial() -> None:
            dev = self.device()
            dev.install(v2)
            dev.files.remove("ota/a/bundle.json")
            assert self.boot(dev, "power") == "factory"
            last = Slots(dev.files).take_last()
            assert last is not None and last["reason"] == "trial slot incomplete", last

        cases = [
            ("back-to-back updates", back_to_back),
            ("disconnect and resume", resume),
            ("reboot mid-chunk", reboot_mid_chunk),
            ("cancel: a new offer replaces the old", cancel),
            ("crash on trial boot", trial_rollback("crash", "crashed on trial boot")),
            ("watchdog reset on trial boot", trial_rollback("wdt", "watchdog reset on trial boot")),
            ("exception on trial boot", trial_rollback("exception", "ValueError: boom")),
            ("health gate fails", trial_rollback("health", "health gate: app thermostat not progressing")),
            ("trial boots exhausted", trial_rollback("power", "3 trial boots without passing the health gate")),
            ("rollback to an earlier OTA slot", trial_rollback("crash", "crashed on trial boot", ("v2",))),
            ("incomplete trial slot", incomplete_trial),
        ]
        ok = sum(self.run_case("scenario " + name, case) for name, case in cases)
        return ok, len(cases)


def run(size: str, seed: int, progress: Any) -> dict[str, Any]:
    chunk_bytes, second_cuts, bound_s = SIZES[size]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bp-ota-torture-") as tmp:
        work = Path(tmp)
        kit = Kit(work)
        checks = Checks(kit, work, chunk_bytes)
        refusals_ok, refusal_cases = checks.refusals()
        scenarios_ok, scenario_cases = checks.scenarios()
        sweep = Sweep(kit, work, chunk_bytes)
        points = sweep.plan()
        if progress:
            print("ota: %d cut points (%d with torn writes)" % (points, len(sweep.points())), file=progress)
        finished = sweep.run(started + bound_s, seed, second_cuts)
    figures = sweep.figures()
    boots = figures["boots_checked"] + checks.boots
    bad = figures["bad_images_run"] + checks.bad_boots
    figures.update(
        {
            "boots_checked": boots,
            "bad_images_run": bad,
            "booted_valid_pct": round(100.0 * (boots - bad) / boots, 3) if boots else 0.0,
            "bundle_bytes": len(kit.good["v2"].data),
            "chunk_bytes": chunk_bytes,
            "refusals_ok": refusals_ok,
            "refusal_cases": refusal_cases,
            "scenarios_ok": scenarios_ok,
            "scenario_cases": scenario_cases,
            "sweep_finished": finished,
            "seconds": round(time.monotonic() - started, 1),
            "notes": (checks.failed + sweep.notes)[:20],
        }
    )
    goals = {
        "power_cuts": [">=", 200],
        "booted_valid_pct": ["==", 100.0],
        "bad_images_run": ["==", 0],
        "downgrades_booted": ["==", 0],
        "not_recovered": ["==", 0],
        "refusals_ok": ["==", refusal_cases],
        "scenarios_ok": ["==", scenario_cases],
        "sweep_finished": ["==", True],
    }
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
