"""MQTT 3.1.1 packets as a client sends and receives them (pure: no I/O, no clock).

Encoders write into a caller's preallocated ``bytearray`` at an offset and
return how many bytes they wrote (PUBLISH, PUBACK, PINGREQ, DISCONNECT: the
hot path allocates nothing); CONNECT, SUBSCRIBE and UNSUBSCRIBE are rare and
return fresh ``bytearray``s.

``Decoder`` is incremental: bytes go in (``room()``/``commit(n)`` to read
straight into its buffer, or ``feed(data)``), whole packets come out of
``next()`` as tuples::

    (CONNACK, session_present, return_code)
    (PUBLISH, topic, payload, qos, packet_id, dup, retain)    packet_id 0 for QoS 0
    (PUBACK, packet_id)
    (SUBACK, packet_id, [granted qos or 0x80, ...])
    (UNSUBACK, packet_id)
    (PINGRESP,)

Anything else a 3.1.1 broker must not send to a QoS 0/1 client -- other
packet types, wrong fixed-header flags, QoS 2 or 3, packet id 0, a topic that
is empty, not UTF-8, holds a control character or a wildcard, a length field
over 4 bytes, a packet over ``max_packet`` -- raises ``ProtocolError`` as soon
as the bytes that show it have arrived. An incomplete packet is never an
error: ``next()`` returns None until the rest comes.
"""

from device.compat import const
from device.linkerrors import ProtocolError

# Packet types the client receives (public: the client dispatches on them).
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
SUBACK = const(9)
UNSUBACK = const(11)
PINGRESP = const(13)
# Packet types the client only sends.
_CONNECT = const(1)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)
_PINGREQ = const(12)
_DISCONNECT = const(14)

MAX_REMAINING = const(268435455)  # 4 length bytes of 7 bits
PROTOCOL_LEVEL = const(4)  # MQTT 3.1.1

PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


# ---------------------------------------------------------------- remaining length


def length_size(value):
    """How many bytes the remaining-length field of ``value`` takes (1..4)."""
    if value < 0 or value > MAX_REMAINING:
        raise ValueError("remaining length out of range: %d" % value)
    if value < 128:
        return 1
    if value < 16384:
        return 2
    if value < 2097152:
        return 3
    return 4


def encode_length(buf, offset, value):
    """Write ``value`` as a remaining-length varint at ``offset``; return the bytes written."""
    if value < 0 or value > MAX_REMAINING:
        raise ValueError("remaining length out of range: %d" % value)
    pos = offset
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            buf[pos] = byte
            return pos + 1 - offset
        buf[pos] = byte | 0x80
        pos += 1


def decode_length(buf, offset, end):
    """``(value, bytes used)`` of the varint at ``offset``; ``(-1, 0)`` while incomplete.

    A fourth byte that still has its continuation bit set is malformed: raised
    at once, without waiting for a fifth.
    """
    value = 0
    shift = 0
    pos = offset
    while pos < end:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos - offset
        shift += 7
        if shift >= 28:
            raise ProtocolError("remaining length longer than 4 bytes")
    return -1, 0


# ---------------------------------------------------------------- encoders


def _utf8(text):
    if isinstance(text, str):
        return text.encode()
    return bytes(text)


def _put_u16(buf, pos, value):
    buf[pos] = value >> 8
    buf[pos + 1] = value & 0xFF
    return pos + 2


def _put_field(buf, pos, data):
    n = len(data)
    if n > 65535:
        raise ValueError("field longer than 65535 bytes")
    pos = _put_u16(buf, pos, n)
    buf[pos : pos + n] = data
    return pos + n


def _new_packet(first, body_len):
    """A bytearray for one packet with its fixed header written; returns ``(buf, body offset)``."""
    buf = bytearray(1 + length_size(body_len) + body_len)
    buf[0] = first
    return buf, 1 + encode_length(buf, 1, body_len)


def encode_connect(client_id, keepalive_s, clean_session=True, will=None, username=None, password=None):
    """CONNECT for MQTT 3.1.1. ``will``: ``(topic, payload, qos, retain)`` or None."""
    if keepalive_s < 0 or keepalive_s > 65535:
        raise ValueError("keepalive_s must be 0..65535")
    if password is not None and username is None:
        raise ValueError("MQTT 3.1.1 sends a password only with a username")
    cid = _utf8(client_id)
    flags = 0x02 if clean_session else 0
    body = 10 + 2 + len(cid)
    if will is not None:
        will_topic = _utf8(will[0])
        will_payload = _utf8(will[1])
        will_qos = will[2]
        if will_qos not in (0, 1, 2):
            raise ValueError("will qos must be 0, 1 or 2")
        flags |= 0x04 | (will_qos << 3) | (0x20 if will[3] else 0)
        body += 4 + len(will_topic) + len(will_payload)
    if username is not None:
        user = _utf8(username)
        flags |= 0x80
        body += 2 + len(user)
    if password is not None:
        secret = _utf8(password)
        flags |= 0x40
        body += 2 + len(secret)
    buf, pos = _new_packet(_CONNECT << 4, body)
    pos = _put_field(buf, pos, b"MQTT")
    buf[pos] = PROTOCOL_LEVEL
    buf[pos + 1] = flags
    pos = _put_u16(buf, pos + 2, keepalive_s)
    pos = _put_field(buf, pos, cid)
    if will is not None:
        pos = _put_field(buf, pos, will_topic)
        pos = _put_field(buf, pos, will_payload)
    if username is not None:
        pos = _put_field(buf, pos, user)
    if password is not None:
        pos = _put_field(buf, pos, secret)
    return buf


def check_topic_name(topic):
    """Raise ValueError unless ``topic`` (bytes) may name a PUBLISH: not empty, no wildcard."""
    if not topic or len(topic) > 65535 or b"+" in topic or b"#" in topic or b"\x00" in topic:
        raise ValueError("invalid topic name for PUBLISH: %r" % (topic,))


def publish_size(topic_len, payload_len, qos):
    """Bytes one PUBLISH takes on the wire."""
    body = 2 + topic_len + payload_len + (2 if qos else 0)
    return 1 + length_size(body) + body


def encode_publish(buf, offset, topic, payload, qos, retain, dup, packet_id):
    """Write a PUBLISH at ``offset``; return its length. ``topic`` is UTF-8 bytes (see ``check_topic_name``)."""
    if qos == 0:
        if dup or packet_id:
            raise ValueError("QoS 0 has neither DUP nor a packet id")
    elif qos == 1:
        if packet_id < 1 or packet_id > 65535:
            raise ValueError("packet id must be 1..65535")
    else:
        raise ValueError("this client publishes QoS 0 or 1")
    tlen = len(topic)
    plen = len(payload)
    body = 2 + tlen + plen + (2 if qos else 0)
    size = 1 + length_size(body) + body
    if offset + size > len(buf):
        raise ValueError("buffer too small for a %d byte PUBLISH" % size)
    buf[offset] = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    pos = offset + 1
    pos += encode_length(buf, pos, body)
    pos = _put_field(buf, pos, topic)
    if qos:
        pos = _put_u16(buf, pos, packet_id)
    buf[pos : pos + plen] = payload
    return size


def encode_puback(buf, offset, packet_id):
    """Write a PUBACK at ``offset``; return 4."""
    if packet_id < 1 or packet_id > 65535:
        raise ValueError("packet id must be 1..65535")
    buf[offset] = PUBACK << 4
    buf[offset + 1] = 2
    _put_u16(buf, offset + 2, packet_id)
    return 4


def encode_pingreq(buf, offset):
    buf[offset] = _PINGREQ << 4
    buf[offset + 1] = 0
    return 2


def encode_disconnect(buf, offset):
    buf[offset] = _DISCONNECT << 4
    buf[offset + 1] = 0
    return 2


def encode_subscribe(packet_id, filters):
    """SUBSCRIBE for ``[(topic filter, qos), ...]`` (qos 0 or 1: this client takes no QoS 2)."""
    if not filters:
        raise ValueError("SUBSCRIBE needs at least one filter")
    if packet_id < 1 or packet_id > 65535:
        raise ValueError("packet id must be 1..65535")
    encoded = []
    body = 2
    for topic_filter, qos in filters:
        if qos not in (0, 1):
            raise ValueError("subscribe with qos 0 or 1")
        data = _utf8(topic_filter)
        if not data:
            raise ValueError("empty topic filter")
        encoded.append((data, qos))
        body += 3 + len(data)
    buf, pos = _new_packet((_SUBSCRIBE << 4) | 0x02, body)
    pos = _put_u16(buf, pos, packet_id)
    for data, qos in encoded:
        pos = _put_field(buf, pos, data)
        buf[pos] = qos
        pos += 1
    return buf


def encode_unsubscribe(packet_id, topic_filters):
    if not topic_filters:
        raise ValueError("UNSUBSCRIBE needs at least one filter")
    if packet_id < 1 or packet_id > 65535:
        raise ValueError("packet id must be 1..65535")
    encoded = [_utf8(f) for f in topic_filters]
    body = 2
    for data in encoded:
        if not data:
            raise ValueError("empty topic filter")
        body += 2 + len(data)
    buf, pos = _new_packet((_UNSUBSCRIBE << 4) | 0x02, body)
    pos = _put_u16(buf, pos, packet_id)
    for data in encoded:
        pos = _put_field(buf, pos, data)
    return buf


# ---------------------------------------------------------------- decoder


def check_fixed_header(first):
    """Raise ProtocolError unless the first byte starts a packet a 3.1.1 broker may send this client."""
    ptype = first >> 4
    flags = first & 0x0F
    if ptype == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        if qos == 2:
            raise ProtocolError("PUBLISH with QoS 2 (this client subscribes with QoS 0/1)")
        if qos == 0 and flags & 0x08:
            raise ProtocolError("PUBLISH with QoS 0 and DUP")
        return
    if ptype in (CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP):
        if flags:
            raise ProtocolError("packet type %d with flags 0x%x" % (ptype, flags))
        return
    raise ProtocolError("unexpected packet type %d" % ptype)


def check_remaining(first, remaining):
    """Raise ProtocolError when the remaining length alone shows the packet is malformed.

    Checked when the fixed header is complete, so a lying length closes the
    connection at once instead of leaving the client waiting for bytes it
    would refuse anyway.
    """
    ptype = first >> 4
    if ptype == PINGRESP:
        bad = remaining != 0
    elif ptype == SUBACK:
        bad = remaining < 3
    elif ptype == PUBLISH:
        bad = remaining < 2
    else:  # CONNACK, PUBACK, UNSUBACK (check_fixed_header let nothing else through)
        bad = remaining != 2
    if bad:
        raise ProtocolError("packet type %d with remaining length %d" % (ptype, remaining))


def check_topic_utf8(buf, start, end):
    """Raise ProtocolError unless ``buf[start:end]`` is a well-formed UTF-8 topic name.

    Well-formed (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF), not
    empty, no U+0000..U+001F, U+007F..U+009F (control characters) and no
    ``+``/``#`` (wildcards are for filters, never names).
    """
    if start >= end:
        raise ProtocolError("empty topic name")
    i = start
    while i < end:
        c = buf[i]
        if c < 0x80:
            if c < 0x20 or c in (0x7F, 0x23, 0x2B):
                raise ProtocolError("topic name has byte 0x%02x" % c)
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
            if c == 0xC2:
                lo = 0xA0  # U+0080..U+009F are C1 control characters
        elif 0xE0 <= c <= 0xEF:
            n = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F  # U+D800..U+DFFF are surrogates
        elif 0xF0 <= c <= 0xF4:
            n = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            raise ProtocolError("topic name is not UTF-8 (byte 0x%02x)" % c)
        if i + n >= end:
            raise ProtocolError("topic name ends inside a UTF-8 sequence")
        second = buf[i + 1]
        if second < lo or second > hi:
            raise ProtocolError("topic name is not UTF-8 (bytes 0x%02x 0x%02x)" % (c, second))
        j = i + 2
        i += n + 1
        while j < i:
            if buf[j] & 0xC0 != 0x80:
                raise ProtocolError("topic name is not UTF-8 (continuation byte 0x%02x)" % buf[j])
            j += 1


class Decoder:
    """Incremental decoder over one preallocated buffer of ``max_packet`` bytes.

    A packet (fixed header included) longer than ``max_packet`` is a
    ProtocolError. Call ``next()`` until it returns None before adding more
    bytes: then ``room()`` is never empty.
    """

    def __init__(self, max_packet=8192):
        if max_packet < 16:
            raise ValueError("max_packet must be >= 16")
        self.max_packet = max_packet
        self._buf = bytearray(max_packet)
        self._mv = memoryview(self._buf)
        self._start = 0
        self._end = 0

    def reset(self):
        self._start = 0
        self._end = 0

    def pending(self):
        """Bytes held that are not yet a whole packet (or not yet taken by ``next``)."""
        return self._end - self._start

    def room(self):
        """A memoryview of the free space (for ``readinto``); ``commit(n)`` after filling ``n`` bytes."""
        if self._start:
            held = self._end - self._start
            self._buf[0:held] = self._mv[self._start : self._end]
            self._start = 0
            self._end = held
        return self._mv[self._end :]

    def commit(self, n):
        if n < 0 or self._end + n > self.max_packet:
            raise ValueError("commit past the buffer")
        self._end += n

    def feed(self, data):
        """Copy as much of ``data`` as fits; return how many bytes were taken."""
        room = self.room()
        n = len(data)
        if n > len(room):
            n = len(room)
        room[0:n] = data[0:n]
        self._end += n
        return n

    def next(self):
        """The next whole packet as a tuple (see the module docstring), or None while incomplete."""
        start = self._start
        end = self._end
        if start == end:
            return None
        buf = self._buf
        first = buf[start]
        check_fixed_header(first)
        remaining, used = decode_length(buf, start + 1, end)
        if not used:
            return None
        check_remaining(first, remaining)
        total = 1 + used + remaining
        if total > self.max_packet:
            raise ProtocolError("packet of %d bytes is over the %d byte limit" % (total, self.max_packet))
        if end - start < total:
            return None
        self._start = start + total
        if self._start == end:
            self._start = 0
            self._end = 0
        return self._decode(first, start + 1 + used, remaining)

    def _decode(self, first, pos, length):
        # The bytes stay put until the next room()/feed(): reading them here is safe.
        buf = self._buf
        ptype = first >> 4
        if ptype in (PUBACK, UNSUBACK):
            if length != 2:
                raise ProtocolError("packet type %d with length %d" % (ptype, length))
            return (ptype, _packet_id(buf, pos))
        if ptype == PUBLISH:
            return self._decode_publish(first, pos, length)
        if ptype == PINGRESP:
            if length:
                raise ProtocolError("PINGRESP with length %d" % length)
            return (PINGRESP,)
        if ptype == CONNACK:
            if length != 2:
                raise ProtocolError("CONNACK with length %d" % length)
            ack_flags = buf[pos]
            code = buf[pos + 1]
            if ack_flags & 0xFE:
                raise ProtocolError("CONNACK with reserved flags 0x%02x" % ack_flags)
            if code > 5:
                raise ProtocolError("CONNACK with return code %d" % code)
            if code and ack_flags:
                raise ProtocolError("CONNACK refuses yet reports a session")
            return (CONNACK, ack_flags == 1, code)
        # SUBACK (check_fixed_header let nothing else through)
        if length < 3:
            raise ProtocolError("SUBACK with length %d" % length)
        packet_id = _packet_id(buf, pos)
        granted = []
        for i in range(pos + 2, pos + length):
            code = buf[i]
            if code > 2 and code != 0x80:
                raise ProtocolError("SUBACK with return code 0x%02x" % code)
            granted.append(code)
        return (SUBACK, packet_id, granted)

    def _decode_publish(self, first, pos, length):
        buf = self._buf
        qos = (first >> 1) & 3
        end = pos + length
        if length < 2:
            raise ProtocolError("PUBLISH too short for its topic length")
        tlen = (buf[pos] << 8) | buf[pos + 1]
        topic_start = pos + 2
        topic_end = topic_start + tlen
        body_start = topic_end + (2 if qos else 0)
        if body_start > end:
            raise ProtocolError("PUBLISH shorter than its topic and packet id")
        check_topic_utf8(buf, topic_start, topic_end)
        packet_id = _packet_id(buf, topic_end) if qos else 0
        topic = str(self._mv[topic_start:topic_end], "utf-8")
        payload = bytes(self._mv[body_start:end])
        return (PUBLISH, topic, payload, qos, packet_id, first & 0x08 != 0, first & 0x01 != 0)


def _packet_id(buf, pos):
    packet_id = (buf[pos] << 8) | buf[pos + 1]
    if not packet_id:
        raise ProtocolError("packet id 0")
    return packet_id
