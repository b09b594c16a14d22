"""DNS codec: the exact query bytes, answers with compression and CNAMEs, every rcode,
and hostile packets (truncations, random bytes, pointer loops) that must end in
``ValueError`` -- never another exception, never a hang."""

import struct

from device.core.dns_codec import (
    QUERY_MAX,
    answer_kind,
    build_query,
    encode_query,
    name_labels,
    parse_ipv4,
    parse_response,
    read_name,
    response_id,
)
from device.rand import Rand
from tests.pure._check import raises

NAME = "broker.example.com"
QID = 0x4A2F
OK_FLAGS = 0x8180  # QR, RD, RA, rcode 0


def _wire(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def _header(flags, qd, an, qid=QID, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def _question(name=NAME, qtype=1):
    return _wire(name) + struct.pack(">HH", qtype, 1)


def _rr(owner, rtype, ttl, rdata, rclass=1):
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


PTR_QNAME = b"\xc0\x0c"  # the question's name starts right after the 12-byte header


def _answer(addresses, ttls=None, flags=OK_FLAGS):
    body = b""
    for i, address in enumerate(addresses):
        ttl = ttls[i] if ttls else 300
        body += _rr(PTR_QNAME, 1, ttl, bytes(parse_ipv4(address)))
    return _header(flags, 1, len(addresses)) + _question() + body


def _only_value_error(packet, name=NAME):
    """Parse; a ValueError is fine, a result is fine, anything else fails the test."""
    try:
        return parse_response(packet, QID, name)
    except ValueError:
        return None


# ---------------------------------------------------------------- queries


def test_query_bytes_are_exact():
    expected = b"\x4a\x2f\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06broker\x07example\x03com\x00\x00\x01\x00\x01"
    assert encode_query(QID, NAME) == expected
    assert encode_query(QID, NAME + ".") == expected  # a trailing dot means the same name


def test_query_is_built_into_a_preallocated_buffer():
    buf = bytearray(QUERY_MAX)
    n = build_query(buf, 0xFFFF, "a.b", recursion=False)
    assert bytes(buf[:n]) == b"\xff\xff\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x01b\x00\x00\x01\x00\x01"
    raises(ValueError, build_query, bytearray(20), 1, "a.b")


def test_longest_valid_name_fits_the_buffer():
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    packet = encode_query(1, name)
    assert len(packet) == 12 + 255 + 4 <= QUERY_MAX


def test_names_are_validated():
    assert name_labels("a_b.Example-1.com") == [b"a_b", b"Example-1", b"com"]
    name_labels("x" * 63 + ".com")
    raises(ValueError, name_labels, "x" * 64 + ".com")
    raises(ValueError, name_labels, ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]))  # 254
    for bad in ("", ".", "a..b", ".a", "a b.com", "caf\u00e9.com", "a/b", "a.b..", 42, None):
        raises(ValueError, name_labels, bad)
        raises(ValueError, encode_query, 1, bad)


# ---------------------------------------------------------------- answers


def test_a_records_with_compressed_owner_names():
    packet = _answer(["10.0.0.1", "192.168.255.254"], ttls=[300, 60])
    assert response_id(packet) == QID
    assert parse_response(packet, QID, NAME) == (0, ["10.0.0.1", "192.168.255.254"], 60)


def test_question_matches_case_insensitively():
    packet = _header(OK_FLAGS, 1, 1) + _question("BROKER.Example.COM") + _rr(PTR_QNAME, 1, 5, b"\x01\x02\x03\x04")
    assert parse_response(packet, QID, "broker.EXAMPLE.com") == (0, ["1.2.3.4"], 5)


def test_cname_chain_is_followed_and_unrelated_records_ignored():
    # broker.example.com CNAME edge.cdn.net; edge.cdn.net A 10.1.1.1; plus an AAAA,
    # a record about another name, and a CHAOS-class A: only 10.1.1.1 counts.
    head = _header(OK_FLAGS, 1, 5) + _question()
    cname_rdata = b"\x04edge\x03cdn\x03net\x00"
    cname = _rr(PTR_QNAME, 5, 120, cname_rdata)
    target_offset = len(head) + 2 + 10  # the CNAME's rdata: owner pointer (2) + fixed fields (10)
    ptr_target = bytes([0xC0 | (target_offset >> 8), target_offset & 0xFF])
    a_record = _rr(ptr_target, 1, 90, b"\x0a\x01\x01\x01")
    aaaa = _rr(ptr_target, 28, 90, bytes(16))
    other = _rr(_wire("other.org"), 1, 10, b"\x09\x09\x09\x09")
    chaos = _rr(PTR_QNAME, 1, 10, b"\x08\x08\x08\x08", rclass=3)
    packet = head + cname + a_record + aaaa + other + chaos
    assert read_name(packet, target_offset) == (b"edge.cdn.net", target_offset + len(cname_rdata))
    assert parse_response(packet, QID, NAME) == (0, ["10.1.1.1"], 90)
    # Without a name to check against, every IN-class A record is taken.
    assert parse_response(packet, QID)[1] == ["10.1.1.1", "9.9.9.9"]


def test_cname_loop_ends():
    head = _header(OK_FLAGS, 1, 2) + _question()
    # broker.example.com CNAME x.org ; x.org CNAME broker.example.com
    first = _rr(PTR_QNAME, 5, 60, _wire("x.org"))
    second = _rr(_wire("x.org"), 5, 60, PTR_QNAME)
    assert parse_response(head + first + second, QID, NAME) == (0, [], None)


def test_duplicate_addresses_once_and_high_bit_ttl_is_zero():
    packet = _answer(["1.1.1.1", "1.1.1.1", "2.2.2.2"], ttls=[50, 40, 0x80000000])
    assert parse_response(packet, QID, NAME) == (0, ["1.1.1.1", "2.2.2.2"], 0)


def test_each_rcode_means_what_the_link_needs():
    cases = (
        (0x8180, "empty"),  # NOERROR, no answers
        (0x8183, "nxdomain"),
        (0x8182, "servfail"),
        (0x8181, "error"),  # FORMERR
        (0x8184, "error"),  # NOTIMP
        (0x8185, "error"),  # REFUSED
    )
    for flags, kind in cases:
        rcode, addresses, ttl = parse_response(_header(flags, 1, 0) + _question(), QID, NAME)
        assert rcode == flags & 0xF and addresses == [] and ttl is None
        assert answer_kind(rcode, addresses) == kind
    assert answer_kind(0, ["1.2.3.4"]) == "ok"
    # Error answers without the question are accepted too (some servers send none).
    assert parse_response(_header(0x8182, 0, 0), QID, NAME)[0] == 2


def test_not_ours_is_refused():
    packet = _answer(["10.0.0.1"])
    raises(ValueError, parse_response, packet, QID + 1, NAME)  # another id
    raises(ValueError, parse_response, packet, QID, "other.example.com")  # another question
    query = encode_query(QID, NAME)
    assert response_id(query) == -1  # QR not set: a query, not a response
    raises(ValueError, parse_response, query, QID, NAME)
    assert response_id(b"\x00\x01") == -1
    aaaa_question = _header(OK_FLAGS, 1, 0) + _question(qtype=28)
    raises(ValueError, parse_response, aaaa_question, QID, NAME)
    two_questions = _header(OK_FLAGS, 2, 0) + _question() + _question()
    raises(ValueError, parse_response, two_questions, QID, NAME)
    no_question = _header(OK_FLAGS, 0, 1) + _rr(_wire(NAME), 1, 5, b"\x01\x02\x03\x04")
    raises(ValueError, parse_response, no_question, QID, NAME)


def test_a_record_of_wrong_length_is_malformed():
    packet = _header(OK_FLAGS, 1, 1) + _question() + _rr(PTR_QNAME, 1, 5, b"\x01\x02\x03")
    raises(ValueError, parse_response, packet, QID, NAME)


# ---------------------------------------------------------------- hostile packets


def test_every_truncation_is_a_value_error():
    full = _answer(["10.0.0.1", "10.0.0.2"])
    assert parse_response(full, QID, NAME)[1] == ["10.0.0.1", "10.0.0.2"]
    for n in range(len(full)):
        raises(ValueError, parse_response, full[:n], QID, NAME)
        raises(ValueError, parse_response, memoryview(full)[:n], QID, NAME)


def test_truncated_flag_keeps_the_records_that_arrived_whole():
    full = _answer(["10.0.0.1", "10.0.0.2"], flags=OK_FLAGS | 0x0200)
    one_record = len(full) - 16
    assert parse_response(full[:one_record], QID, NAME) == (0, ["10.0.0.1"], 300)
    for n in range(one_record, len(full)):
        assert parse_response(full[:n], QID, NAME)[1] == ["10.0.0.1"]


def test_pointer_to_itself_or_forwards_is_refused():
    head = _header(OK_FLAGS, 1, 0)
    raises(ValueError, parse_response, head + b"\xc0\x0c" + b"\x00\x01\x00\x01", QID, NAME)
    raises(ValueError, parse_response, head + b"\xc0\x0e\x00\x00\x01\x00\x01", QID, NAME)
    # Two pointers aimed at each other: the first one points forwards.
    raises(ValueError, read_name, b"\xc0\x02\xc0\x00", 0)
    raises(ValueError, read_name, b"\x01a\xc0\x00", 0)  # jumps back into its own name
    raises(ValueError, read_name, b"\x40abc", 0)  # reserved label type 01
    raises(ValueError, read_name, b"\x80abc", 0)  # reserved label type 10


def test_long_pointer_chains_and_overlong_names_are_refused():
    # A real name at 0, then pointers each aimed at the one before: 16 hops are fine, 17 are not.
    packet = b"\x01a\x00"
    offsets = [0]
    for _ in range(20):
        offsets.append(len(packet))
        packet += bytes([0xC0, offsets[-2]])
    assert read_name(packet, offsets[16]) == (b"a", offsets[16] + 2)
    raises(ValueError, read_name, packet, offsets[17])
    # Labels of 63 chained by pointers grow past 255 wire bytes.
    packet = b""
    previous = -1
    for _ in range(4):
        start = len(packet)
        packet += b"\x3f" + b"x" * 63 + (bytes([0xC0, previous]) if previous >= 0 else b"\x00")
        previous = start
    raises(ValueError, read_name, packet, previous)


def test_random_bytes_only_ever_raise_value_error():
    rand = Rand(20240501)
    for i in range(1500):
        length = rand.randint(0, 90)
        packet = bytearray(rand.next_u32() & 0xFF for _ in range(length))
        if i % 2 and length >= 12:
            # Half of them look like our response, so parsing goes past the header.
            packet[0:4] = b"\x4a\x2f\x81\x80"
            packet[4:6] = b"\x00\x01" if i % 4 == 1 else b"\x00\x00"
        result = _only_value_error(bytes(packet))
        if result is not None:
            rcode, addresses, _ttl = result
            assert 0 <= rcode <= 15 and isinstance(addresses, list)


def test_mutated_answers_only_ever_raise_value_error():
    rand = Rand(7)
    base = _answer(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    for _ in range(1500):
        packet = bytearray(base)
        for _ in range(rand.randint(1, 4)):
            packet[rand.randint(12, len(packet) - 1)] = rand.next_u32() & 0xFF
        _only_value_error(bytes(packet))
        _only_value_error(bytes(packet), None)


# ---------------------------------------------------------------- addresses


def test_ipv4_literals():
    assert parse_ipv4("10.0.0.1") == b"\x0a\x00\x00\x01"
    assert parse_ipv4("255.255.255.255") == b"\xff\xff\xff\xff"
    for bad in ("256.0.0.1", "1.2.3", "1.2.3.4.5", "a.b.c.d", "1..2.3", "1.2.3.-4", "", "::1", "1.2.3.0004", None):
        assert parse_ipv4(bad) is None, bad


# ---------------------------------------------------------------- the resolver's socket-free parts


def test_ip_literals_and_server_addresses():
    from device.link.dns import parse_server
    from device.link.resolver import is_ip_literal

    for literal in ("10.0.0.1", "::1", "[::1]", "fe80::1:2", "::ffff:10.0.0.1"):
        assert is_ip_literal(literal), literal
    for name in ("broker.example.com", "10.0.0", "localhost", "a:b", "[zz::1]"):
        assert not is_ip_literal(name), name
    assert parse_server("10.0.0.53") == ("10.0.0.53", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    for bad in ("dns.example.com", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:x", "::1"):
        raises(ValueError, parse_server, bad)


async def _failure_kind(resolver, host):
    from device.linkerrors import DnsError

    try:
        await resolver.resolve(host, 100)
    except DnsError as exc:
        assert exc.cause == "dns_" + exc.kind
        return exc.kind
    return None


async def test_static_resolver_answers_and_fails_as_told():
    from device.link.resolver import StaticResolver

    resolver = StaticResolver({"broker.test": ["10.0.0.1"], "gone.test": "servfail"}, ttl_s=30)
    assert await resolver.resolve("broker.test", 100) == ["10.0.0.1"]
    assert resolver.last_ttl_s == 30
    assert await resolver.resolve("10.9.9.9", 100) == ["10.9.9.9"]  # a literal: no lookup
    assert await _failure_kind(resolver, "gone.test") == "servfail"
    assert await _failure_kind(resolver, "unknown.test") == "nxdomain"
    resolver.set("broker.test", "timeout")
    assert await _failure_kind(resolver, "broker.test") == "timeout"
    resolver.set("broker.test", [])
    assert await _failure_kind(resolver, "broker.test") == "empty"
    assert resolver.queries == {"broker.test": 3, "gone.test": 1, "unknown.test": 1}
    assert resolver.counters == {"lookups": 5, "literals": 1, "answers": 1, "failures": 4}


async def test_system_resolver_takes_literals_everywhere_and_no_names_on_micropython():
    from device.compat import IS_MICROPYTHON
    from device.link.resolver import SystemResolver

    resolver = SystemResolver()
    assert await resolver.resolve("192.0.2.1", 100) == ["192.0.2.1"]
    if IS_MICROPYTHON:  # getaddrinfo would block the VM: refused without calling it
        assert await _failure_kind(resolver, "broker.test") == "error"
