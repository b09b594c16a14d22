"""The MQTT 3.1.1 codec: length field boundaries, exact encodings, decoding, and hostile bytes."""

from device.core import mqtt_codec as c
from device.linkerrors import ProtocolError
from device.rand import Rand
from tests.pure._check import raises

BOUNDARIES = (
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
)


def _decode_all(data, max_packet=1024):
    """Every packet in ``data`` (fed in one go, as far as it fits)."""
    d = c.Decoder(max_packet)
    out = []
    i = 0
    while True:
        taken = d.feed(data[i:])
        i += taken
        packet = d.next()
        while packet is not None:
            out.append(packet)
            packet = d.next()
        if i >= len(data):
            return out, d
        assert taken, "decoder full without a whole packet"


def _one(data, max_packet=1024):
    packets, d = _decode_all(data, max_packet)
    assert len(packets) == 1, packets
    assert d.pending() == 0
    return packets[0]


def _publish(topic, payload, qos=0, retain=False, dup=False, packet_id=0):
    buf = bytearray(c.publish_size(len(topic), len(payload), qos))
    n = c.encode_publish(buf, 0, topic, payload, qos, retain, dup, packet_id)
    assert n == len(buf)
    return bytes(buf)


# ---------------------------------------------------------------- remaining length


def test_length_boundaries_encode_exactly():
    for value, wire in BOUNDARIES:
        buf = bytearray(6)
        n = c.encode_length(buf, 1, value)
        assert bytes(buf[1 : 1 + n]) == wire, value
        assert c.length_size(value) == len(wire)


def test_length_boundaries_decode_back():
    for value, wire in BOUNDARIES:
        data = b"\xaa" + wire + b"\xbb"
        assert c.decode_length(data, 1, len(data)) == (value, len(wire))


def test_length_prefixes_are_incomplete_not_errors():
    for _, wire in BOUNDARIES:
        for cut in range(len(wire)):
            assert c.decode_length(wire, 0, cut) == (-1, 0)


def test_a_fifth_length_byte_is_malformed():
    raises(ProtocolError, c.decode_length, b"\xff\xff\xff\xff\x7f", 0, 5)
    # Known at the fourth byte already: no need to wait for a fifth.
    raises(ProtocolError, c.decode_length, b"\x80\x80\x80\x80", 0, 4)
    raises(ProtocolError, _decode_all, b"\x30\xff\xff\xff\xff\x01")


def test_length_out_of_range_is_refused():
    raises(ValueError, c.length_size, 268435456)
    raises(ValueError, c.length_size, -1)
    raises(ValueError, c.encode_length, bytearray(8), 0, 268435456)


# ---------------------------------------------------------------- encoders


def test_connect_minimal_and_full():
    assert bytes(c.encode_connect("ab", 60)) == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02ab"
    assert bytes(c.encode_connect("", 0, clean_session=False)) == b"\x10\x0c\x00\x04MQTT\x04\x00\x00\x00\x00\x00"
    full = c.encode_connect("id", 5, False, ("w", b"gone", 1, True), "user", "pw")
    # flags: username 0x80, password 0x40, will retain 0x20, will qos 1 0x08, will 0x04
    expect = b"\x00\x04MQTT\x04\xec\x00\x05\x00\x02id\x00\x01w\x00\x04gone\x00\x04user\x00\x02pw"
    assert bytes(full) == b"\x10" + bytes([len(expect)]) + expect


def test_connect_refuses_what_3_1_1_cannot_say():
    raises(ValueError, c.encode_connect, "x", 60, True, None, None, "pw")
    raises(ValueError, c.encode_connect, "x", 65536)
    raises(ValueError, c.encode_connect, "x", 60, True, ("w", b"", 3, False))


def test_publish_exact_bytes():
    assert _publish(b"a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert _publish(b"t", b"", qos=1, packet_id=0x1234) == b"\x32\x05\x00\x01t\x12\x34"
    assert _publish(b"t", b"x", qos=1, retain=True, dup=True, packet_id=1) == b"\x3b\x06\x00\x01t\x00\x01x"


def test_publish_writes_at_an_offset_and_nowhere_else():
    buf = bytearray(b"\xee" * 32)
    n = c.encode_publish(buf, 5, b"t", b"pay", 1, False, False, 9)
    assert n == 10
    assert bytes(buf[:5]) == b"\xee" * 5 and bytes(buf[15:]) == b"\xee" * 17
    assert bytes(buf[5:15]) == b"\x32\x08\x00\x01t\x00\x09pay"
    view = memoryview(bytearray(16))
    assert c.encode_publish(view, 0, b"t", b"", 0, False, False, 0) == 5


def test_publish_refuses_bad_arguments():
    buf = bytearray(64)
    raises(ValueError, c.encode_publish, buf, 0, b"t", b"", 1, False, False, 0)  # QoS 1 needs an id
    raises(ValueError, c.encode_publish, buf, 0, b"t", b"", 0, False, True, 0)  # QoS 0 has no DUP
    raises(ValueError, c.encode_publish, buf, 0, b"t", b"", 2, False, False, 1)  # no QoS 2 here
    raises(ValueError, c.encode_publish, buf, 60, b"t", b"12345", 0, False, False, 0)  # does not fit
    for bad in (b"", b"a/+", b"#", b"a\x00b"):
        raises(ValueError, c.check_topic_name, bad)
    c.check_topic_name(b"bp/dev1/out/event")


def test_small_packets():
    buf = bytearray(8)
    assert c.encode_puback(buf, 1, 0xBEEF) == 4 and bytes(buf[1:5]) == b"\x40\x02\xbe\xef"
    assert c.encode_pingreq(buf, 0) == 2 and bytes(buf[:2]) == c.PINGREQ_PACKET == b"\xc0\x00"
    assert c.encode_disconnect(buf, 0) == 2 and bytes(buf[:2]) == c.DISCONNECT_PACKET == b"\xe0\x00"
    raises(ValueError, c.encode_puback, buf, 0, 0)


def test_subscribe_and_unsubscribe():
    assert bytes(c.encode_subscribe(10, [("a/#", 1), ("b", 0)])) == b"\x82\x0c\x00\x0a\x00\x03a/#\x01\x00\x01b\x00"
    assert bytes(c.encode_unsubscribe(11, ["a/#"])) == b"\xa2\x07\x00\x0b\x00\x03a/#"
    raises(ValueError, c.encode_subscribe, 1, [])
    raises(ValueError, c.encode_subscribe, 1, [("a", 2)])
    raises(ValueError, c.encode_subscribe, 0, [("a", 1)])
    raises(ValueError, c.encode_unsubscribe, 1, [""])


# ---------------------------------------------------------------- decoding


def test_decodes_every_packet_a_broker_sends():
    assert _one(b"\x20\x02\x00\x00") == (c.CONNACK, False, 0)
    assert _one(b"\x20\x02\x01\x00") == (c.CONNACK, True, 0)
    assert _one(b"\x20\x02\x00\x05") == (c.CONNACK, False, 5)
    assert _one(b"\x40\x02\x00\x07") == (c.PUBACK, 7)
    assert _one(b"\x90\x05\x00\x03\x00\x01\x80") == (c.SUBACK, 3, [0, 1, 0x80])
    assert _one(b"\xb0\x02\xff\xff") == (c.UNSUBACK, 65535)
    assert _one(b"\xd0\x00") == (c.PINGRESP,)


def test_publish_round_trips():
    cases = (
        (b"a", b"", 0, False, False, 0),
        (b"bp/dev1/cmd", b'{"id":1}', 1, False, False, 65535),
        (b"x/y", b"\x00\xff" * 50, 1, True, True, 1),
        ("caf\u00e9/\U0002a6d4".encode(), b"p", 0, True, False, 0),
    )
    for topic, payload, qos, retain, dup, pid in cases:
        packet = _one(_publish(topic, payload, qos, retain, dup, pid))
        assert packet == (c.PUBLISH, str(topic, "utf-8"), payload, qos, pid, dup, retain), packet


def test_publish_round_trips_across_length_boundaries():
    for remaining in (127, 128, 16383, 16384):
        payload = b"z" * (remaining - 2 - 1 - 2)  # topic length field, 1-byte topic, packet id
        wire = _publish(b"t", payload, 1, packet_id=5)
        assert len(wire) == 1 + c.length_size(remaining) + remaining
        assert _one(wire, max_packet=20000) == (c.PUBLISH, "t", payload, 1, 5, False, False)


def _valid_packets():
    return (
        b"\x20\x02\x01\x00",
        b"\x40\x02\x12\x34",
        b"\x90\x04\x00\x01\x00\x01",
        b"\xb0\x02\x00\x01",
        b"\xd0\x00",
        _publish(b"a/b", b"payload", 0),
        _publish(b"a/b", b"payload", 1, True, True, 0x4242),
        _publish(b"t", b"q" * 200, 1, packet_id=3),  # 2-byte length field
    )


def test_every_truncation_is_incomplete_not_an_error():
    for packet in _valid_packets():
        for cut in range(len(packet)):
            d = c.Decoder(1024)
            assert d.feed(packet[:cut]) == cut
            assert d.next() is None, (packet, cut)
            d.feed(packet[cut:])
            assert d.next() is not None
            assert d.next() is None and d.pending() == 0


def test_byte_by_byte_and_back_to_back():
    stream = b"".join(_valid_packets())
    d = c.Decoder(1024)
    seen = []
    for i in range(len(stream)):
        d.feed(stream[i : i + 1])
        packet = d.next()
        if packet is not None:
            seen.append(packet)
    assert len(seen) == len(_valid_packets())
    assert _decode_all(stream)[0] == seen


def test_room_and_commit_read_in_place():
    d = c.Decoder(64)
    wire = b"\x40\x02\x00\x09\xd0\x00"
    room = d.room()
    room[0 : len(wire)] = wire
    d.commit(len(wire))
    assert d.next() == (c.PUBACK, 9)
    assert d.next() == (c.PINGRESP,)
    assert d.next() is None
    assert len(d.room()) == 64
    raises(ValueError, d.commit, 65)


def test_feed_takes_only_what_fits():
    d = c.Decoder(16)
    assert d.feed(b"\x40\x02\x00\x01" * 5) == 16
    for _ in range(4):
        assert d.next() == (c.PUBACK, 1)
    assert d.next() is None
    assert d.feed(b"\x40\x02\x00\x02") == 4


def test_packet_over_the_limit_is_refused_from_its_header():
    d = c.Decoder(64)
    d.feed(b"\x30\x7f")  # 129 bytes announced, nothing else yet
    err = raises(ProtocolError, d.next)
    assert "limit" in str(err)
    # Exactly at the limit is fine.
    wire = _publish(b"t", b"x" * (64 - 2 - 2 - 1), 0)
    assert len(wire) == 64
    assert _one(wire, max_packet=64)[2] == b"x" * 59


def test_wrong_types_and_flags_are_protocol_errors():
    bad = (
        b"\x00\x00",  # reserved type 0
        b"\x10\x00",  # CONNECT
        b"\x50\x02\x00\x01",  # PUBREC
        b"\x62\x02\x00\x01",  # PUBREL
        b"\x70\x02\x00\x01",  # PUBCOMP
        b"\x82\x00",  # SUBSCRIBE
        b"\xa2\x00",  # UNSUBSCRIBE
        b"\xc0\x00",  # PINGREQ
        b"\xe0\x00",  # DISCONNECT
        b"\xf0\x00",  # AUTH (reserved in 3.1.1)
        b"\x21\x02\x00\x00",
        b"\x28\x02\x00\x00",
        b"\x42\x02\x00\x01",
        b"\x91\x03\x00\x01\x00",
        b"\xb4\x02\x00\x01",
        b"\xd8\x00",
        b"\x36\x0e\x00\x05topic\x12\x34pay",  # QoS 3
        b"\x34\x0e\x00\x05topic\x12\x34pay",  # QoS 2: never subscribed so
        b"\x38\x0c\x00\x05topicpay",  # QoS 0 with DUP
    )
    for wire in bad:
        # The first byte alone tells.
        d = c.Decoder(64)
        d.feed(wire[:1])
        raises(ProtocolError, d.next)


def test_malformed_bodies_are_protocol_errors():
    bad = (
        b"\x20\x01\x00",
        b"\x20\x03\x00\x00\x00",
        b"\x20\x02\x02\x00",  # reserved acknowledge flag
        b"\x20\x02\x80\x00",
        b"\x20\x02\x00\x06",  # return code 6
        b"\x20\x02\x01\x05",  # refused with a session
        b"\x40\x02\x00\x00",  # packet id 0
        b"\x40\x03\x00\x01\x00",
        b"\x40\x00",
        b"\x90\x03\x00\x00\x00",
        b"\x90\x02\x00\x01",
        b"\x90\x03\x00\x01\x03",  # granted QoS 3
        b"\xb0\x02\x00\x00",
        b"\xb0\x01\x01",
        b"\xd0\x01\x00",
        b"\x30\x01\x00",  # no room for the topic length
        b"\x30\x09\x00\x00payload",  # empty topic
        b"\x30\x04\x00\x05ab",  # topic longer than the packet
        b"\x32\x08\x00\x05topic\x00",  # no room for the packet id
        b"\x32\x10\x00\x05topic\x00\x00payload",  # packet id 0
    )
    for wire in bad:
        raises(ProtocolError, _decode_all, wire)


def test_topic_names_must_be_clean_utf8():
    bad_topics = (
        b"top\x00\x00",
        b"to\xed\xa0\x80",  # U+D800, a surrogate
        b"to\xed\xbf\xbf",
        b"top\x01p",
        b"top\x1fp",
        b"top\x7fp",
        b"to\xc2\x9fp",  # U+009F, a C1 control
        b"+opic",
        b"topi#",
        b"t\xc0\xafx",  # overlong '/'
        b"t\xe0\x80\xafx",  # overlong, 3 bytes
        b"t\xf4\x90\x80\x80",  # above U+10FFFF
        b"t\xf8\x88\x80\x80\x80",
        b"abc\xe2\x82",  # ends inside a sequence
        b"ab\xe2\x28\xa1",  # bad continuation
        b"\x80abc",
    )
    for topic in bad_topics:
        wire = b"\x30" + bytes([2 + len(topic) + 1]) + bytes([0, len(topic)]) + topic + b"p"
        raises(ProtocolError, _decode_all, wire)
    for good in (b"A\xf0\xaa\x9b\x94", b"caf\xc3\xa9", b"\xe2\x82\xac/\xef\xbf\xbd", b"\xc2\xa0"):
        wire = b"\x30" + bytes([2 + len(good)]) + bytes([0, len(good)]) + good
        assert _one(wire)[1] == str(good, "utf-8")


def test_random_bytes_never_crash():
    rand = Rand(20240401)
    outcomes = {"packets": 0, "errors": 0, "incomplete": 0}
    starts = (0x20, 0x30, 0x31, 0x32, 0x3B, 0x40, 0x90, 0xB0, 0xD0)
    for _ in range(400):
        data = bytearray(rand.randint(0, 255) for _ in range(rand.randint(1, 48)))
        if rand.randint(0, 1):
            data[0] = starts[rand.randint(0, len(starts) - 1)]  # get past the first byte half the time
        try:
            packets, d = _decode_all(bytes(data), 64)
        except ProtocolError:
            outcomes["errors"] += 1
            continue
        outcomes["packets"] += len(packets)
        if d.pending():
            outcomes["incomplete"] += 1
    assert outcomes["errors"] > 0 and outcomes["incomplete"] + outcomes["packets"] > 0, outcomes


def test_mutated_valid_packets_never_crash():
    rand = Rand(7)
    valid = _valid_packets()
    for _ in range(600):
        wire = bytearray(valid[rand.randint(0, len(valid) - 1)])
        for _ in range(rand.randint(1, 3)):
            wire[rand.randint(0, len(wire) - 1)] = rand.randint(0, 255)
        try:
            _decode_all(bytes(wire), 256)
        except ProtocolError:
            pass


def test_a_lying_remaining_length_is_refused_from_its_header():
    # The header alone shows these are malformed: no waiting for bodies that would be refused anyway.
    for header in (b"\x20\x42", b"\x40\x03", b"\xb0\x00", b"\xd0\x01", b"\x90\x02", b"\x30\x01", b"\x20\x80\x01"):
        d = c.Decoder(1024)
        d.feed(header)
        raises(ProtocolError, d.next)
    d = c.Decoder(1024)
    d.feed(b"\x40\x02\x00")  # a right length, the body still coming: not an error
    assert d.next() is None
