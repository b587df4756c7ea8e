"""An independent GIF89a reader for the tests of worldsim's GIF writers (written from the spec)."""
from __future__ import annotations

import struct

import numpy as np


def lzw_decode(data: bytes, min_code_size: int) -> list[int]:
    """A plain GIF LZW decoder, written independently of the encoder under test."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    bits = int.from_bytes(data, "little")
    position, code_size = 0, min_code_size + 1
    table: list[list[int]] = []
    previous: list[int] | None = None
    output: list[int] = []
    while True:
        code = (bits >> position) & ((1 << code_size) - 1)
        position += code_size
        if code == clear:
            table = [[i] for i in range(clear)] + [[], []]
            code_size, previous = min_code_size + 1, None
            continue
        if code == end:
            return output
        if previous is None:
            entry = table[code]
        else:
            entry = table[code] if code < len(table) else previous + previous[:1]
            if len(table) < 4096:
                table.append(previous + entry[:1])
        output += entry
        previous = entry
        if len(table) == (1 << code_size) and code_size < 12:
            code_size += 1


def read_gif(data: bytes) -> tuple[list[np.ndarray], list[int], bool]:
    """(frames, delays in centiseconds, loops) of a GIF with global or per-frame colour tables."""
    assert data[:6] == b"GIF89a"
    width, height, flags = struct.unpack("<HHB", data[6:11])
    position, frames, delays, loops = 13, [], [], False
    global_palette = None
    if flags & 0x80:  # a global colour table follows the screen descriptor
        colours = 2 << (flags & 7)
        global_palette = np.frombuffer(data, np.uint8, colours * 3, 13).reshape(-1, 3)
        position += colours * 3
    while data[position] != 0x3B:
        if data[position] == 0x21:  # extension: label, then sub-blocks
            label = data[position + 1]
            if label == 0xF9:
                delays.append(struct.unpack("<H", data[position + 4:position + 6])[0])
            loops |= label == 0xFF and data[position + 3:position + 14] == b"NETSCAPE2.0"
            position += 2
            while data[position]:
                position += data[position] + 1
            position += 1
            continue
        assert data[position] == 0x2C
        left, top, w, h, image_flags = struct.unpack("<HHHHB", data[position + 1:position + 10])
        assert (left, top, w, h) == (0, 0, width, height)
        palette, position = global_palette, position + 10
        if image_flags & 0x80:  # a local colour table for this frame
            palette_size = 2 << (image_flags & 7)
            palette = np.frombuffer(data, np.uint8, palette_size * 3, position).reshape(-1, 3)
            position += palette_size * 3
        min_code_size = data[position]
        position += 1
        compressed = bytearray()
        while data[position]:
            compressed += data[position + 1:position + 1 + data[position]]
            position += data[position] + 1
        position += 1
        indices = np.array(lzw_decode(bytes(compressed), min_code_size))
        frames.append(palette[indices].reshape(height, width, 3))
    return frames, delays, loops
