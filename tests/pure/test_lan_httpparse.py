"""The LAN API's request parser: limits, strictness, chunking (pytest and MicroPython alike)."""

from device.lan.httpparse import HttpError, RequestParser, parse_query, percent_decode
from tests.pure._check import raises

LINE, HEADER, BODY = 128, 512, 64


def _parser() -> RequestParser:
    return RequestParser(LINE, HEADER, BODY)


def _parse(data: bytes):  # type: ignore[no-untyped-def]
    return _parser().feed(data)


def _status(data: bytes) -> int:
    return raises(HttpError, _parse, data).status  # type: ignore[no-any-return]


def test_a_get_with_query_and_headers() -> None:
    req = _parse(b"GET /v1/st%61te?a=1&b=x+y&c=%2F HTTP/1.1\r\nHost: dev\r\nX-Bp-Ts: 12\r\n\r\n")
    assert req.method == "GET"
    assert req.target == "/v1/st%61te?a=1&b=x+y&c=%2F"
    assert req.path == "/v1/state"
    assert req.query == {"a": "1", "b": "x y", "c": "/"}
    assert req.version == "HTTP/1.1"
    assert req.headers == {"host": "dev", "x-bp-ts": "12"}
    assert req.body == b""


def test_a_post_body_is_exactly_content_length() -> None:
    req = _parse(b'POST /v1/thermostat HTTP/1.1\r\nHost: d\r\nContent-Length: 6\r\n\r\n{"a":1}trailing')
    assert req.body == b'{"a":1'


def test_any_chunking_gives_the_same_request() -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nabc"
    for size in (1, 2, 3, 7, len(raw)):
        parser = _parser()
        got = None
        for i in range(0, len(raw), size):
            assert got is None  # nothing before the last byte
            got = parser.feed(raw[i : i + size])
        assert got is not None and got.body == b"abc" and got.path == "/x"


def test_incomplete_input_asks_for_more() -> None:
    parser = _parser()
    assert not parser.started
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: d\r\n") is None
    assert parser.started
    assert parser.feed(b"\r") is None
    assert parser.feed(b"\n").path == "/"


def test_bare_lf_and_repeated_headers() -> None:
    req = _parse(b"GET / HTTP/1.1\nHost: d\nA: 1\na:  2 \n\n")
    assert req.headers["a"] == "1, 2"


def test_leading_blank_lines_are_tolerated_a_few_times() -> None:
    assert _parse(b"\r\n\r\nGET / HTTP/1.0\r\n\r\n").path == "/"
    assert _status(b"\r\n" * 10 + b"GET / HTTP/1.0\r\n\r\n") == 400


def test_request_line_limit_is_refused_before_the_line_ends() -> None:
    parser = _parser()
    exc = raises(HttpError, parser.feed, b"GET /" + b"a" * LINE)
    assert exc.status == 414 and exc.code == "uri_too_long"
    # exactly at the limit is fine
    target = b"/" + b"a" * (LINE - len(b"GET  HTTP/1.0") - 1)
    line = b"GET " + target + b" HTTP/1.0"
    assert len(line) == LINE
    assert _parse(line + b"\r\n\r\n").path == target.decode()


def test_header_limits() -> None:
    big = b"GET / HTTP/1.1\r\nHost: d\r\nX: " + b"v" * HEADER + b"\r\n\r\n"
    assert _status(big) == 431
    many = b"GET / HTTP/1.1\r\nHost: d\r\n" + b"X: 1\r\n" * 40 + b"\r\n"
    assert _status(many) == 431
    # the limit bites while the bytes still arrive
    parser = _parser()
    parser.feed(b"GET / HTTP/1.1\r\n")
    assert raises(HttpError, parser.feed, b"X: " + b"v" * HEADER).status == 431


def test_body_limits_and_lengths() -> None:
    assert _status(b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 65\r\n\r\n") == 413
    assert _status(b"POST / HTTP/1.1\r\nHost: d\r\n\r\n") == 411
    assert _status(b"PUT / HTTP/1.0\r\n\r\n") == 411
    assert _status(b"POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n") == 411
    assert _status(b"POST / HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: gzip\r\n\r\n") == 501
    for bad in (b"-1", b"1e3", b"", b"0x10", b"5, 6", b"99999999999"):
        assert _status(b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: " + bad + b"\r\n\r\n") == 400, bad
    same = _parse(b"POST / HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
    assert same.body == b"ok"
    assert _parse(b"GET / HTTP/1.1\r\nHost: d\r\n\r\n").body == b""


def test_bad_syntax_is_400() -> None:
    bad = (
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: d\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.x\r\nHost: d\r\n\r\n",
        b"GET / FTP/1.1\r\nHost: d\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /%zz HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /%ff HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET /%00 HTTP/1.1\r\nHost: d\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: d\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : d\r\n\r\n",
        b"GET / HTTP/1.1\r\n: d\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: d\x01\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: d\xc3\xa9\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: d\r\n\r\n",
    )
    for data in bad:
        exc = raises(HttpError, _parse, data)
        assert exc.status == 400 and exc.code == "bad_request", data


def test_http2_is_505() -> None:
    assert _status(b"GET / HTTP/2.0\r\nHost: d\r\n\r\n") == 505


def test_after_an_error_or_a_request_the_parser_stays_put() -> None:
    parser = _parser()
    raises(HttpError, parser.feed, b"BAD\r\n")
    parser2 = _parser()
    req = parser2.feed(b"GET / HTTP/1.0\r\n\r\n")
    assert parser2.feed(b"GET /other HTTP/1.0\r\n\r\n") is req  # one request per connection


def test_percent_decoding_and_query() -> None:
    assert percent_decode("/a%20b%C3%A9") == "/a b\u00e9"
    assert percent_decode("a+b") == "a+b"
    assert percent_decode("a+b", True) == "a b"
    for bad in ("%", "%4", "%g0", "%c3"):
        assert raises(HttpError, percent_decode, bad).status == 400
    assert parse_query("a=1&&b&a=2") == {"a": "2", "b": ""}


def test_never_raises_anything_but_http_error() -> None:
    # A fixed, portable spread of awkward inputs; the random fuzz lives in tests/unit.
    seeds = (b"", b"\r\n", b"\x00" * 300, b"GET", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b"%" * 200)
    for data in seeds:
        for cut in range(0, len(data) + 1, 37):
            parser = _parser()
            try:
                parser.feed(data[:cut])
                parser.feed(data[cut:])
            except HttpError:
                pass
