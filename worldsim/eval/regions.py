"""Which parts of a frame a world model could know: pure numpy masks from the player's track.

The true game's view is `view` tiles square with the player on tile (view // 2, view // 2), so tile
(row r, column c) of a frame taken at player tile (x, y) shows the map tile
(x - view // 2 + c, y - view // 2 + r). Two frames taken at positions p_t and p_s therefore share
tile (r, c) of frame t exactly when (c + dx, r + dy) lies inside the view, (dx, dy) = p_t - p_s.

- `seen_tiles`: tiles of frame t whose map tile was in view in one of the first `context[t]`
  frames (the *known region*: a newly revealed row or column cannot be known, only imagined);
- `always_visible_tiles`: tiles of frame t whose map tile was in view in every frame 0..t;
- `previous_in_view`: tile maps of the frames before, moved into the cells of the frames after;
- `pixel_mask`: a tile mask blown up to pixels.

Positions are int arrays `[..., T, 2]` of (x, y) map tiles; masks are bool `[..., T, view, view]`.
"""
from __future__ import annotations

import numpy as np


def _shared_tiles(positions: np.ndarray, view: int) -> np.ndarray:
    """bool `[..., T, S, view, view]`: tile (r, c) of frame t was in view in frame s."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.ndim < 2 or positions.shape[-1] != 2:
        raise ValueError(f"positions must be [..., T, 2] (x, y) tiles, got shape {positions.shape}")
    if view < 1:
        raise ValueError(f"view must be >= 1 tile, got {view}")
    offsets = positions[..., :, None, :] - positions[..., None, :, :]  # [..., T, S, 2] = p_t - p_s
    cells = np.arange(view)
    columns = (cells + offsets[..., 0:1] >= 0) & (cells + offsets[..., 0:1] < view)  # [..., T, S, view]
    rows = (cells + offsets[..., 1:2] >= 0) & (cells + offsets[..., 1:2] < view)
    return rows[..., :, None] & columns[..., None, :]


def seen_tiles(positions: np.ndarray, view: int, context: np.ndarray | int) -> np.ndarray:
    """Tiles of every frame t already seen in frames `0 .. context[t] - 1`.

    `context` is one count for every frame or `[T]` counts (teacher forcing sees frames 0..t-1
    before generating frame t: `context = arange(T)`). A count of 0 gives an empty mask.
    """
    shared = _shared_tiles(positions, view)
    num_frames = shared.shape[-4]
    context = np.broadcast_to(np.asarray(context, dtype=np.int64), (num_frames,))
    if context.min() < 0:
        raise ValueError(f"context counts must be >= 0, got {context.min()}")
    in_context = np.arange(num_frames)[None, :] < context[:, None]  # [T, S]
    return np.any(shared & in_context[:, :, None, None], axis=-3)


def always_visible_tiles(positions: np.ndarray, view: int) -> np.ndarray:
    """Tiles of every frame t whose map tile was in view in every frame 0..t."""
    shared = _shared_tiles(positions, view)
    num_frames = shared.shape[-4]
    later = np.arange(num_frames)[None, :] > np.arange(num_frames)[:, None]  # s > t: does not count
    return np.all(shared | later[:, :, None, None], axis=-3)


def previous_in_view(previous: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bool tile maps of the frames before, moved into the cells of the frames after.

    previous ``[N, T, h, w]``; shift ``[N, T, 2]`` the player's (dx, dy) map step between them,
    so cell (r, c) of the frame after showed map tile (r + dy, c + dx) of the frame before.
    Returns the moved maps and where they are known (cells that were in view before).
    """
    moved, known = np.zeros_like(previous), np.zeros_like(previous)
    in_view = np.ones(previous.shape[-2:], dtype=previous.dtype)
    for n, t in np.ndindex(*previous.shape[:2]):
        dx, dy = (int(v) for v in shift[n, t])
        moved[n, t], known[n, t] = shifted(previous[n, t], dy, dx), shifted(in_view, dy, dx)
    return moved, known


def shifted(flags: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """`flags` read `rows` down and `cols` right of every cell of the last two axes (zero off the edge)."""
    moved = np.zeros_like(flags)
    height, width = flags.shape[-2:]
    moved[..., max(-rows, 0) : height - max(rows, 0), max(-cols, 0) : width - max(cols, 0)] = \
        flags[..., max(rows, 0) : height + min(rows, 0), max(cols, 0) : width + min(cols, 0)]
    return moved


def pixel_mask(tiles: np.ndarray, tile_pixels: int) -> np.ndarray:
    """bool `[..., v, v]` tiles → bool `[..., v * p, v * p]` pixels."""
    return np.repeat(np.repeat(np.asarray(tiles, dtype=bool), tile_pixels, axis=-2), tile_pixels, axis=-1)
