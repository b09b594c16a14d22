"""On-flash format of the ``log`` backend: segment headers, records, and a scanner.

A segment file (``seg000`` ...) starts with a 16-byte header::

    magic "BPLG" | version u8 | flags u8 | header size u16 | generation u32 | crc32 u32

then records back to back, each a 30-byte header and its body::

    kind u8 | lane u8 | body length u32 | seq u32 | last u32 | boot u32 | created_ms i64 | crc32 u32

little-endian; the CRC32 (``binascii.crc32``) covers the first 26 header bytes
and the body, so a torn or flipped record fails it. Kinds:

* ``RECORD``: an outbox record; body = its payload's compact JSON. ``last``
  is ``seq`` for a plain record; an aggregate (retention fold) has ``seq`` =
  the first seq of its run and ``last`` = the run's last, and replaces every
  record with a seq in ``seq..last`` written before it.
* ``ACK``: every record with ``seq <= seq`` is acked (``last`` = ``seq``).
* ``DROP``: body = the u32 seqs ``ack_seqs`` removed.
* ``CHECKPOINT``: first record of every segment, and one per boot. ``seq`` =
  next seq, ``last`` = acked-up-to, ``boot`` = boot id, ``created_ms`` =
  device uptime over all boots (for the wear rate); body = ``CHECKPOINT_BODY``:
  the oldest generation still in use, this slot's wear before this
  generation (segments started in it, bytes written to it), and the store's
  lifetime counters (``PERSISTED_COUNTERS``).
"""

import struct
from binascii import crc32

from device.compat import const

SEG_MAGIC = b"BPLG"
SEG_VERSION = const(1)
SEG_HEADER = "<4sBBHII"
SEG_HEADER_SIZE = const(16)

REC_HEADER = "<BBIIIIqI"
REC_HEADER_SIZE = const(30)
_CRC_AT = const(26)  # the CRC field's offset: it covers the bytes before it and the body

RECORD = const(0x52)  # "R"
ACK = const(0x41)  # "A"
DROP = const(0x44)  # "D"
CHECKPOINT = const(0x43)  # "C"

# tail generation, segments started in this slot, bytes written to it before, then the counters
CHECKPOINT_BODY = "<IIQIIIIII"
CHECKPOINT_BODY_SIZE = const(40)
CHECKPOINT_SIZE = const(70)  # REC_HEADER_SIZE + CHECKPOINT_BODY_SIZE
SEGMENT_OVERHEAD = const(86)  # SEG_HEADER_SIZE + CHECKPOINT_SIZE
# Counters kept across reboots (corrupt_skipped is what this open found, so it is not).
PERSISTED_COUNTERS = ("appended", "acked", "compacted", "full_rejections", "write_errors", "inbox_evicted")

MAX_BODY = 1 << 24  # a length beyond this is garbage, not a record: never read that much
MAX_SEQ = 0xFFFFFFFF  # seqs are u32: four billion records, 136 years at one per second
_NLANES = const(3)
SCAN_WINDOW = const(1024)  # bytes read at a time when scanning or reading records


def seg_name(slot: int) -> str:
    return "seg%03d" % slot


def parse_seg_name(name: str) -> int:
    """The slot of a segment file name, or -1 if it is not one."""
    if len(name) < 4 or not name.startswith("seg"):
        return -1
    digits = name[3:]
    for ch in digits:
        if ch < "0" or ch > "9":
            return -1
    return int(digits)


def encode_segment_header(gen: int) -> bytes:
    head = struct.pack("<4sBBHI", SEG_MAGIC, SEG_VERSION, 0, SEG_HEADER_SIZE, gen)
    return head + struct.pack("<I", crc32(head) & 0xFFFFFFFF)


def decode_segment_header(data) -> int:  # type: ignore[no-untyped-def]
    """The generation in a segment header; -1 if ``data`` is not a valid one."""
    if len(data) < SEG_HEADER_SIZE:
        return -1
    magic, version, _flags, size, gen, crc = struct.unpack_from(SEG_HEADER, data, 0)
    if magic != SEG_MAGIC or version != SEG_VERSION or size != SEG_HEADER_SIZE:
        return -1
    if crc32(memoryview(data)[:12]) & 0xFFFFFFFF != crc:
        return -1
    return gen  # type: ignore[no-any-return]


def pack_record_header(
    buf: bytearray, kind: int, lane: int, seq: int, last: int, boot: int, created_ms: int, body
) -> None:  # type: ignore[no-untyped-def]
    """Fill ``buf`` (``REC_HEADER_SIZE`` bytes) with a record header for ``body``, CRC included."""
    struct.pack_into(REC_HEADER, buf, 0, kind, lane, len(body), seq, last, boot, created_ms, 0)
    crc = crc32(memoryview(buf)[:_CRC_AT])
    if body:
        crc = crc32(body, crc)
    struct.pack_into("<I", buf, _CRC_AT, crc & 0xFFFFFFFF)


def record_ok(data, offset: int) -> bool:  # type: ignore[no-untyped-def]
    """Whether the whole record at ``offset`` of ``data`` passes its CRC."""
    length = struct.unpack_from("<I", data, offset + 2)[0]
    view = memoryview(data)
    crc = crc32(view[offset : offset + _CRC_AT])
    start = offset + REC_HEADER_SIZE
    if length:
        crc = crc32(view[start : start + length], crc)
    return crc & 0xFFFFFFFF == struct.unpack_from("<I", data, offset + _CRC_AT)[0]  # type: ignore[no-any-return]


def header_problem(kind: int, lane: int, length: int, seq: int, last: int) -> str:
    """Why a record header cannot be right ('' if it can): checked before trusting its length."""
    if kind == RECORD:
        if lane >= _NLANES:
            return "unknown lane %d" % lane
        if last < seq:
            return "seq range %d..%d goes backwards" % (seq, last)
    elif kind == CHECKPOINT:
        if length != CHECKPOINT_BODY_SIZE:
            return "checkpoint of %d bytes" % length
    elif kind == DROP:
        if length % 4:
            return "drop marker of %d bytes" % length
    elif kind != ACK:
        return "unknown record kind 0x%02x" % kind
    if length > MAX_BODY:
        return "record length %d" % length
    return ""


class SegmentScanner:
    """Read one segment's records in order, checking each; stop at the first bad one.

    ``next()`` gives ``(offset, kind, lane, seq, last, boot, created_ms, body)``
    (``body`` a memoryview, valid until the next call) or None at the end.
    Then ``error`` says why it stopped early ('' at a clean end) and ``end``
    is the offset just past the last good record.
    """

    def __init__(self, files, name: str, size: int, start: int = SEG_HEADER_SIZE) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        self.name = name
        self.size = size
        self.end = start
        self.error = ""
        self._window = b""
        self._window_at = start

    def _bytes(self, offset: int, length: int):  # type: ignore[no-untyped-def]
        """``length`` bytes at ``offset`` as (buffer, index), or (None, 0) past the end of file."""
        if offset + length > self.size:
            return None, 0
        rel = offset - self._window_at
        if rel < 0 or rel + length > len(self._window):
            want = length if length > SCAN_WINDOW else SCAN_WINDOW
            if offset + want > self.size:
                want = self.size - offset
            self._window = b""  # drop the old window before reading the next
            self._window = self.files.read_at(self.name, offset, want)
            self._window_at = offset
            rel = 0
            if len(self._window) < length:
                return None, 0
        return self._window, rel

    def next(self):  # type: ignore[no-untyped-def]
        offset = self.end
        if self.error or offset >= self.size:
            return None
        buf, at = self._bytes(offset, REC_HEADER_SIZE)
        if buf is None:
            self.error = "truncated record header (%d bytes)" % (self.size - offset)
            return None
        kind, lane, length, seq, last, boot, created_ms, _crc = struct.unpack_from(REC_HEADER, buf, at)
        problem = header_problem(kind, lane, length, seq, last)
        if problem:
            self.error = problem
            return None
        buf, at = self._bytes(offset, REC_HEADER_SIZE + length)
        if buf is None:
            self.error = "truncated record (%d of %d bytes)" % (self.size - offset, REC_HEADER_SIZE + length)
            return None
        if not record_ok(buf, at):
            self.error = "CRC mismatch"
            return None
        self.end = offset + REC_HEADER_SIZE + length
        body = memoryview(buf)[at + REC_HEADER_SIZE : at + REC_HEADER_SIZE + length]
        return offset, kind, lane, seq, last, boot, created_ms, body
