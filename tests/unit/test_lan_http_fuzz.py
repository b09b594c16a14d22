"""Fuzzing the LAN API's request parser: random bytes, mutated requests, any chunking.

Properties: ``feed`` raises nothing but ``HttpError`` (with a 4xx/5xx status);
the outcome does not depend on how the bytes were split; a well-formed request
comes back field for field; the buffer never grows past the limits.
"""

from __future__ import annotations

import random
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.lan.httpparse import HttpError, Request, RequestParser
from tools.bench.lan_fuzz import mutate  # the bench's mutator, on fewer inputs

LINE, HEADER, BODY = 256, 1024, 512
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(chunks: list[bytes]) -> object:
    """What a parser makes of these chunks: a request's fields, an error status, or None (needs more)."""
    parser = RequestParser(LINE, HEADER, BODY)
    try:
        req = None
        for chunk in chunks:
            req = parser.feed(chunk)
            # memory stays bounded whatever arrives
            assert len(parser._buf) <= LINE + HEADER + BODY + len(chunk)
            if req is not None:
                break
    except HttpError as exc:
        assert 400 <= exc.status <= 505 and exc.code and exc.message
        return ("error", exc.status)
    if req is None:
        return None
    assert isinstance(req, Request)
    return (
        req.method,
        req.target,
        req.path,
        sorted(req.query.items()),
        req.version,
        sorted(req.headers.items()),
        req.body,
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


@FUZZ
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_only_http_errors_and_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    assert outcome([data]) == outcome(split(data, cuts))


_token = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)
_segment = st.text(alphabet=string.ascii_letters + string.digits + "-._~%20", min_size=0, max_size=10)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict]:
    method = draw(st.sampled_from(["GET", "POST", "DELETE", "PATCH"]))
    path = "/" + "/".join(draw(st.lists(_segment.filter(lambda s: "%" not in s), max_size=4)))
    names = draw(st.lists(_token, max_size=6, unique_by=str.lower))
    headers = {n.lower(): draw(st.text(alphabet=string.ascii_letters + " =;,", max_size=20)).strip() for n in names}
    headers.pop("content-length", None)
    headers.pop("transfer-encoding", None)
    headers["host"] = "dev"
    body = draw(st.binary(max_size=BODY)) if method in ("POST", "PATCH") else b""
    if method in ("POST", "PATCH") or body:
        headers["content-length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers.items()) + "\r\n"
    return head.encode() + body, {"method": method, "path": path, "headers": headers, "body": body}


@FUZZ
@given(requests(), st.lists(st.integers(min_value=0), max_size=6))
def test_well_formed_requests_come_back_field_for_field(made: tuple[bytes, dict], cuts: list[int]) -> None:
    raw, want = made
    got = outcome(split(raw, cuts))
    assert got is not None and got[0] != "error", got
    method, _target, path, _query, version, headers, body = got  # type: ignore[misc]
    assert (method, path, version, body) == (want["method"], want["path"], "HTTP/1.1", want["body"])
    assert dict(headers) == want["headers"]


SEEDS = [
    b"GET /v1/info HTTP/1.1\r\nHost: dev\r\n\r\n",
    b'POST /v1/thermostat HTTP/1.1\r\nHost: dev\r\nContent-Length: 19\r\n\r\n{"setpoint_c": 21.5}',
    b"POST /v1/commands/bed.stop HTTP/1.0\r\nContent-Length: 0\r\nAuthorization: Bearer abc.def\r\n\r\n",
]


def test_mutations_of_valid_requests_3000() -> None:
    rng = random.Random(7)
    for i in range(3000):
        raw = mutate(rng, SEEDS[i % len(SEEDS)])
        cuts = [rng.randrange(len(raw) + 1) for _ in range(rng.randint(0, 5))]
        assert outcome([raw]) == outcome(split(raw, cuts)), raw


def test_random_bytes_3000() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
        outcome([raw])
        # and a request line that looks right followed by garbage
        outcome([b"GET / HTTP/1.1\r\n" + raw])
