"""Manifest checks and the bundle head (device/ota/manifest.py, bundlefmt.py), MicroPython too.

Manifests and signatures were made on the host with ``tools.bundle.manifest_bytes``
and ``tools.otakey.sign`` (the fixed key of test_ota_ecdsa.py) and pasted here.
"""

import binascii
import io
import json
import sys

from device.ota import bundlefmt, manifest
from device.ota.manifest import REASONS, BundleError
from tests.pure._check import raises
from tests.pure._ota_support import OTHER_PUB, PUB

_FILES = (
    b'"files":[["device/app.py",12,"caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52"],'
    b'["hw/x.py",6,"0abae1e0ae728216ee44993c5a3a755f8b1c387d947fc4c4f72cab0e4a84214b"]],'
)
_HEAD = b'{"alg":"ecdsa-p256-sha256","board":"host_sim",'
_KID = b'"format":1,"kid":"7d39d2ed2b4c6f01",'
GOOD = _HEAD + _FILES + _KID + b'"payload_bytes":18,"target":"py","version":"0.2.0"}'
SAME = _HEAD + _FILES + _KID + b'"payload_bytes":18,"target":"py","version":"0.1.0"}'
DOWN = _HEAD + _FILES + _KID + b'"payload_bytes":18,"target":"py","version":"0.0.9"}'
SUMBAD = _HEAD + _FILES + _KID + b'"payload_bytes":19,"target":"py","version":"0.2.0"}'
MPY = (
    b'{"alg":"ecdsa-p256-sha256","board":"esp32_generic","files":'
    b'[["device/app.mpy",2,"bda220727cd133e868575c00ae65e7d70d354ea16b3508455d38bf133b2352a1"],'
    b'["hw/x.mpy",3,"5a3eaf2785489c1d05912cc24bc14d0576ef446247f3ab73a2b243b17abacba8"]],'
    + _KID
    + b'"payload_bytes":5,"target":"mpy","version":"0.2.0"}'
)
BADPATH = (
    _HEAD + b'"files":[["device/../boot.py",1,"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"]],'
    b'"format":1,"kid":"7d39d2ed2b4c6f01","payload_bytes":1,"target":"py","version":"0.2.0"}'
)
DUP = (
    _HEAD + b'"files":[["device/a.py",1,"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"],'
    b'["device/a.py",1,"a1fce4363854ff888cff4b8e7875d600c2682390412a8cf79b37d0b11148b0fa"]],'
    b'"format":1,"kid":"7d39d2ed2b4c6f01","payload_bytes":2,"target":"py","version":"0.2.0"}'
)
_SIG = {
    "GOOD": "d7ba65ccdd0fb02a622c2282333db4d83824f9cf8c94f7d22b4064245ab91f8f"
    "08d879f7ee5609f3de1ff3f39159bbede85a51b2e35672d61ef08361963f9ac0",
    "SAME": "cb5f73b515f9b773a2826dc1185e18badea8d558cea1c5dd770e54ac6c0fb537"
    "9021b69a90ce1d5db9ee6bb318dafe75d7a9c94edf110df061ed8e9ac02c24be",
    "DOWN": "4df51eb7d74d09b912962407bd91625abcc2641d7853a1b38a1667c051710f20"
    "0bab96f5252298a3bee2cd07af5822bcb3252237d6c8f4b95b2fc7aa47483492",
    "MPY": "743f81c1fe21ea0b34a64ee09cd7a4b12aec6ef32bd0e8e7811fae31a9ad2bcf"
    "8165bc853482a89a8d08814611f002082e14c57bbe684096c101272d49a3eed7",
    "BADPATH": "71befe7cb6f63978a3110e142acc43b478300eb8ad5368e1a08291fc7dbdda43"
    "4e7aede4899a1d2de270b31eb946e7b02a31de0920eccbe71ff45154fda05ce3",
    "DUP": "c1eb78242c90eb8507fdd167d07213704615560a0f58e60295454b5ab4164948"
    "cf8254eda71bee3b2c1f8f7b028fb74153880a4172205128c8d3a56deb935136",
    "SUMBAD": "0c39cda766d3a501e05b3f1e048ce6af2657a97c553608e6d9bfe6a53b0c2080"
    "21954908b794fee8c135a237bd4a962feaafafc745138c121d2dbef58d9d86ff",
    "OTHER_GOOD": "82fa83aa0fd6c85a23d41b38d5399fbc7b18fadb8e98b610e8302315211188a4"
    "bda0d2b3d2034533964681ff1055dcdaf20de4899f4cdf245834678cd65aada0",
}


def _sig(name):
    return binascii.unhexlify(_SIG[name])


def _check(mbytes, sig, pub=PUB, board="host_sim", target="py", running="0.1.0", max_bytes=None):  # type: ignore[no-untyped-def]
    return manifest.check(mbytes, sig, pub, board, target, running, max_bytes)


def _reason(mbytes, sig, **kw):  # type: ignore[no-untyped-def]
    try:
        _check(mbytes, sig, **kw)
    except BundleError as exc:
        assert exc.reason in REASONS, exc.reason
        assert exc.detail, "a refusal says what exactly"
        return exc.reason
    raise AssertionError("expected a BundleError")


def test_a_good_manifest_passes_and_lists_its_files_with_offsets():
    m = _check(GOOD, _sig("GOOD"))
    assert m["version"] == "0.2.0" and m["board"] == "host_sim"
    assert manifest.entries(m) == [
        ("device/app.py", 0, 12, "caf026f25d7140209f98072605307a438914b9ce6f3c14b23d15d9667241de52"),
        ("hw/x.py", 12, 6, "0abae1e0ae728216ee44993c5a3a755f8b1c387d947fc4c4f72cab0e4a84214b"),
    ]
    mpy = _check(MPY, _sig("MPY"), board="esp32_generic", target="mpy")
    assert [e[1] for e in manifest.entries(mpy)] == [0, 2]


def test_each_refusal_has_its_reason():
    assert _reason(GOOD, _sig("OTHER_GOOD")) == "bad_signature"
    assert _reason(GOOD, _sig("GOOD"), pub=OTHER_PUB) == "untrusted_key"
    assert _reason(GOOD, _sig("GOOD"), board="esp32_generic") == "wrong_board"
    assert _reason(GOOD, _sig("GOOD"), target="mpy") == "wrong_target"
    assert _reason(SAME, _sig("SAME")) == "same_version"
    assert _reason(DOWN, _sig("DOWN")) == "downgrade"
    assert _reason(GOOD, _sig("GOOD"), running="0.3.0") == "downgrade"
    assert _reason(GOOD, _sig("GOOD"), running="0.2.0") == "same_version"
    assert _reason(BADPATH, _sig("BADPATH")) == "bad_path"
    assert _reason(DUP, _sig("DUP")) == "bad_path"
    assert _reason(GOOD, _sig("GOOD"), max_bytes=17) == "too_big"
    assert _check(GOOD, _sig("GOOD"), max_bytes=18)["payload_bytes"] == 18
    assert _reason(SUMBAD, _sig("SUMBAD")) == "bad_format"
    assert _reason(MPY, _sig("MPY"), board="esp32_generic", target="py") == "wrong_target"


def test_a_changed_byte_breaks_the_signature():
    tampered = GOOD.replace(b'"version":"0.2.0"', b'"version":"0.3.0"')
    assert _reason(tampered, _sig("GOOD")) == "bad_signature"
    assert _reason(GOOD, _sig("GOOD")[:63]) == "bad_signature"
    assert _reason(GOOD, b"") == "bad_signature"


def test_checks_run_in_the_contract_order():
    # Unsigned garbage never gets past format; a foreign alg is named before the key.
    assert _reason(b"{not json", b"") == "bad_format"
    assert _reason(b"[1]", b"") == "bad_format"
    assert _reason(GOOD.replace(b'"format":1', b'"format":2'), b"") == "bad_format"
    foreign = GOOD.replace(b"ecdsa-p256-sha256", b"ed25519").replace(b"7d39d2ed2b4c6f01", b"0000000000000000")
    assert _reason(foreign, b"") == "wrong_alg"
    assert _reason(GOOD.replace(b"7d39d2ed2b4c6f01", b"0000000000000000"), _sig("GOOD")) == "untrusted_key"
    # A forged board/version/path is caught by the signature, before its own check.
    assert _reason(GOOD.replace(b"host_sim", b"esp32_generic"), _sig("GOOD"), board="esp32_generic") == "bad_signature"
    # Signed but every later check would fail too: the board comes first.
    assert _reason(DOWN, _sig("DOWN"), board="x", target="mpy") == "wrong_board"
    assert _reason(DOWN, _sig("DOWN"), target="mpy") == "wrong_target"
    assert _reason(BADPATH, _sig("BADPATH"), running="0.2.0") == "same_version"


def test_malformed_fields_are_bad_format():
    base = json.loads(GOOD)

    def variant(name, value):  # type: ignore[no-untyped-def]
        m = dict(base)
        if value is None:
            m.pop(name)
        else:
            m[name] = value
        return json.dumps(m).encode()

    bad = (
        variant("format", None),
        variant("format", True),
        variant("version", "0.2"),
        variant("version", "v0.2.0"),
        variant("board", 7),
        variant("payload_bytes", -1),
        variant("payload_bytes", "18"),
        variant("files", []),
        variant("files", {"device/a.py": 1}),
        variant("files", [["device/a.py", 1]]),
        variant("files", [["device/a.py", -1, "00" * 32]]),
        variant("files", [["device/a.py", 1, "AB" * 32]]),
        variant("files", [[3, 1, "00" * 32]]),
        b"\xff\xfe",
        b"",
    )
    for mbytes in bad:
        assert _reason(mbytes, b"") == "bad_format", mbytes


def test_paths_must_be_plain_files_under_device_or_hw():
    problems = manifest._path_problem
    assert problems("device/ota/ecdsa.py", ".py") is None
    assert problems("hw/sim/world.py", ".py") is None
    assert problems("device/x.mpy", ".mpy") is None
    for path in (
        "main.py",
        "boot.py",
        "device",
        "device/",
        "/device/x.py",
        "device//x.py",
        "device/./x.py",
        "device/../x.py",
        "ota/a/device/x.py",
        "device\\x.py",
        "device/x y.py",
        "device/x.mpy",
        "lib/x.py",
    ):
        assert problems(path, ".py") is not None, path
    assert problems("device/x.py", ".mpy") is not None


def test_an_unusable_device_key_refuses_as_untrusted():
    broken = dict(PUB)
    broken["y"] = "00" * 32
    assert _reason(GOOD, _sig("GOOD"), pub=broken) == "untrusted_key"
    assert _reason(GOOD, _sig("GOOD"), pub=None) == "untrusted_key"


def test_target_here_names_this_interpreter():
    expected = "mpy" if sys.implementation.name == "micropython" else "py"
    assert manifest.target_here() == expected


def _bundle(mbytes, sig, payload):  # type: ignore[no-untyped-def]
    return bundlefmt.encode_head(mbytes, sig) + payload


def test_read_head_returns_manifest_signature_and_payload_offset():
    data = _bundle(GOOD, _sig("GOOD"), b"print('hi')\nX = 1\n")
    f = io.BytesIO(data)
    f.read(5)  # read_head seeks to the start itself
    mbytes, sig, offset = bundlefmt.read_head(f)
    assert mbytes == GOOD and sig == _sig("GOOD")
    assert offset == 7 + 4 + len(GOOD) + 64
    assert data[offset:] == b"print('hi')\nX = 1\n"
    assert _check(mbytes, sig)["files"][1][0] == "hw/x.py"


def test_read_head_refuses_short_and_foreign_files():
    data = _bundle(GOOD, _sig("GOOD"), b"")
    for cut in (0, 3, 7, 10, 11, 50, 11 + len(GOOD), len(data) - 1):
        exc = raises(BundleError, bundlefmt.read_head, io.BytesIO(data[:cut]))
        assert exc.reason == "truncated", (cut, exc.reason)
    for data_bad in (
        b"PK\x03\x04 a zip file, not a bundle",
        b"BPOTA2\n" + data[7:],
        bundlefmt.MAGIC + b"\x00\x00\x00\x00" + _sig("GOOD"),
        bundlefmt.MAGIC + b"\xff\xff\xff\xff" + GOOD,
    ):
        exc = raises(BundleError, bundlefmt.read_head, io.BytesIO(data_bad))
        assert exc.reason == "bad_format"


def test_bundle_error_carries_reason_and_detail():
    exc = BundleError("bad_hash", "device/a.py")
    assert exc.reason == "bad_hash" and exc.detail == "device/a.py"
    assert "bad_hash" in str(exc) and "device/a.py" in str(exc)
    assert BundleError("truncated").detail == ""


def test_parse_version_takes_only_three_plain_numbers():
    from device.version import VERSION, parse_version

    assert parse_version("0.1.0") == (0, 1, 0)
    assert parse_version("10.20.300") == (10, 20, 300)
    assert parse_version("0.10.0") > parse_version("0.9.9")
    assert len(parse_version(VERSION)) == 3
    for text in (
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "1..3",
        "a.b.c",
        "1.2.-3",
        "1.2.+3",
        " 1.2.3",
        "1.2.3 ",
        "1_0.2.3",
        None,
        123,
    ):
        raises(ValueError, parse_version, text)


def test_check_payload_hashes_each_file_in_place():
    payload = b"print('hi')\nX = 1\n"
    m = _check(GOOD, _sig("GOOD"))
    data = _bundle(GOOD, _sig("GOOD"), payload)
    _, _, offset = bundlefmt.read_head(io.BytesIO(data))
    bundlefmt.check_payload(io.BytesIO(data), m, offset, chunk_bytes=5)
    exc = raises(BundleError, bundlefmt.check_payload, io.BytesIO(data[:-1]), m, offset)
    assert exc.reason == "truncated"
    bad = bytearray(data)
    bad[-1] ^= 1
    exc = raises(BundleError, bundlefmt.check_payload, io.BytesIO(bytes(bad)), m, offset)
    assert exc.reason == "bad_hash" and "hw/x.py" in exc.detail
    exc = raises(BundleError, bundlefmt.check_payload, io.BytesIO(data + b"!"), m, offset)
    assert exc.reason == "bad_format"
