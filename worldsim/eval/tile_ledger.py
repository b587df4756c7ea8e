"""Where the tiles of one class come from between consecutive parsed views: pure numpy.

A view follows the player, so between two frames its content moves by the player's step. With the
step known, every tile of a class (a coin, say) in the frame after is one of:
- *kept*: it was there in the frame before, one step away;
- *revealed*: it lies in the row or column the step brought into view (no frame could know it);
- *appeared*: it lies in ground that was in view before, where there was none of it.
And every such tile of the frame before, still in view, that the frame after does not show has
*vanished*. In the game coins only vanish under the player (collected) and never appear, so a world
that makes coins appear, or reveals more of them than the game, pays a coin-seeker more than the
game would. The player's own tile is left out of all four counts.

Tile maps are `[N, h, w]` class indices (the frame parser's output); steps are `[N, 2]` (dx, dy)
map tiles, the convention of `worldsim.eval.regions`: cell (r, c) after shows cell (r + dy, c + dx)
before.
"""
from __future__ import annotations

import numpy as np

from worldsim.eval.regions import shifted

# The steps a view follows its player by in one frame: none, or one tile up, down, left or right.
ONE_TILE_STEPS = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)


def view_steps(before: np.ndarray, after: np.ndarray, candidates: np.ndarray = ONE_TILE_STEPS) -> np.ndarray:
    """The candidate (dx, dy) under which each pair of tile maps agrees best on the ground both
    show: `[N, 2]`. Works on generated frames, where the action taken need not be what happened."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f"tile maps must be two [N, h, w] arrays of one shape, got {before.shape} and {after.shape}")
    candidates = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)
    agreement = np.stack([_agreement(before, after, int(dx), int(dy)) for dx, dy in candidates], axis=1)
    return candidates[agreement.argmax(axis=1)]


def _agreement(before: np.ndarray, after: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Share of the cells in view in both frames whose class is the same under step (dx, dy): `[N]`."""
    known = shifted(np.ones(before.shape[-2:], dtype=bool), dy, dx)
    same = (shifted(before, dy, dx) == after) & known
    return same.sum(axis=(1, 2)) / max(int(known.sum()), 1)


def tile_ledger(before: np.ndarray, after: np.ndarray, steps: np.ndarray, tile_class: int) -> dict[str, np.ndarray]:
    """Counts per pair (int64 `[N]`) of `tile_class` tiles after the step: `visible`, `kept`,
    `revealed`, `appeared`, and of those before that `vanished` (the player's tile left out)."""
    before, after = np.asarray(before), np.asarray(after)
    steps = np.asarray(steps, dtype=np.int64)
    if before.shape != after.shape or before.ndim != 3 or steps.shape != (len(before), 2):
        raise ValueError(f"need tile maps [N, h, w] of one shape and steps [N, 2], got {before.shape}, "
                         f"{after.shape}, {steps.shape}")
    height, width = before.shape[1:]
    elsewhere = np.ones((height, width), dtype=bool)
    elsewhere[height // 2, width // 2] = False  # the player's tile
    was, now = before == tile_class, (after == tile_class) & elsewhere
    moved, known = np.zeros_like(was), np.zeros_like(was)
    for n, (dx, dy) in enumerate(steps):
        moved[n] = shifted(was[n], int(dy), int(dx)) & elsewhere
        known[n] = shifted(np.ones((height, width), dtype=bool), int(dy), int(dx))
    count = lambda flags: flags.sum(axis=(1, 2)).astype(np.int64)  # noqa: E731
    return {"visible": count(now), "kept": count(now & moved), "revealed": count(now & ~known),
            "appeared": count(now & known & ~moved), "vanished": count(moved & ~now)}
