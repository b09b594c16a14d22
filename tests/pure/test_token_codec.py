"""LAN tokens, the pure parts: HMAC, codec, replay guard, failure limit (pytest and MicroPython)."""

import binascii

from device.lan import tokencodec as codec
from device.lan.hmac256 import equal, hmac_sha256
from device.lan.replay import ReplayGuard
from device.lan.tokenlimit import FailureLimiter
from tests.pure._check import raises

ROOT = bytes(range(32))
DEV = "th-01"
NOW_S = 1800000000  # 2027
TID = b"\x01\x02\x03\x04\x05\x06\x07\x08"


# -- HMAC -------------------------------------------------------------------------


def test_hmac_matches_rfc4231_vectors():
    key = b"\x0b" * 20
    assert binascii.hexlify(hmac_sha256(key, b"Hi There")) == (
        b"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )
    assert binascii.hexlify(hmac_sha256(b"Jefe", b"what do ya want for nothing?")) == (
        b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    big = b"\xaa" * 131  # longer than a block: hashed first
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert binascii.hexlify(hmac_sha256(big, msg)) == (
        b"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


def test_equal_compares_whole_values():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")
    assert equal(b"", b"")


# -- codec ------------------------------------------------------------------------


def test_base64url_round_trips_and_is_strict():
    for n in range(0, 40):
        data = bytes(range(n))
        text = codec.b64u_encode(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert codec.b64u_decode(text) == data
    for bad in ("ab!c", "a", "abc=", "ab+c", "AB==", "AQ=="):
        raises(codec.TokenError, codec.b64u_decode, bad)
    raises(codec.TokenError, codec.b64u_decode, "AR")  # spare bits set: not the canonical "AQ"


def test_token_round_trips_its_claims():
    token = codec.mint(ROOT, DEV, 3, NOW_S, NOW_S + 86400, TID, 2)
    assert token.startswith("bp1.") and len(token) <= codec.MAX_TOKEN_CHARS
    claims, payload, tag = codec.parse(token)
    assert claims == {
        "v": 1,
        "key_gen": 2,
        "scopes": 3,
        "iat": NOW_S,
        "exp": NOW_S + 86400,
        "tid": "0102030405060708",
        "device": DEV,
    }
    assert codec.tag_ok(codec.gen_key(ROOT, 2), payload, tag)
    assert not codec.tag_ok(codec.gen_key(ROOT, 1), payload, tag)
    assert codec.scope_names(3) == ["read", "control"]


def test_codec_refuses_bad_claims():
    raises(codec.TokenError, codec.mint, ROOT, "bad id!", 1, NOW_S, NOW_S + 1, TID)
    raises(codec.TokenError, codec.mint, ROOT, DEV, 0, NOW_S, NOW_S + 1, TID)
    raises(codec.TokenError, codec.mint, ROOT, DEV, 1, NOW_S, NOW_S, TID)
    raises(codec.TokenError, codec.mint, ROOT, DEV, 1, NOW_S, NOW_S + 1, b"short")
    raises(codec.TokenError, codec.scope_mask, ["read", "root"])
    raises(codec.TokenError, codec.scope_mask, [])


def test_truncated_and_garbage_tokens_are_malformed():
    token = codec.mint(ROOT, DEV, 1, NOW_S, NOW_S + 60, TID)
    for cut in range(len(token)):
        try:
            codec.parse(token[:cut])
        except codec.TokenError:
            continue
        raise AssertionError("a token cut to %d characters parsed" % cut)
    for junk in ("", "bp1.", "bp2." + token[4:], token + "A", "Bearer", "bp1.%%%%", 42):
        raises(codec.TokenError, codec.parse, junk)


def test_every_flipped_character_fails_parse_or_mac():
    token = codec.mint(ROOT, DEV, 1, NOW_S, NOW_S + 60, TID)
    parsed = 0
    for i in range(4, len(token)):
        for ch in "AZaz09-_":
            if ch == token[i]:
                continue
            try:
                claims, payload, tag = codec.parse(token[:i] + ch + token[i + 1 :])
            except codec.TokenError:
                continue
            parsed += 1  # canonical base64url: another string is other bytes, so the MAC must fail
            assert not codec.tag_ok(codec.gen_key(ROOT, claims["key_gen"]), payload, tag)
    assert parsed > 100


def test_canonical_string_names_every_signed_part():
    text = codec.canonical("POST", "/v1/thermostat?x=1", 7, 12345, "nonce-01", b'{"a":1}')
    lines = text.decode().split("\n")
    assert lines[:6] == ["BP1-REQ", "POST", "/v1/thermostat?x=1", "7", "12345", "nonce-01"]
    assert len(lines[6]) == 64
    empty = codec.canonical("GET", "/", 1, 1, "nonce-01", b"").decode().split("\n")[6]
    assert empty == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# -- replay guard and limiter ------------------------------------------------------


def test_replay_guard_window_nonces_and_boot():
    g = ReplayGuard(boot=3, window_ms=1000, max_nonces=4)
    assert g.check(2, 5000, "n1", 5000) == "wrong_boot"
    assert g.check(3, 3999, "n1", 5000) == "skewed"
    assert g.check(3, 6001, "n1", 5000) == "skewed"
    assert g.check(3, 5000, "n1", 5000) is None
    g.record(5000, "n1", 5000)
    assert g.check(3, 5000, "n1", 5100) == "replayed"
    assert g.check(3, 5000, "n2", 5100) is None


def test_replay_guard_full_raises_the_floor_instead_of_forgetting():
    g = ReplayGuard(boot=1, window_ms=10000, max_nonces=3)
    for i in range(5):
        g.record(100 + i, "n%d" % i, 200)
    assert len(g.seen) == 3
    assert g.floor == 101  # n0 and n1 were forgotten: nothing stamped at or before 101 passes
    assert g.check(1, 101, "fresh-nonce", 200) == "replayed"
    assert g.check(1, 102, "n2", 200) == "replayed"
    assert g.check(1, 105, "fresh-nonce", 200) is None


def test_replay_guard_restores_only_its_own_boot_and_closes_on_damage():
    g = ReplayGuard(boot=5, window_ms=1000)
    g.record(900, "abcdefgh", 1000)
    saved = g.to_json()
    same = ReplayGuard(boot=5, window_ms=1000)
    same.restore(saved, 1000)
    assert same.check(5, 900, "abcdefgh", 1000) == "replayed"
    other = ReplayGuard(boot=6, window_ms=1000)
    other.restore(saved, 1000)
    assert other.seen == {} and other.floor == -1
    damaged = ReplayGuard(boot=5, window_ms=1000)
    damaged.restore({"boot": 5, "floor": "x", "seen": 3}, 1000)
    assert damaged.check(5, 1000, "abcdefgh", 1000) == "replayed"  # everything up to now closed
    assert damaged.check(5, 1001, "abcdefgh", 1000) is None


def test_failure_limiter_blocks_after_burst_and_refills():
    lim = FailureLimiter(burst=3, refill_ms=1000, max_peers=2)
    for _ in range(3):
        assert lim.retry_after_ms("a", 0) == 0
        lim.fail("a", 0)
    assert lim.retry_after_ms("a", 0) == 1000  # burst failures: blocked, one more try per refill
    assert lim.retry_after_ms("a", 999) == 1
    assert lim.retry_after_ms("b", 0) == 0  # another peer is not blocked
    assert lim.retry_after_ms("a", 1000) == 0
    lim.fail("b", 0)
    lim.fail("c", 0)  # table full: c shares the "*" bucket
    assert "c" not in lim._tat and "*" in lim._tat
