"""Integer hashing and value noise: the source of the infinite, seed-determined Explorer map.

Every quantity of the map at tile (x, y) is a pure function of (seed, x, y), so no map is ever
stored and any window of it can be computed, for a whole batch of worlds at once, with numpy.
All hashing is done in wrapping uint32 arithmetic, so results are identical on every platform.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIX_1 = np.uint32(0x85EBCA6B)
_MIX_2 = np.uint32(0xC2B2AE35)
_MIX_3 = np.uint32(0x27D4EB2F)
_SALT_STEP = 0x9E3779B9


def seed_to_u32(seeds: np.ndarray) -> np.ndarray:
    """Fold int64 world seeds into the uint32 hash key (both halves matter)."""
    seeds = np.asarray(seeds, dtype=np.int64)
    folded = seeds ^ (seeds >> 32) ^ (seeds << 17)
    return (folded & 0xFFFFFFFF).astype(np.uint32)


def hash_u32(key: np.ndarray, x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Well-mixed uint32 hash of (key, x, y, salt); arrays broadcast against each other."""
    h = key ^ np.uint32((salt * _SALT_STEP) & 0xFFFFFFFF)
    h = (h ^ x.astype(np.uint32)) * _MIX_1
    h ^= h >> np.uint32(13)
    h = (h ^ y.astype(np.uint32)) * _MIX_2
    h ^= h >> np.uint32(16)
    h *= _MIX_3
    h ^= h >> np.uint32(15)
    return h


def _smooth(fraction: np.ndarray) -> np.ndarray:
    return fraction * fraction * (3.0 - 2.0 * fraction)


@dataclass
class NoiseAxes:
    """Where the lattice of one noise scale lies over a window, for each of B worlds."""

    lattice_x: np.ndarray  # int64 (B, lattice_w): lattice x coordinates covering the window
    lattice_y: np.ndarray  # int64 (B, lattice_h)
    along_x: np.ndarray    # float32 (B, lattice_w, width): interpolation weights lattice -> cells
    along_y_t: np.ndarray  # float32 (B, height, lattice_h)


def _axis(origin: np.ndarray, length: int, log2_scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Lattice coordinates covering `length` cells from `origin` and the (B, lattice, length)
    smoothstep interpolation matrix from lattice values to those cells."""
    scale = 1 << log2_scale
    lattice_start = origin >> log2_scale  # arithmetic shift = floor division, also for x < 0
    count = ((scale + length - 2) >> log2_scale) + 2
    lattice = lattice_start[:, None] + np.arange(count, dtype=np.int64)
    offsets = (origin & (scale - 1))[:, None] + np.arange(length, dtype=np.int64)
    fraction = _smooth((offsets & (scale - 1)).astype(np.float32) / np.float32(scale))
    position = (offsets >> log2_scale).astype(np.float32) + fraction  # in lattice units
    # Hat kernel: weight 1 - fraction on the lattice point below, fraction on the one above.
    rows = np.arange(count, dtype=np.float32)[None, :, None]
    matrix = np.maximum(np.float32(0.0), np.float32(1.0) - np.abs(rows - position[:, None, :]))
    return lattice, matrix


def noise_axes(x0: np.ndarray, y0: np.ndarray, height: int, width: int, log2_scale: int) -> NoiseAxes:
    """The lattice layout of scale 2**log2_scale over windows at (x0, y0) of height x width."""
    if height == width:  # square windows (the usual case): both axes in one pass
        lattice, along = _axis(np.concatenate([x0, y0]), width, log2_scale)
        worlds = len(x0)
        lattice_x, lattice_y = lattice[:worlds], lattice[worlds:]
        along_x, along_y = along[:worlds], along[worlds:]
    else:
        lattice_x, along_x = _axis(x0, width, log2_scale)
        lattice_y, along_y = _axis(y0, height, log2_scale)
    return NoiseAxes(lattice_x, lattice_y, along_x, along_y.transpose(0, 2, 1))


def value_noise(key: np.ndarray, axes: NoiseAxes, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1) over the windows described by `axes`; float32 (B, height, width).

    Random values sit on a lattice and are interpolated with a smoothstep; only the few lattice
    points covering the window are hashed, then interpolated separably as two batched matrix
    products. Different salts give independent fields on the same axes.
    """
    corners = hash_u32(key[:, None, None], axes.lattice_x[:, None, :], axes.lattice_y[:, :, None], salt)
    corners = corners.astype(np.float32) * np.float32(1.0 / 2**32)  # (B, lattice_h, lattice_w)
    return axes.along_y_t @ corners @ axes.along_x
