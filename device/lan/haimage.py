"""A greyscale frame as a BMP file for Home Assistant's ``image`` entity (pure).

Home Assistant shows what arrives on ``image_topic`` as a file of its
``content_type``; browsers render BMP, not the PGM the LAN API serves. An
8-bit BMP is the frame plus a 1,078-byte header (a 256-grey palette), rows
bottom-up, each padded to 4 bytes: no compression, nothing to allocate per
pixel.
"""

import struct

_HEADER = 14 + 40 + 1024  # file header, info header, palette


def _palette() -> bytes:
    out = bytearray(1024)
    for i in range(256):
        j = i * 4
        out[j] = out[j + 1] = out[j + 2] = i  # blue, green, red; the 4th byte stays 0
    return bytes(out)


def grey_bmp(width: int, height: int, pixels) -> bytes:  # type: ignore[no-untyped-def]
    """``pixels``: ``width * height`` bytes, row by row from the top."""
    if width <= 0 or height <= 0 or len(pixels) != width * height:
        raise ValueError("expected %d x %d pixels, got %d bytes" % (width, height, len(pixels)))
    stride = (width + 3) & ~3
    size = _HEADER + stride * height
    out = bytearray(size)
    out[0:2] = b"BM"
    out[2:14] = struct.pack("<IHHI", size, 0, 0, _HEADER)
    # BITMAPINFOHEADER: a positive height means rows are stored bottom-up.
    out[14:54] = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, stride * height, 2835, 2835, 256, 0)
    out[54:_HEADER] = _palette()
    mv = memoryview(pixels)
    for row in range(height):
        at = _HEADER + (height - 1 - row) * stride
        out[at : at + width] = mv[row * width : (row + 1) * width]
    return bytes(out)
