"""MQTT framing for the fault proxy: which bytes of a stream belong to which packet.

Only the fixed header is read (type in the first byte, then the remaining
length, 1-4 bytes); the proxy uses it to drop PUBACKs and pass the rest intact.
"""

from __future__ import annotations

PUBACK = 4


class MqttFramer:
    """Splits a byte stream into runs that each belong to one MQTT packet, without holding bytes back.

    The packet type is in the first byte, so whether to drop a packet is known
    before the rest arrives. After a malformed length (more than 4 bytes) the
    stream is no longer framed: every later run has type -1.
    """

    def __init__(self) -> None:
        self._state = 0  # 0: at a packet start, 1: in the remaining length, 2: in the body
        self._type = -1
        self._left = 0
        self._shift = 0
        self.broken = False

    def runs(self, data: bytes) -> list[tuple[int, int, int, bool]]:
        """``[(start, end, packet type, starts a packet), ...]`` covering ``data``."""
        if self.broken:
            return [(0, len(data), -1, False)]
        out = []
        i, n = 0, len(data)
        while i < n:
            start, starts = i, False
            if self._state == 0:
                self._type = data[i] >> 4
                self._state, self._left, self._shift, starts = 1, 0, 0, True
                i += 1
            while i < n and self._state == 1:
                byte = data[i]
                i += 1
                self._left |= (byte & 0x7F) << self._shift
                self._shift += 7
                if not byte & 0x80:
                    self._state = 2 if self._left else 0
                elif self._shift >= 28:
                    self.broken = True
                    out.append((start, n, -1, starts))
                    return out
            if self._state == 2 and i < n:
                take = min(self._left, n - i)
                i += take
                self._left -= take
                if not self._left:
                    self._state = 0
            out.append((start, i, self._type, starts))
        return out


def connect_client_id(data: bytes) -> str | None:
    """The client id of the MQTT CONNECT at the start of ``data``; None if it is not one (or incomplete)."""
    if len(data) < 2 or data[0] >> 4 != 1:
        return None
    i, shift, length = 1, 0, 0
    while i < len(data) and i <= 4:
        byte = data[i]
        length |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            break
    else:
        return None
    if len(data) < i + length or length < 12:
        return None
    name_len = int.from_bytes(data[i : i + 2], "big")
    j = i + 2 + name_len + 4  # protocol name, level, flags, keepalive
    if j + 2 > i + length:
        return None
    id_len = int.from_bytes(data[j : j + 2], "big")
    raw = data[j + 2 : j + 2 + id_len]
    if len(raw) != id_len:
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
