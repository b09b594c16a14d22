"""The updater with real signed bundles (tools.bundle/tools.otakey): a whole update, and any order of
chunk deliveries (stale, duplicate, out of order, reconnects) still assembles exactly the bundle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.ota import bootsel
from device.ota.manifest import BundleError
from device.ota.slots import DL_PART, Slots
from tools.torture.ota_kit import CutFiles, Device, Kit, fresh_root

CHUNK = 700


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kit]:
    yield Kit(tmp_path_factory.mktemp("ota-kit"))


def test_a_whole_update_stages_switches_and_boots_on_trial(kit: Kit, tmp_path: Path) -> None:
    dev = Device(CutFiles(fresh_root(tmp_path / "d")), kit, CHUNK)
    updater = dev.updater()
    v2 = kit.good["v2"]
    assert updater.offer(v2.offer) == (True, "accepted")
    dev.download(updater, v2)
    slot, manifest = updater.finish()
    assert slot == "a" and manifest == v2.manifest and updater.state() == "trial"
    assert not dev.files.exists(DL_PART)
    rec = Slots(dev.files).record()
    assert rec["trial"] == {"slot": "a", "version": v2.version, "bundle": v2.offer["bundle"], "boots": 0}
    assert bootsel.select(dev.files, "reset") == ("a", "ota/a", "trial boot 1 of 3")
    assert dev.boot_problem("a", kit.factory_version) == ""


def test_finish_runs_in_steps_so_the_control_loop_keeps_its_turns(kit: Kit, tmp_path: Path) -> None:
    # The OTA task awaits between steps (device.ota.steps.run_async): hashing, the signature check and
    # the copy into the slot must each hand the event loop back, a block or 16 signature bits at a time.
    dev = Device(CutFiles(fresh_root(tmp_path / "d")), kit, CHUNK)
    updater = dev.updater()
    v2 = kit.good["v2"]
    assert updater.offer(v2.offer) == (True, "accepted")
    dev.download(updater, v2)
    steps = updater.finish_steps()
    turns = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            slot, manifest = done.value
            break
        turns += 1
    blocks = -(-v2.offer["size"] // 1024)  # the bundle hashed in 1 KB blocks, then its files copied
    assert turns >= blocks + 16, (turns, blocks)
    assert slot == "a" and manifest == v2.manifest and updater.state() == "trial"


def test_a_signed_bundle_for_another_board_is_refused_and_discarded(kit: Kit, tmp_path: Path) -> None:
    dev = Device(CutFiles(fresh_root(tmp_path / "d")), kit, CHUNK)
    bad = kit.make("board", kit.good["v2"].version, board="pico_w")
    updater = dev.updater()
    assert updater.offer(bad.offer)[0]
    dev.download(updater, bad)
    with pytest.raises(BundleError) as err:
        updater.finish()
    assert err.value.reason == "wrong_board" and updater.state() == "idle"
    assert Slots(dev.files).record() is None and not Slots(dev.files).complete("a")


deliveries = st.lists(
    st.one_of(
        st.tuples(st.just("wanted"), st.integers(1, CHUNK)),
        st.tuples(st.just("stale"), st.integers(0, 40)),
        st.tuples(st.just("ahead"), st.integers(1, 40)),
        st.tuples(st.just("reconnect"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=deliveries)
def test_any_delivery_order_assembles_exactly_the_bundle(kit: Kit, tmp_path: Path, steps: list) -> None:  # type: ignore[type-arg]
    dev = Device(CutFiles(fresh_root(tmp_path / "h")), kit, CHUNK)
    bundle = kit.good["v2"]
    data = bundle.data
    updater = dev.updater()
    assert updater.offer(bundle.offer)[0]
    for kind, n in steps:
        want = updater.want()
        if want is None:
            break
        off = want[0]
        if kind == "wanted":
            assert updater.chunk(off, data[off : off + n])
        elif kind == "stale" and off > 0:
            back = max(0, off - 1 - n)
            assert not updater.chunk(back, data[back : back + 10])
        elif kind == "ahead":
            assert not updater.chunk(off + n, data[off + n : off + n + 10])
        else:
            updater = dev.updater()  # reconnect: the cloud offers the same bundle again
            accepted, why = updater.offer(bundle.offer)
            assert accepted and why.startswith("resumed at ")
    dev.download(updater, bundle)
    f = Slots(dev.files).dl_open()
    assert f.read() == data
    f.close()
    assert updater.finish()[0] == "a"
