"""A minimal baseline TIFF writer for tests: 8/16-bit, strips or tiles, ICC and orientation tags.

Neither Pillow (no 16-bit RGB) nor OpenCV (no ICC, no tiles) writes the files museums send, so the
tests write them byte by byte: little-endian, uncompressed, one IFD. ``claim`` writes a header for
a bigger image than the data (every tile points at the same bytes): a scan over the pixel limit
must be refused from its header, before anything is decoded.
"""

from __future__ import annotations

import struct

import numpy as np

SHORT, LONG, UNDEFINED = 3, 4, 7


def tiff_bytes(
    pixels: np.ndarray,
    *,
    tile: int | None = None,
    icc: bytes | None = None,
    orientation: int | None = None,
    claim: tuple[int, int] | None = None,
) -> bytes:
    """A TIFF of ``pixels`` (H x W x C, uint8 or uint16; C = 1, 3 or 4 with alpha last)."""
    arr = pixels if pixels.ndim == 3 else pixels[..., None]
    height, width, channels = arr.shape
    if claim is not None:
        height, width = claim
    bits = 16 if arr.dtype == np.uint16 else 8
    arr = arr.astype("<u2" if bits == 16 else "u1")
    chunks: list[bytes] = []
    if tile is None:
        chunks.append(np.ascontiguousarray(arr).tobytes())
    else:
        rows, cols = -(-height // tile), -(-width // tile)
        if claim is not None:  # one padded tile of data shared by every tile of the claim
            block = np.zeros((tile, tile, channels), arr.dtype)
            block[: min(tile, arr.shape[0]), : min(tile, arr.shape[1])] = arr[:tile, :tile]
            chunks.append(block.tobytes())
        else:
            for r in range(rows):
                for c in range(cols):
                    block = np.zeros((tile, tile, channels), arr.dtype)
                    part = arr[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
                    block[: part.shape[0], : part.shape[1]] = part
                    chunks.append(block.tobytes())
    # layout: header (8) | data chunks | extra values | IFD
    offset = 8
    data_offsets = []
    for chunk in chunks:
        data_offsets.append(offset)
        offset += len(chunk)
    if tile is not None and claim is not None:
        data_offsets = data_offsets * (-(-height // tile) * -(-width // tile))
        chunks_counts = [len(chunks[0])] * len(data_offsets)
    else:
        chunks_counts = [len(c) for c in chunks]
    extra = bytearray()
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value (raw, LE)

    def add(tag: int, kind: int, values: list[int] | bytes) -> None:
        if kind == UNDEFINED:
            raw, count = bytes(values), len(values)
        else:
            fmt = "<H" if kind == SHORT else "<I"
            raw = b"".join(struct.pack(fmt, v) for v in values)
            count = len(values)
        entries.append((tag, kind, count, raw))

    photometric = 2 if channels >= 3 else 1
    add(256, LONG, [width])
    add(257, LONG, [height])
    add(258, SHORT, [bits] * channels)
    add(259, SHORT, [1])
    add(262, SHORT, [photometric])
    if tile is None:
        add(273, LONG, data_offsets)
    if orientation is not None:
        add(274, SHORT, [orientation])
    add(277, SHORT, [channels])
    if tile is None:
        add(278, LONG, [height])
        add(279, LONG, chunks_counts)
    add(284, SHORT, [1])
    if tile is not None:
        add(322, LONG, [tile])
        add(323, LONG, [tile])
        add(324, LONG, data_offsets)
        add(325, LONG, chunks_counts)
    if channels in (2, 4):
        add(338, SHORT, [2])  # unassociated alpha
    if icc is not None:
        add(34675, UNDEFINED, icc)
    entries.sort()
    extra_offset = offset
    ifd_entries = []
    for tag, kind, count, raw in entries:
        if len(raw) <= 4:
            value = raw.ljust(4, b"\0")
        else:
            value = struct.pack("<I", extra_offset + len(extra))
            extra += raw
            if len(extra) % 2:
                extra += b"\0"
        ifd_entries.append(struct.pack("<HHI", tag, kind, count) + value)
    ifd_offset = extra_offset + len(extra)
    ifd = struct.pack("<H", len(ifd_entries)) + b"".join(ifd_entries) + struct.pack("<I", 0)
    header = b"II*\0" + struct.pack("<I", ifd_offset)
    return header + b"".join(chunks) + bytes(extra) + ifd
