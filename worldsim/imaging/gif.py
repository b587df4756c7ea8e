"""Animated GIF in pure numpy: a 256-colour palette per clip and GIF's LZW coder.

The encoder needs no dependency; `worldsim.imaging.video` prefers Pillow's C coder when it is
installed and falls back on this one.
"""
from __future__ import annotations

import struct

import numpy as np


def gif_palette(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 256-colour palette for `frames` [N,H,W,3] and the palette index of every pixel [N,H,W].

    Exact when the frames use at most 256 colours (rendered game frames usually do). Otherwise
    colours are binned on the finest grid (5, 4, 3 or 2 bits per channel) that has at most 256
    occupied bins, and each bin is drawn in the mean colour of its pixels: the error per channel
    stays within one bin width, whatever the image.
    """
    for bits in (8, 5, 4, 3, 2):
        occupied, counts, indices = _distinct_codes(_rgb_codes(frames, bits).ravel(), 1 << (3 * bits))
        if len(occupied) <= 256:
            break
    sums = np.stack([np.bincount(indices, weights=frames[..., c].ravel(), minlength=len(occupied))
                     for c in range(3)], axis=1)  # fmt: skip
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(occupied)] = np.round(sums / counts[:, None]).astype(np.uint8)
    return palette, indices.astype(np.uint8).reshape(frames.shape[:3])


def _distinct_codes(codes: np.ndarray, num_codes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sorted distinct codes, how often each occurs, the rank of every code among them).

    Long clips count codes in a histogram over all `num_codes` (linear time); a few frames sort
    them instead, where a 2**24-bin histogram would cost more than the pixels themselves.
    """
    if codes.size * 4 < num_codes:
        occupied, indices, counts = np.unique(codes, return_inverse=True, return_counts=True)
        return occupied, counts, indices
    histogram = np.bincount(codes, minlength=num_codes)
    occupied = np.flatnonzero(histogram)
    rank = np.zeros(num_codes, np.int64)
    rank[occupied] = np.arange(len(occupied))
    return occupied, histogram[occupied], rank[codes]


def _rgb_codes(frames: np.ndarray, bits: int) -> np.ndarray:
    channels = (frames >> (8 - bits)).astype(np.int32)
    return (channels[..., 0] << (2 * bits)) | (channels[..., 1] << bits) | channels[..., 2]


def lzw_encode(indices: bytes, min_code_size: int = 8) -> bytes:
    """GIF-flavoured LZW (variable code width up to 12 bits, LSB-first packing, clear when full)."""
    clear_code, end_code = 1 << min_code_size, (1 << min_code_size) + 1
    out = bytearray()
    bit_buffer, bit_count = 0, 0
    code_size = min_code_size + 1

    def emit(code: int) -> None:
        nonlocal bit_buffer, bit_count
        bit_buffer |= code << bit_count
        bit_count += code_size
        while bit_count >= 8:
            out.append(bit_buffer & 0xFF)
            bit_buffer >>= 8
            bit_count -= 8

    table: dict[int, int] = {}
    next_code = end_code + 1
    emit(clear_code)
    prefix = indices[0]
    for index in indices[1:]:
        key = (prefix << 8) | index
        code = table.get(key)
        if code is not None:
            prefix = code
            continue
        emit(prefix)
        if next_code < 4096:
            table[key] = next_code
            next_code += 1
            # The decoder learns each entry one code later, hence ">" rather than ">=".
            if next_code > (1 << code_size) and code_size < 12:
                code_size += 1
        else:
            emit(clear_code)
            table.clear()
            next_code = end_code + 1
            code_size = min_code_size + 1
        prefix = index
    emit(prefix)
    emit(end_code)
    if bit_count:
        out.append(bit_buffer & 0xFF)
    return bytes(out)


def gif_bytes(frames: np.ndarray, fps: float = 15.0) -> bytes:
    """Encode uint8 frames [N,H,W,3] as a looping animated GIF."""
    frames = check_frames(frames)
    _, height, width, _ = frames.shape
    palette, indices = gif_palette(frames)
    delay = max(2, round(100 / fps))  # centiseconds; viewers slow down anything below 2
    parts = [
        b"GIF89a",
        struct.pack("<HHBBB", width, height, 0xF7, 0, 0),  # global table of 256 colours
        palette.tobytes(),
        b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00",  # loop forever
    ]
    for frame_indices in indices:
        data = lzw_encode(frame_indices.tobytes())
        blocks = b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))
        parts += [
            b"\x21\xf9\x04\x00" + struct.pack("<H", delay) + b"\x00\x00",
            b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0),
            b"\x08" + blocks + b"\x00",
        ]
    parts.append(b"\x3b")
    return b"".join(parts)


def check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [N,H,W,3] with N >= 1, got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)
