"""Random mutations of valid server-to-client MQTT 3.1.1 packets, and a reference verdict on any bytes.

``mutate(rng)`` returns hostile bytes: 0-2 valid packets, then one valid packet
bit-flipped, truncated, with a lying remaining length, a random first byte, bytes
inserted or deleted, or plain random bytes.

``verdict(data, max_packet)`` is the oracle the harness judges a client by, written
apart from ``device/core/mqtt_codec.py`` on purpose (Python's own UTF-8 decoder,
no shared helpers): ``"valid"`` when ``data`` is whole packets a 3.1.1 broker may
send an open QoS 0/1 session, ``"invalid"`` at the first packet that breaks a rule
(as soon as the bytes show it), ``"incomplete"`` when the last packet is cut short.
"""

from __future__ import annotations

import random

from cloud_shim.faults.scriptbroker import remaining_length

MAX_REMAINING = 268_435_455


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


def _publish(rng: random.Random) -> bytes:
    qos = rng.choice((0, 1))
    topic = rng.choice(("a", "bp/dev/cmd", "t/\u00e9/\u6f22", "x" * rng.randrange(1, 200)))
    name = topic.encode()
    pid = rng.randrange(1, 65536).to_bytes(2, "big") if qos else b""
    payload = rng.randbytes(rng.choice((0, 1, 10, 130, rng.randrange(0, 400))))
    flags = (qos << 1) | rng.choice((0, 1)) | (8 if qos and rng.random() < 0.3 else 0)
    return _packet(0x30 | flags, len(name).to_bytes(2, "big") + name + pid + payload)


def valid_packet(rng: random.Random) -> bytes:
    pick = rng.randrange(6)
    pid = rng.randrange(1, 65536).to_bytes(2, "big")
    if pick == 0:
        return _packet(0x40, pid)  # PUBACK
    if pick == 1:
        return _packet(0x90, pid + bytes(rng.choice((0, 1, 2, 0x80)) for _ in range(rng.randrange(1, 5))))
    if pick == 2:
        return _packet(0xB0, pid)  # UNSUBACK
    if pick == 3:
        return b"\xd0\x00"  # PINGRESP
    return _publish(rng)


def _header_end(packet: bytes) -> int:
    i = 1
    while packet[i] & 0x80:
        i += 1
    return i + 1


MUTATIONS = ("bitflip", "truncate", "length_lie", "first_byte", "insert", "delete", "random")


def mutate(rng: random.Random) -> tuple[str, bytes]:
    """``(mutation name, bytes)``."""
    prefix = b"".join(valid_packet(rng) for _ in range(rng.choice((0, 0, 1, 2))))
    packet = bytearray(valid_packet(rng))
    kind = rng.choice(MUTATIONS)
    if kind == "bitflip":
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(packet))
            packet[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del packet[rng.randrange(1, len(packet)) if len(packet) > 1 else 0 :]
    elif kind == "length_lie":
        end = _header_end(bytes(packet))
        lie = rng.choice((0, 1, 2, 127, 128, 16383, 16384, MAX_REMAINING, rng.randrange(0, 70000)))
        field = remaining_length(lie) if rng.random() < 0.8 else bytes([0xFF, 0xFF, 0xFF, 0xFF, rng.randrange(256)])
        packet[1:end] = field
    elif kind == "first_byte":
        packet[0] = rng.randrange(256)
    elif kind == "insert":
        i = rng.randrange(len(packet) + 1)
        packet[i:i] = rng.randbytes(rng.randrange(1, 5))
    elif kind == "delete":
        i = rng.randrange(len(packet))
        del packet[i : i + rng.randrange(1, 4)]
    else:
        packet = bytearray(rng.randbytes(rng.randrange(1, 64)))
    return kind, prefix + bytes(packet)


# ---------------------------------------------------------------- the oracle


def _topic_ok(raw: bytes) -> bool:
    if not raw:
        return False
    try:
        text = raw.decode("utf-8")  # strict: no overlong forms, no surrogates
    except UnicodeDecodeError:
        return False
    return not any(ch in "+#" or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in text)


def _flags_ok(first: int) -> bool:
    kind, flags = first >> 4, first & 0x0F
    if kind == 3:
        qos = (flags >> 1) & 3
        return qos < 2 and not (qos == 0 and flags & 8)
    # CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP (a CONNACK is refused whole: see _body_ok)
    return kind in (2, 4, 9, 11, 13) and flags == 0


def _length_ok(first: int, remaining: int) -> bool:
    """What the remaining length alone shows (known before the body arrives)."""
    kind = first >> 4
    if kind in (2, 4, 11):
        return remaining == 2
    if kind == 13:
        return remaining == 0
    return remaining >= (3 if kind == 9 else 2)


def _body_ok(first: int, body: bytes) -> bool:
    kind = first >> 4
    if kind == 2:
        return False  # a CONNACK on an open connection
    if kind in (4, 11):
        return len(body) == 2 and body != b"\x00\x00"
    if kind == 13:
        return not body
    if kind == 9:
        return len(body) >= 3 and body[:2] != b"\x00\x00" and all(c in (0, 1, 2, 0x80) for c in body[2:])
    qos = (first >> 1) & 3  # PUBLISH
    if len(body) < 2:
        return False
    tlen = int.from_bytes(body[:2], "big")
    if 2 + tlen + (2 if qos else 0) > len(body) or not _topic_ok(body[2 : 2 + tlen]):
        return False
    return not qos or body[2 + tlen : 4 + tlen] != b"\x00\x00"


def verdict(data: bytes, max_packet: int | None = None) -> str:
    """``"valid"``, ``"invalid"`` or ``"incomplete"`` (see the module docstring)."""
    i, n = 0, len(data)
    while i < n:
        if not _flags_ok(data[i]):
            return "invalid"
        remaining, j, shift = 0, i + 1, 0
        while True:
            if j >= n:
                return "incomplete"
            byte = data[j]
            remaining |= (byte & 0x7F) << shift
            j += 1
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 28:
                return "invalid"
        if not _length_ok(data[i], remaining):
            return "invalid"
        if max_packet is not None and j - i + remaining > max_packet:
            return "invalid"
        if j + remaining > n:
            return "incomplete"
        if not _body_ok(data[i], data[j : j + remaining]):
            return "invalid"
        i = j + remaining
    return "valid"
