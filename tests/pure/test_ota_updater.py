"""The update state machine (device/ota/updater.py) on real files: offers, chunks, early refusals.

A whole signed update (finish) needs a key, so it is covered on CPython by
tests/unit/test_ota_updater_bundle.py and the ``ota`` torture harness.
"""

import hashlib

from device.ota.manifest import BundleError
from device.ota.otafs import OtaFiles
from device.ota.slots import Slots
from device.ota.updater import Updater
from tests.pure._check import raises
from tests.pure._ota_support import with_root

DATA = bytes(range(256)) * 5  # 1280 bytes: not a bundle, but a file the offer names exactly


def _hex(data: bytes) -> str:
    return "".join("%02x" % b for b in hashlib.sha256(data).digest())


OFFER = {"bundle": _hex(DATA), "size": len(DATA), "version": "0.2.0"}


def _updater(root):  # type: ignore[no-untyped-def]
    return Updater(Slots(OtaFiles(root), "0.1.0"), {}, "host_sim", "0.1.0", "py", 4096, chunk_bytes=500)


_with_updater = with_root("updater", _updater)


def _feed(updater, data=DATA) -> None:  # type: ignore[no-untyped-def]
    for _ in range(20):
        want = updater.want()
        if want is None:
            return
        assert updater.chunk(want[0], data[want[0] : want[0] + want[1]])


@_with_updater
def test_offers_refused_early_with_their_reason(updater) -> None:  # type: ignore[no-untyped-def]
    assert updater.offer(dict(OFFER, version="0.1.0")) == (False, "same_version")
    assert updater.offer(dict(OFFER, version="0.0.9")) == (False, "downgrade")
    assert updater.offer(dict(OFFER, size=4097)) == (False, "too_big")
    for bad in (None, dict(OFFER, bundle="AB"), dict(OFFER, size=0), dict(OFFER, size=True), dict(OFFER, version="2")):
        accepted, why = updater.offer(bad)
        assert not accepted and why.startswith("bad_format: "), why
    assert updater.state() == "idle" and updater.want() is None


@_with_updater
def test_chunks_are_stored_only_when_wanted(updater) -> None:  # type: ignore[no-untyped-def]
    assert not updater.chunk(0, b"x")  # nothing offered
    assert updater.offer(OFFER) == (True, "accepted")
    assert updater.state() == "downloading" and updater.want() == (0, 500)
    assert not updater.chunk(500, DATA[500:1000])  # not the one wanted
    assert not updater.chunk(0, b"")
    assert updater.chunk(0, DATA[:500]) and updater.want() == (500, 500)
    assert not updater.chunk(500, DATA[500:] + b"extra")  # past the size
    _feed(updater)
    assert updater.want() is None and updater.state() == "ready"


@_with_updater
def test_the_same_offer_resumes_and_another_replaces_it(updater) -> None:  # type: ignore[no-untyped-def]
    updater.offer(OFFER)
    updater.chunk(0, DATA[:500])
    again = Updater(updater.slots, {}, "host_sim", "0.1.0", "py", 4096, chunk_bytes=500)
    assert again.offer(OFFER) == (True, "resumed at 500") and again.want() == (500, 500)
    other = dict(OFFER, bundle="00" * 32, version="0.3.0")
    assert again.offer(other) == (True, "accepted") and again.want() == (0, 500)
    assert again.offered() == other


@_with_updater
def test_finish_discards_a_short_or_wrong_download(updater) -> None:  # type: ignore[no-untyped-def]
    raises(ValueError, updater.finish)
    updater.offer(OFFER)
    updater.chunk(0, DATA[:500])
    assert raises(BundleError, updater.finish).reason == "truncated"
    assert updater.state() == "idle"
    wrong = bytearray(DATA)
    wrong[3] ^= 1
    updater.offer(OFFER)
    _feed(updater, bytes(wrong))
    assert raises(BundleError, updater.finish).reason == "bad_hash"
    assert updater.slots.dl() is None
    updater.offer(OFFER)
    _feed(updater)
    assert raises(BundleError, updater.finish).reason == "bad_format"  # the right bytes, but no bundle


@_with_updater
def test_busy_while_a_trial_is_pending(updater) -> None:  # type: ignore[no-untyped-def]
    files = updater.slots.files
    files.makedirs("ota/a")
    files.write_json("ota/a/bundle.json", {"version": "0.2.0"})
    updater.slots.switch("a", "0.2.0", "ee" * 32)
    assert updater.state() == "trial"
    assert updater.offer(dict(OFFER, version="0.3.0")) == (False, "busy")
