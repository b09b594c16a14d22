"""DNS wire format for one job: ask for the A records of a name, read the answer.

Pure functions, no sockets, no clock. A response is untrusted input: every
read is bounds-checked, a compression pointer must point strictly backwards
(so pointer chains always end) and may be followed at most ``_MAX_HOPS``
times, and a name may not grow past 255 wire bytes. Anything malformed raises
``ValueError``; nothing loops or reads out of range.

    n = build_query(buf, query_id, "broker.example.com")      # into a bytearray
    rcode, addresses, ttl_s = parse_response(packet, query_id, "broker.example.com")
    answer_kind(rcode, addresses) -> "ok" | "nxdomain" | "empty" | "servfail" | "error"

Only A records of the asked name, or of the names a CNAME chain from it leads
to, are returned; other types and records about other names are skipped.
"""

from device.compat import const

HEADER_LEN = const(12)
QUERY_MAX = const(288)  # 12 header + 255 name + 4 type/class, rounded up
TYPE_A = const(1)
TYPE_CNAME = const(5)
CLASS_IN = const(1)
RCODE_OK = const(0)
RCODE_FORMERR = const(1)
RCODE_SERVFAIL = const(2)
RCODE_NXDOMAIN = const(3)
RCODE_REFUSED = const(5)

_FLAG_QR = const(0x8000)
_FLAG_TC = const(0x0200)
_FLAG_RD = const(0x0100)
_MAX_HOPS = const(16)  # compression pointers followed per name
_MAX_WIRE_NAME = const(255)
_MAX_NAME = const(253)  # text form, without the trailing dot
_MAX_LABEL = const(63)
_MAX_CHAIN = const(8)  # CNAME hops followed from the asked name
_MAX_RECORDS = const(64)  # answer records looked at; the rest are ignored


def _u16(data, i):
    return (data[i] << 8) | data[i + 1]


def _label_char_ok(c):
    # Letters, digits, '-' and '_' (service labels); everything else is refused.
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in (45, 95)


def name_labels(name):
    """The labels of a host name as bytes; ``ValueError`` unless it is a valid DNS name."""
    if not isinstance(name, str):
        raise ValueError("name must be a str")
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError("empty name")
    if len(name) > _MAX_NAME:
        raise ValueError("name longer than 253")
    raw = name.encode()
    if len(raw) != len(name):
        raise ValueError("name is not ASCII")
    labels = raw.split(b".")
    for label in labels:
        if not label:
            raise ValueError("empty label")
        if len(label) > _MAX_LABEL:
            raise ValueError("label longer than 63")
        for c in label:
            if not _label_char_ok(c):
                raise ValueError("bad character in name")
    return labels


def build_query(buf, query_id, name, recursion=True):
    """Write a standard query for the A records of ``name`` into ``buf``; return its length."""
    labels = name_labels(name)
    if len(buf) < QUERY_MAX:
        raise ValueError("buffer smaller than QUERY_MAX")
    flags = _FLAG_RD if recursion else 0
    header = (query_id >> 8 & 0xFF, query_id & 0xFF, flags >> 8, flags & 0xFF, 0, 1, 0, 0, 0, 0, 0, 0)
    for i in range(HEADER_LEN):
        buf[i] = header[i]
    pos = HEADER_LEN
    for label in labels:
        buf[pos] = len(label)
        buf[pos + 1 : pos + 1 + len(label)] = label
        pos += 1 + len(label)
    buf[pos] = 0
    buf[pos + 1] = 0
    buf[pos + 2] = TYPE_A
    buf[pos + 3] = 0
    buf[pos + 4] = CLASS_IN
    return pos + 5


def encode_query(query_id, name, recursion=True):
    """``build_query`` into a fresh buffer; returns the bytes."""
    buf = bytearray(QUERY_MAX)
    n = build_query(buf, query_id, name, recursion)
    return bytes(buf[:n])


def response_id(data):
    """The id of a packet that claims to be a response, or -1 (too short, or QR not set)."""
    if len(data) < HEADER_LEN or not (_u16(data, 2) & _FLAG_QR):
        return -1
    return _u16(data, 0)


def read_name(data, pos):
    """Decode the (possibly compressed) name at ``pos``; return ``(lowercase bytes, next pos)``.

    ``next pos`` is where the record continues: just after the first pointer,
    or after the terminating zero when the name was not compressed.
    """
    end = len(data)
    parts = []  # type: list[bytes]
    wire = 1  # the root's zero byte
    hops = 0
    after = -1
    floor = pos  # a pointer must land strictly before the label that holds it
    while True:
        if pos >= end:
            raise ValueError("name runs past the packet")
        length = data[pos]
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= end:
                raise ValueError("truncated pointer")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= floor:
                raise ValueError("compression pointer does not point backwards")
            hops += 1
            if hops > _MAX_HOPS:
                raise ValueError("too many compression pointers")
            if after < 0:
                after = pos + 2
            pos = target
            floor = target
            continue
        if kind:
            raise ValueError("reserved label type")
        if length == 0:
            if after < 0:
                after = pos + 1
            return b".".join(parts).lower(), after
        wire += length + 1
        if wire > _MAX_WIRE_NAME:
            raise ValueError("name longer than 255 bytes")
        if pos + 1 + length > end:
            raise ValueError("label runs past the packet")
        parts.append(bytes(data[pos + 1 : pos + 1 + length]))
        pos += 1 + length


def _ipv4_text(data, pos):
    return "%d.%d.%d.%d" % (data[pos], data[pos + 1], data[pos + 2], data[pos + 3])


def parse_response(data, query_id, name=None):
    """Read a response to our A query: ``(rcode, [ipv4 text, ...], min ttl in s or None)``.

    ``ValueError`` when the packet is malformed, is not a response, carries another
    id, or (with ``name``) answers another question. A truncated response (TC)
    yields the records that arrived whole.
    """
    end = len(data)
    if end < HEADER_LEN:
        raise ValueError("shorter than a header")
    flags = _u16(data, 2)
    if not (flags & _FLAG_QR):
        raise ValueError("not a response")
    if _u16(data, 0) != query_id:
        raise ValueError("id mismatch")
    rcode = flags & 0x0F
    truncated = bool(flags & _FLAG_TC)
    qdcount = _u16(data, 4)
    ancount = _u16(data, 6)
    want = b""
    if name is not None:
        want = b".".join(name_labels(name)).lower()
    if qdcount > 1:
        raise ValueError("more than one question")
    pos = HEADER_LEN
    if qdcount == 1:
        asked, pos = read_name(data, pos)
        if pos + 4 > end:
            raise ValueError("truncated question")
        if name is not None and (asked != want or _u16(data, pos) != TYPE_A or _u16(data, pos + 2) != CLASS_IN):
            raise ValueError("answers another question")
        pos += 4
    elif rcode == RCODE_OK and ancount:
        raise ValueError("answers without a question")
    records = []  # (owner, type, ttl, rdata offset); A and CNAME only
    for _ in range(min(ancount, _MAX_RECORDS)):
        try:
            owner, pos = read_name(data, pos)
            if pos + 10 > end:
                raise ValueError("truncated record header")
            rtype = _u16(data, pos)
            rclass = _u16(data, pos + 2)
            ttl = (_u16(data, pos + 4) << 16) | _u16(data, pos + 6)
            rdlen = _u16(data, pos + 8)
            rdata = pos + 10
            pos = rdata + rdlen
            if pos > end:
                raise ValueError("record data runs past the packet")
        except ValueError:
            if truncated:
                break  # TC: keep what arrived whole
            raise
        if ttl & 0x80000000:
            ttl = 0  # RFC 2181: a TTL with the top bit set means zero
        if rclass != CLASS_IN:
            continue
        if rtype == TYPE_A:
            if rdlen != 4:
                raise ValueError("A record is not 4 bytes")
            records.append((owner, TYPE_A, ttl, rdata))
        elif rtype == TYPE_CNAME:
            target, stop = read_name(data, rdata)
            if stop != pos:
                raise ValueError("CNAME data length mismatch")
            records.append((owner, TYPE_CNAME, ttl, target))
    names = None if name is None else _chain(records, want)
    addresses = []
    min_ttl = None
    for owner, rtype, ttl, value in records:
        if names is not None and owner not in names:
            continue
        if rtype == TYPE_A:
            address = _ipv4_text(data, value)
            if address not in addresses:
                addresses.append(address)
        if min_ttl is None or ttl < min_ttl:
            min_ttl = ttl
    if not addresses:
        min_ttl = None
    return rcode, addresses, min_ttl


def _chain(records, want):
    """The asked name and the names a CNAME chain from it reaches (at most ``_MAX_CHAIN`` hops)."""
    names = [want]
    for _ in range(_MAX_CHAIN):
        grew = False
        for owner, rtype, _ttl, value in records:
            if rtype == TYPE_CNAME and owner in names and value not in names:
                names.append(value)
                grew = True
        if not grew:
            break
    return names


def answer_kind(rcode, addresses):
    """What an answer means for the link: ``ok``, ``nxdomain``, ``empty``, ``servfail`` or ``error``."""
    if rcode == RCODE_OK:
        return "ok" if addresses else "empty"
    if rcode == RCODE_NXDOMAIN:
        return "nxdomain"
    if rcode == RCODE_SERVFAIL:
        return "servfail"
    return "error"


def parse_ipv4(text):
    """The 4 bytes of a dotted-quad IPv4 literal, or None when ``text`` is not one."""
    if not isinstance(text, str) or len(text.encode()) != len(text):
        return None
    parts = text.split(".")
    if len(parts) != 4:
        return None
    out = bytearray(4)
    for i in range(4):
        part = parts[i]
        if not part or len(part) > 3 or not part.isdigit():
            return None
        value = int(part)
        if value > 255:
            return None
        out[i] = value
    return bytes(out)
