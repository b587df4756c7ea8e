"""A minimal PNG encoder (8-bit RGB, no interlace) so plots need no imaging dependency.

A PNG is a signature followed by chunks `length | type | data | crc32(type + data)`: IHDR (size and
pixel format), IDAT (the zlib-compressed scanlines, each prefixed by a filter byte) and IEND.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from worldsim.data.atomic import atomic_write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_RGB_COLOUR_TYPE = 2
_FILTER_SUB = 1  # each byte minus the byte one pixel to the left: flat plot areas compress well


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _sub_filtered_scanlines(image: np.ndarray) -> bytes:
    rows = image.reshape(image.shape[0], -1).astype(np.int16)
    filtered = rows.copy()
    filtered[:, 3:] -= rows[:, :-3]
    filtered = (filtered % 256).astype(np.uint8)
    filter_bytes = np.full((image.shape[0], 1), _FILTER_SUB, dtype=np.uint8)
    return np.concatenate([filter_bytes, filtered], axis=1).tobytes()


def encode_png(image: np.ndarray) -> bytes:
    """Encode a `uint8 [H, W, 3]` image as PNG bytes."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ValueError(f"encode_png: expected a non-empty uint8 [H, W, 3] image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, 8, _RGB_COLOUR_TYPE, 0, 0, 0)
    pixels = zlib.compress(_sub_filtered_scanlines(image), level=6)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Encode `image` and write it atomically to `path`."""
    atomic_write_bytes(path, encode_png(image))
