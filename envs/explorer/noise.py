"""Integer hashing and value noise: the source of the infinite, seed-determined Explorer map.

Every quantity of the map at tile (x, y) is a pure function of (seed, x, y), so no map is ever
stored and any window of it can be computed, for a whole batch of worlds at once, with numpy.
All hashing is done in wrapping uint32 arithmetic, so results are identical on every platform.
"""
from __future__ import annotations

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


def _lattice_axis(origin: np.ndarray, length: int, log2_scale: int) -> tuple[np.ndarray, ...]:
    """Lattice coordinates covering `length` cells from `origin`, each cell's lattice slot, weight."""
    scale = 1 << log2_scale
    lattice_start = origin >> log2_scale  # arithmetic shift = floor division, also for x < 0
    count = ((scale + length - 2) >> log2_scale) + 2
    lattice = lattice_start[:, None] + np.arange(count, dtype=np.int64)
    offsets = (origin & (scale - 1))[:, None] + np.arange(length, dtype=np.int64)
    slot = offsets >> log2_scale
    weight = _smooth((offsets & (scale - 1)).astype(np.float32) / np.float32(scale))
    return lattice, slot, weight


def value_noise(
    key: np.ndarray, x0: np.ndarray, y0: np.ndarray, height: int, width: int, log2_scale: int, salt: int
) -> np.ndarray:
    """Smooth noise in [0, 1) on the window [y0, y0+height) x [x0, x0+width) of each world.

    key, x0, y0: (B,). Returns float32 (B, height, width). Random values sit on a lattice every
    2**log2_scale tiles and are interpolated with a smoothstep; only the few lattice points that
    cover the window are hashed, then interpolated separably (along x, then along y).
    """
    lattice_x, slot_x, weight_x = _lattice_axis(x0, width, log2_scale)
    lattice_y, slot_y, weight_y = _lattice_axis(y0, height, log2_scale)
    corners = hash_u32(key[:, None, None], lattice_x[:, None, :], lattice_y[:, :, None], salt)
    corners = corners.astype(np.float32) * np.float32(1.0 / 2**32)  # (B, ly, lx)
    left = np.take_along_axis(corners, slot_x[:, None, :], axis=2)
    right = np.take_along_axis(corners, slot_x[:, None, :] + 1, axis=2)
    rows = left + (right - left) * weight_x[:, None, :]  # (B, ly, width)
    top = np.take_along_axis(rows, slot_y[:, :, None], axis=1)
    bottom = np.take_along_axis(rows, slot_y[:, :, None] + 1, axis=1)
    return top + (bottom - top) * weight_y[:, :, None]
