"""device/ota/ecdsa.py against `cryptography` on random keys, messages and garbage (hypothesis)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.ota import ecdsa
from tools import otakey

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_KEYS = [ec.derive_private_key(d, ec.SECP256R1()) for d in (1, 2, _N - 1, 0xC0FFEE, 2**200 + 12345)]
_keys = st.sampled_from(_KEYS)
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _xy(key: ec.EllipticCurvePrivateKey) -> tuple[int, int]:
    numbers = key.public_key().public_numbers()
    return numbers.x, numbers.y


@_SETTINGS
@given(key=_keys, message=st.binary(max_size=300))
def test_any_message_signed_by_cryptography_verifies(key: ec.EllipticCurvePrivateKey, message: bytes) -> None:
    x, y = _xy(key)
    sig = otakey.sign(key, message)
    assert ecdsa.verify(x, y, hashlib.sha256(message).digest(), sig) is True


@_SETTINGS
@given(d=st.integers(min_value=1, max_value=_N - 1), message=st.binary(max_size=64))
def test_random_keys_verify_and_agree_with_load_pub(d: int, message: bytes) -> None:
    key = ec.derive_private_key(d, ec.SECP256R1())
    _kid, x, y = ecdsa.load_pub(otakey.pub_dict(key))
    assert (x, y) == _xy(key)
    assert ecdsa.verify(x, y, hashlib.sha256(message).digest(), otakey.sign(key, message))


@pytest.mark.parametrize("key", _KEYS[:2])
def test_every_single_bit_flip_of_signature_or_digest_fails(key: ec.EllipticCurvePrivateKey) -> None:
    x, y = _xy(key)
    digest = hashlib.sha256(b"bit flips").digest()
    sig = otakey.sign(key, b"bit flips")
    assert ecdsa.verify(x, y, digest, sig)
    for i in range(64 * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        assert not ecdsa.verify(x, y, digest, bytes(bad)), i
    for i in range(32 * 8):
        bad = bytearray(digest)
        bad[i // 8] ^= 1 << (i % 8)
        assert not ecdsa.verify(x, y, bytes(bad), sig), i


@_SETTINGS
@given(key=_keys, message=st.binary(max_size=64), flip=st.integers(min_value=0, max_value=64 * 8 - 1))
def test_cryptography_and_ecdsa_agree_on_tampered_signatures(
    key: ec.EllipticCurvePrivateKey, message: bytes, flip: int
) -> None:
    from cryptography.exceptions import InvalidSignature

    x, y = _xy(key)
    digest = hashlib.sha256(message).digest()
    bad = bytearray(otakey.sign(key, message))
    bad[flip // 8] ^= 1 << (flip % 8)
    r, s = int.from_bytes(bad[:32], "big"), int.from_bytes(bad[32:], "big")
    try:
        if not (0 < r < _N and 0 < s < _N):
            raise InvalidSignature
        key.public_key().verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        reference = True
    except InvalidSignature:
        reference = False
    assert ecdsa.verify(x, y, digest, bytes(bad)) is reference


@_SETTINGS
@given(
    x=st.one_of(st.integers(min_value=-(2**300), max_value=2**300), st.none(), st.text(max_size=3)),
    y=st.one_of(st.integers(min_value=-(2**300), max_value=2**300), st.none(), st.floats()),
    digest=st.one_of(st.binary(max_size=40), st.none(), st.text(max_size=40)),
    sig=st.one_of(st.binary(max_size=70), st.binary(min_size=64, max_size=64), st.none()),
)
def test_garbage_never_raises(x: object, y: object, digest: object, sig: object) -> None:
    assert ecdsa.verify(x, y, digest, sig) in (True, False)


@_SETTINGS
@given(key=_keys, message=st.binary(max_size=32))
def test_a_signature_under_another_key_fails(key: ec.EllipticCurvePrivateKey, message: bytes) -> None:
    other = _KEYS[(_KEYS.index(key) + 1) % len(_KEYS)]
    x, y = _xy(other)
    assert not ecdsa.verify(x, y, hashlib.sha256(message).digest(), otakey.sign(key, message))


@_SETTINGS
@given(a=st.integers(min_value=1, max_value=2**300), modulus=st.sampled_from((_P, _N)))
def test_own_modular_inverse_matches_pow(a: int, modulus: int) -> None:
    if a % modulus == 0:
        return
    assert ecdsa._inverse(a, modulus) == pow(a, -1, modulus)


@_SETTINGS
@given(key=_keys)
def test_public_keys_are_on_the_curve_and_neighbours_are_not(key: ec.EllipticCurvePrivateKey) -> None:
    x, y = _xy(key)
    assert ecdsa.on_curve(x, y)
    assert not ecdsa.on_curve(x, (y + 1) % _P)
