"""The ``log`` backend's files besides segments: the state snapshot and the boot marker.

``state.json`` holds every state entry and the inbox, replaced whole and
atomically (``Files.replace``: temp file, sync, rename) on each change, so
after a power cut it is the old snapshot or the new one. Its first line is
``BPST1 <crc32 hex> <body length>``: a snapshot damaged later (flash bit rot,
a stray write) is refused and reported instead of half-read.

``boot.N`` is an empty file naming the last boot id: counting a boot writes no
data, so it works on a full flash too. Leftovers are harmless (max wins).
"""

import json
from binascii import crc32

from device.store.base import ORIGINS
from device.store.fileio import name_number

STATE_FILE = "state.json"
BOOT_PREFIX = "boot."
_STATE_MAGIC = "BPST1"


def boot_of(name: str) -> int:
    """The boot id a ``boot.N`` file names, or -1."""
    if not name.startswith(BOOT_PREFIX):
        return -1
    return name_number(name[len(BOOT_PREFIX) :])


def frame_snapshot(body: bytes) -> bytes:
    """The file content for a snapshot body (compact JSON): header line, then the body."""
    return ("%s %08x %d\n" % (_STATE_MAGIC, crc32(body) & 0xFFFFFFFF, len(body))).encode() + body


def decode_snapshot(data: bytes):  # type: ignore[no-untyped-def]
    """``(snapshot dict, '')`` or ``(None, why it is unusable)``."""
    try:
        nl = data.find(b"\n")
        if nl < 0:
            return None, "no header line"
        parts = data[:nl].decode().split(" ")
        if len(parts) != 3 or parts[0] != _STATE_MAGIC:
            return None, "not a state snapshot"
        crc = int(parts[1], 16)
        length = int(parts[2])
        body = data[nl + 1 :]
        if len(body) != length:
            return None, "truncated (%d of %d bytes)" % (len(body), length)
        if crc32(body) & 0xFFFFFFFF != crc:
            return None, "CRC mismatch"
        snap = json.loads(body)
        for item in snap["state"]:
            key, _, version, origin, stamp = item
            if (
                not isinstance(key, str)
                or not isinstance(version, int)
                or not isinstance(stamp, int)
                or origin not in ORIGINS
            ):
                return None, "bad state entry %r" % (item,)
        for item in snap["inbox"]:
            if len(item) != 2 or not isinstance(item[0], str) or not isinstance(item[1], int):
                return None, "bad inbox entry %r" % (item,)
        if not isinstance(snap.get("wear_bytes", 0), int) or not isinstance(snap.get("boot", 0), int):
            return None, "bad boot or wear figure"
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # UnicodeError is a ValueError
        return None, "unreadable (%s)" % (exc,)
    return snap, ""
