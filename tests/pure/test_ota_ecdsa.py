"""ECDSA P-256 verification (device/ota/ecdsa.py) against vectors signed by `cryptography`.

The vectors were made on the host with ``tools.otakey.sign`` and a fixed key
(d = 0x1f2e3d4c...7988 repeated), then pasted here so the test also runs
under MicroPython, which cannot sign.
"""

import binascii
import hashlib

from device.ota import ecdsa
from device.ota.steps import run as steps_run
from tests.pure._check import raises
from tests.pure._ota_support import OTHER_PUB, PUB

_SIGS = (
    (
        b"",
        "2f889d59dc2bd9101e08f3f97fd3dabf00fa3f5169f29c5900a2b763362cf98b"
        "fe836a4352b51fe3f1d8740bf082a86c6d2b6008b18c9f72b00c8615a3e16aef",
    ),
    (
        b"abc",
        "ad9f9f6ddf67a1651169b87aa68e0c8af48e5e1603ed31fc9e1558c3438aca26"
        "e88f73525c4d077f45fa46e4b99dfa19517f4930c1362146a5100b33f1de642a",
    ),
    (
        b"brickproof ota bundle manifest",
        "0739fbfcc2df4b5a572eff73374d757ff24861ce2470199690ca67c9f50b7c65"
        "a4ade7558f84d63166c055767f040669b6e8e10487d4a287e06a05abccbb0f84",
    ),
    (
        bytes(range(256)),
        "05477fdbbe4a6029d6328df000c2aeec33e9066a1fe897eddd2d2ca212844605"
        "e8326f776ee308eb438b9bba8896d18c3cd4ebe39cfa97aa45abe5729e030b16",
    ),
)
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF


def _vectors():
    out = []
    for msg, sig_hex in _SIGS:
        out.append((msg, hashlib.sha256(msg).digest(), binascii.unhexlify(sig_hex)))
    return out


def _key():
    _, x, y = ecdsa.load_pub(PUB)
    return x, y


def _rs(r, s):
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_signatures_made_by_cryptography_verify():
    x, y = _key()
    for _, digest, sig in _vectors():
        assert ecdsa.verify(x, y, digest, sig) is True


def test_verify_in_steps_hands_back_control_sixteen_times():
    x, y = _key()
    _, digest, sig = _vectors()[0]
    steps = ecdsa.verify_steps(x, y, digest, sig)
    turns = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            verdict = done.value
            break
        turns += 1
    assert verdict is True and turns == 16
    assert steps_run(ecdsa.verify_steps(x, y, digest, b"\x00" * 64)) is False  # refused before any step


def test_a_signature_does_not_verify_another_message_or_key():
    x, y = _key()
    _, ox, oy = ecdsa.load_pub(OTHER_PUB)
    vectors = _vectors()
    for i, (_, digest, sig) in enumerate(vectors):
        other_digest = vectors[(i + 1) % len(vectors)][1]
        assert ecdsa.verify(x, y, other_digest, sig) is False
        assert ecdsa.verify(ox, oy, digest, sig) is False


def test_a_flipped_bit_anywhere_fails():
    x, y = _key()
    _, digest, sig = _vectors()[2]
    for i in range(0, 64 * 8, 37):  # a spread of bit positions in r and s (every bit: the unit test)
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        assert ecdsa.verify(x, y, digest, bytes(bad)) is False
    for i in range(0, 32 * 8, 29):
        bad = bytearray(digest)
        bad[i // 8] ^= 1 << (i % 8)
        assert ecdsa.verify(x, y, bytes(bad), sig) is False


def test_the_mirror_signature_r_n_minus_s_also_verifies():
    # ECDSA is malleable: (r, n - s) is valid too. The bundle hash, not the
    # signature bytes, names a bundle, so this is harmless; the test pins it.
    x, y = _key()
    _, digest, sig = _vectors()[1]
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    assert ecdsa.verify(x, y, digest, _rs(r, _N - s)) is True


def test_r_and_s_out_of_range_are_refused():
    x, y = _key()
    _, digest, sig = _vectors()[1]
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    for rr, ss in ((0, s), (r, 0), (_N, s), (r, _N), (r + _N, s) if r + _N < 1 << 256 else (0, 0)):
        assert ecdsa.verify(x, y, digest, _rs(rr, ss)) is False
    assert ecdsa.verify(x, y, digest, b"\xff" * 64) is False
    assert ecdsa.verify(x, y, digest, bytes(64)) is False


def test_bad_inputs_return_false_and_never_raise():
    x, y = _key()
    _, digest, sig = _vectors()[0]
    cases = (
        (x, y, digest, sig[:63]),
        (x, y, digest, sig + b"\x00"),
        (x, y, digest[:31], sig),
        (x, y, None, sig),
        (x, y, digest, None),
        (x, y, "text" * 8, sig),
        (None, y, digest, sig),
        (x, "y", digest, sig),
        (True, y, digest, sig),
        (-x, y, digest, sig),
        (x + _P, y, digest, sig),
        (x, y + 1, digest, sig),  # not on the curve
        (0, 0, digest, sig),
        (x, _P - y, digest, sig),  # on the curve (the negated key), but not the signer
    )
    for case in cases:
        assert ecdsa.verify(case[0], case[1], case[2], case[3]) is False


def test_load_pub_parses_and_checks_the_key_json():
    kid, x, y = ecdsa.load_pub(PUB)
    assert kid == "7d39d2ed2b4c6f01"
    assert x == int(PUB["x"], 16) and y == int(PUB["y"], 16)
    assert ecdsa.on_curve(x, y)
    assert ecdsa.key_id(x, y) == kid


def test_load_pub_refuses_what_is_not_a_p256_key():
    def variant(**changes):  # type: ignore[no-untyped-def]
        data = dict(PUB)
        for name, value in changes.items():
            if value is None:
                data.pop(name)
            else:
                data[name] = value
        return data

    bad = (
        None,
        [],
        variant(alg="ecdsa-p384-sha384"),
        variant(alg=None),
        variant(x=None),
        variant(x=PUB["x"][:-1]),
        variant(x=PUB["x"].upper()),
        variant(x="+" + PUB["x"][1:]),
        variant(y=PUB["y"][:-1] + "0"),  # not on the curve
        variant(kid="0000000000000000"),
        variant(kid=None),
    )
    for data in bad:
        raises(ValueError, ecdsa.load_pub, data)
