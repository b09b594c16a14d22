"""Strict, incremental HTTP/1.1 request parsing under the board's size limits.

``RequestParser(limits).feed(data)`` takes the bytes of one connection in any
chunking and returns a ``Request`` once the request line, the headers and the
body (``Content-Length`` only) are in, or None while more is needed. Anything
wrong raises ``HttpError(status, code, message)`` as soon as the bytes show it
(an over-long line is refused before its end arrives), and nothing else is
ever raised, whatever the bytes: the server answers the error and closes.

What is refused (status, code):
* request line over ``max_line_bytes``: 414 ``uri_too_long``;
* header section over ``max_header_bytes`` or more than ``MAX_HEADERS`` fields: 431;
* body over ``max_body_bytes``: 413; a POST/PUT/PATCH with no length: 411;
* ``Transfer-Encoding: chunked``: 411 (send a length), any other coding: 501;
* HTTP/2 and later: 505; bad syntax, control or non-ASCII bytes in the head,
  a bad or ambiguous ``Content-Length``, a bad percent escape, no ``Host``
  on HTTP/1.1: 400 ``bad_request``.

Header names are lower-cased; a repeated header keeps its values joined by
", " (RFC 9110). The path is percent-decoded as UTF-8; the query is parsed
into a dict (``+`` is a space, the last value of a name wins).
"""

from device.compat import const

MAX_HEADERS = const(32)
MAX_BLANK_LINES = const(4)  # blank lines tolerated before the request line (RFC 9112 2.2)
_BODY_METHODS = ("POST", "PUT", "PATCH")
# RFC 9110 token characters beyond letters and digits.
_TOKEN_EXTRA = b"!#$%&'*+-.^_`|~"

_LINE = const(0)
_HEADERS = const(1)
_BODY = const(2)
_DONE = const(3)


class HttpError(Exception):
    """A request the server refuses: the status to answer, a short code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message


class Request:
    """One parsed request. ``headers``: lower-case name -> value; ``body``: bytes."""

    def __init__(self, method: str, target: str, path: str, query: dict, version: str, headers: dict) -> None:
        self.method = method
        self.target = target  # as sent (what a signature covers)
        self.path = path  # percent-decoded
        self.query = query
        self.version = version
        self.headers = headers
        self.body = b""
        self.peer = None  # the client's address, set by the server (the verifier rate-limits by it)

    def __repr__(self) -> str:
        return "Request(%s %s)" % (self.method, self.target)


def _bad(message: str) -> HttpError:
    return HttpError(400, "bad_request", message)


def _is_token(data) -> bool:  # type: ignore[no-untyped-def]
    if not data:
        return False
    for b in data:
        if not (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122 or b in _TOKEN_EXTRA):
            return False
    return True


def _is_visible(data) -> bool:  # type: ignore[no-untyped-def]
    """Printable ASCII, space and tab only: the head is decoded as ASCII, nothing else gets in."""
    for b in data:
        if not (32 <= b <= 126 or b == 9):
            return False
    return True


def _hex_value(b: int) -> int:
    if 48 <= b <= 57:
        return b - 48
    if 97 <= b <= 102 or 65 <= b <= 70:
        return (b | 32) - 87
    return -1


def percent_decode(text: str, plus_is_space: bool = False) -> str:
    """``%XX`` escapes to bytes, then UTF-8; raises ``HttpError`` 400 for a bad escape or bad UTF-8."""
    if "%" not in text and not (plus_is_space and "+" in text):
        return text
    out = bytearray()
    raw = text.encode()
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 37:  # '%'
            hi = _hex_value(raw[i + 1]) if i + 1 < n else -1
            lo = _hex_value(raw[i + 2]) if i + 2 < n else -1
            if hi < 0 or lo < 0:
                raise _bad("bad percent escape in %r" % (text,))
            out.append(hi * 16 + lo)
            i += 3
            continue
        out.append(32 if b == 43 and plus_is_space else b)
        i += 1
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise _bad("percent escapes are not UTF-8 in %r" % (text,)) from None


def parse_query(query: str) -> dict:
    out = {}
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out[percent_decode(name, True)] = percent_decode(value, True)
    return out


def _split_target(target: str) -> tuple:
    if not target.startswith("/"):
        raise _bad("only origin-form targets (starting with '/') are served")
    path, _, query = target.partition("?")
    path = percent_decode(path)
    if "\x00" in path:
        raise _bad("NUL in path")
    return path, parse_query(query)


class RequestParser:
    """Parses one request from bytes fed in any chunking (see the module docstring)."""

    def __init__(self, max_line_bytes: int, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_line = max_line_bytes
        self.max_header = max_header_bytes
        self.max_body = max_body_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the bytes not parsed yet
        self._state = _LINE
        self._blank = 0
        self._header_bytes = 0
        self._need = 0
        self.request: Request | None = None
        self._head: tuple | None = None  # (method, target, version) until the headers are in
        self._headers: dict = {}
        self._count = 0

    @property
    def started(self) -> bool:
        """True once any byte of a request arrived (a silent connection is not a slow client)."""
        return self._state != _LINE or self._blank > 0 or len(self._buf) > self._pos

    def feed(self, data) -> Request | None:  # type: ignore[no-untyped-def]
        """Add bytes; return the request once complete. Raises only ``HttpError``."""
        if self._state == _DONE:
            return self.request  # anything after one request is ignored (Connection: close)
        try:
            if self._pos:  # drop the lines already taken: one copy per feed, not one per line
                self._buf = self._buf[self._pos :]
                self._pos = 0
            self._buf.extend(data)
            return self._advance()
        except HttpError:
            self._state = _DONE
            raise
        except Exception as exc:  # a parser bug must still be an answer, not a dead connection
            self._state = _DONE
            raise HttpError(400, "bad_request", "unparseable request (%s)" % (type(exc).__name__,)) from None

    def _advance(self) -> Request | None:
        while self._state in (_LINE, _HEADERS):
            limit = self.max_line if self._state == _LINE else self.max_header - self._header_bytes
            line = self._take_line(limit)
            if line is None:
                return None
            if self._state == _LINE:
                self._request_line(line)
            else:
                self._header_line(line)
        if self._state == _BODY:
            pos = self._pos
            if len(self._buf) - pos < self._need:
                return None
            req = self.request
            req.body = bytes(self._buf[pos : pos + self._need])  # type: ignore[union-attr]
            self._buf = bytearray()
            self._pos = 0
            self._state = _DONE
        return self.request

    def _take_line(self, limit: int):  # type: ignore[no-untyped-def]
        """The next line without its line end, or None until it is in; over ``limit`` bytes is refused.

        The request line's limit counts its text; the headers' counts every byte of the section.
        """
        buf = self._buf
        pos = self._pos  # lines are taken by moving this, not by copying the rest of the buffer
        in_line = self._state == _LINE
        end = buf.find(b"\n", pos)
        if end < 0:
            if len(buf) - pos > limit + (1 if in_line else 0):  # room for a CR whose LF is still to come
                raise self._too_long()
            return None
        taken = end + 1 - pos  # the line with its line end
        stop = end if (end == pos or buf[end - 1] != 13) else end - 1
        if (stop - pos if in_line else taken) > limit:
            raise self._too_long()
        line = bytes(buf[pos:stop])
        self._pos = end + 1
        if not in_line:
            self._header_bytes += taken
        return line

    def _too_long(self) -> HttpError:
        if self._state == _LINE:
            return HttpError(414, "uri_too_long", "request line longer than %d bytes" % self.max_line)
        return HttpError(431, "headers_too_large", "header section larger than %d bytes" % self.max_header)

    def _request_line(self, line: bytes) -> None:
        if not line:
            self._blank += 1
            if self._blank > MAX_BLANK_LINES:
                raise _bad("blank lines instead of a request line")
            return
        if not _is_visible(line) or b"\t" in line:
            raise _bad("control or non-ASCII bytes in the request line")
        parts = line.split(b" ")
        if len(parts) != 3:
            raise _bad("the request line must be METHOD SP TARGET SP VERSION")
        method, target, version = parts
        if not _is_token(method):
            raise _bad("bad method")
        if not target:
            raise _bad("empty target")
        if not version.startswith(b"HTTP/") or len(version) != 8 or version[6:7] != b".":
            raise _bad("bad HTTP version")
        major, minor = version[5:6], version[7:8]
        if not (b"0" <= major <= b"9" and b"0" <= minor <= b"9"):
            raise _bad("bad HTTP version")
        if major != b"1":
            raise HttpError(505, "http_version", "only HTTP/1.0 and HTTP/1.1 are served")
        self._head = (method.decode(), target.decode(), version.decode())
        self._state = _HEADERS

    def _header_line(self, line: bytes) -> None:
        if line:
            self._count += 1
            if self._count > MAX_HEADERS:
                raise HttpError(431, "headers_too_large", "more than %d header fields" % MAX_HEADERS)
            if line[0] in (32, 9):
                raise _bad("obsolete line folding")
            colon = line.find(b":")
            if colon <= 0 or not _is_token(line[:colon]):
                raise _bad("bad header field name")
            value = line[colon + 1 :]
            if not _is_visible(value):
                raise _bad("control or non-ASCII bytes in a header value")
            name = line[:colon].decode().lower()
            text = value.decode().strip()
            old = self._headers.get(name)
            if old is None:
                self._headers[name] = text
            elif isinstance(old, list):
                old.append(text)  # joined once at the end: repeated joins would copy quadratically
            else:
                self._headers[name] = [old, text]
            return
        self._end_of_headers()

    def _end_of_headers(self) -> None:
        method, target, version = self._head  # type: ignore[misc]
        headers = self._headers
        for name in headers:
            if isinstance(headers[name], list):
                headers[name] = ", ".join(headers[name])
        if version == "HTTP/1.1" and "host" not in headers:
            raise _bad("HTTP/1.1 needs a Host header")
        path, query = _split_target(target)
        self.request = Request(method, target, path, query, version, headers)
        coding = headers.get("transfer-encoding")
        if coding is not None:
            if "chunked" in coding.lower():
                raise HttpError(411, "length_required", "chunked bodies are not accepted: send Content-Length")
            raise HttpError(501, "not_implemented", "transfer coding %r is not supported" % (coding,))
        length = headers.get("content-length")
        if length is None:
            if method in _BODY_METHODS:
                raise HttpError(411, "length_required", "%s needs a Content-Length" % method)
            self._need = 0
        else:
            self._need = _content_length(length)
            if self._need > self.max_body:
                raise HttpError(413, "body_too_large", "body larger than %d bytes" % self.max_body)
        self._state = _BODY


def _content_length(text: str) -> int:
    # Repeats ("5, 5") are allowed only when every value is the same (RFC 9110 8.6).
    values = text.split(",")
    first = values[0].strip()
    for raw in values:
        value = raw.strip()
        if value != first or not value or len(value) > 10:
            raise _bad("bad Content-Length %r" % (text,))
        for ch in value:
            if ch not in "0123456789":
                raise _bad("bad Content-Length %r" % (text,))
    return int(first)
