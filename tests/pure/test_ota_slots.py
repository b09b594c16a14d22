"""Slots (device/ota/slots.py) on real files under a fresh /tmp dir: download, repair, staging, switching."""

import hashlib

from device.ota import bootsel
from device.ota.manifest import BundleError
from device.ota.otafs import OtaFiles
from device.ota.slots import DL_JSON, DL_PART, Slots
from tests.pure._check import raises
from tests.pure._ota_support import with_root

OFFER = {"bundle": "ab" * 32, "size": 10, "version": "0.2.0"}


def _hex(data: bytes) -> str:
    return "".join("%02x" % b for b in hashlib.sha256(data).digest())


_with_slots = with_root("slots", lambda root: Slots(OtaFiles(root), "0.1.0"))


class _Payload:
    """A file-like payload (read/seek) behind ``lead`` bytes of head."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def seek(self, pos: int) -> None:
        self.pos = pos

    def read(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def _manifest(files):  # type: ignore[no-untyped-def]
    return {
        "version": "0.2.0",
        "files": [[path, len(data), _hex(data)] for path, data in files],
        "payload_bytes": sum(len(data) for _, data in files),
    }


FILES = [("device/__init__.py", b""), ("device/app.py", b"x = 1\n" * 400), ("hw/drv.py", b"y = 2\n")]


@_with_slots
def test_download_appends_at_the_confirmed_offset_only(slots) -> None:  # type: ignore[no-untyped-def]
    assert slots.dl() is None
    slots.dl_begin(OFFER)
    assert slots.dl() == {"offer": OFFER, "offset": 0}
    assert slots.dl_append(0, b"0123") == 4
    raises(ValueError, slots.dl_append, 0, b"0123")  # not the confirmed offset
    raises(ValueError, slots.dl_append, 4, b"0123456")  # runs past the size
    assert slots.dl_append(4, b"456789") == 10
    f = slots.dl_open()
    assert f.read() == b"0123456789"
    f.close()
    slots.dl_reset()
    assert slots.dl() is None and not slots.files.exists(DL_PART)


@_with_slots
def test_resume_cuts_a_longer_part_back_and_trusts_a_shorter_one(slots) -> None:  # type: ignore[no-untyped-def]
    slots.dl_begin(OFFER)
    slots.dl_append(0, b"abc")
    handle = slots.files.open_append(DL_PART)
    handle.write(b"junk")  # a chunk landed, its progress did not
    handle.close()
    assert slots.dl_resume()["offset"] == 3 and slots.files.size(DL_PART) == 3
    assert slots.dl_append(3, b"def") == 6
    slots.files.write_json(DL_JSON, {"offer": OFFER, "offset": 9})  # progress ahead of the bytes
    assert slots.dl_resume()["offset"] == 6
    slots.files.remove(DL_JSON)  # a part without progress is dropped
    assert slots.dl_resume() is None and not slots.files.exists(DL_PART)


@_with_slots
def test_append_repairs_a_longer_part_itself(slots) -> None:  # type: ignore[no-untyped-def]
    slots.dl_begin(OFFER)
    handle = slots.files.open_append(DL_PART)
    handle.write(b"zz")
    handle.close()
    assert slots.dl_append(0, b"ab") == 2
    f = slots.dl_open()
    assert f.read() == b"ab"
    f.close()


@_with_slots
def test_stage_writes_the_inactive_slot_and_bundle_json_last(slots) -> None:  # type: ignore[no-untyped-def]
    manifest = _manifest(FILES)
    head = b"H" * 17
    assert slots.inactive() == "a"
    slot = slots.stage(manifest, _Payload(head + b"".join(d for _, d in FILES)), len(head))
    assert slot == "a" and slots.complete("a") and not slots.complete("b")
    f = slots.files.open_read("ota/a/device/app.py")
    assert f.read() == FILES[1][1]
    f.close()
    assert slots.files.read_json("ota/a/bundle.json") == manifest


@_with_slots
def test_stage_refuses_a_payload_that_does_not_match(slots) -> None:  # type: ignore[no-untyped-def]
    manifest = _manifest(FILES)
    payload = bytearray(b"".join(d for _, d in FILES))
    payload[100] ^= 1
    err = raises(BundleError, slots.stage, manifest, _Payload(bytes(payload)), 0)
    assert err.reason == "bad_hash" and "device/app.py" in err.detail
    assert not slots.complete("a") and not slots.files.exists("ota/a")
    err = raises(BundleError, slots.stage, manifest, _Payload(bytes(payload[:50])), 0)
    assert err.reason == "truncated"


@_with_slots
def test_switch_confirm_and_the_next_inactive_slot(slots) -> None:  # type: ignore[no-untyped-def]
    raises(ValueError, slots.switch, "a", "0.2.0", "cd" * 32)  # not complete
    slots.stage(_manifest(FILES), _Payload(b"".join(d for _, d in FILES)), 0)
    slots.switch("a", "0.2.0", "cd" * 32)
    rec = slots.record()
    assert rec["good"] == "factory" and rec["good_version"] == "0.1.0" and rec["trial"]["slot"] == "a"
    assert not slots.confirm()  # the trial has not booted yet
    assert bootsel.select(slots.files, "reset")[0] == "a"
    assert slots.inactive() == "b" and slots.booted() == "a"
    assert slots.confirm() and slots.take_last()["event"] == "installed"
    slots.clear_last()
    assert slots.take_last() is None and slots.record()["good"] == "a" and slots.inactive() == "b"


@_with_slots
def test_no_inactive_slot_while_a_rollback_waits_for_its_reset(slots) -> None:  # type: ignore[no-untyped-def]
    slots.files.makedirs("ota")
    rec = {"v": 1, "good": "b", "good_version": "0.2.0", "booted": "a", "trial": None, "last": None}
    rec["max_trial_boots"] = 3
    slots.files.write_json(bootsel.RECORD, rec)
    assert slots.inactive() is None
    raises(ValueError, slots.stage, _manifest(FILES), _Payload(b""), 0)
    assert not slots.rollback("nothing on trial")
