"""Frame resizing and cropping in numpy: recorded games come in every size, worlds are square.

`resize_frames` averages the source pixels each target pixel covers (area resampling), which keeps
thin sprites (a ball, a paddle) visible when a 210x160 Atari frame becomes 64x64, where nearest-
neighbour sampling would drop them between samples. Upscaling with the same weights repeats
pixels (each target pixel lies inside one or two source pixels).
"""
from __future__ import annotations

import numpy as np

__all__ = ["area_weights", "resize_frames", "crop_frames"]


def area_weights(source: int, target: int) -> np.ndarray:
    """float64 [target, source]: the share of target pixel i that source pixel j covers (rows sum to 1)."""
    if source < 1 or target < 1:
        raise ValueError(f"sizes must be positive, got source={source}, target={target}")
    scale = source / target
    low = np.arange(target)[:, None] * scale
    high = low + scale
    left = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(high, left + 1) - np.maximum(low, left), 0.0, None)
    return overlap / scale


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [..., H, W, C] -> uint8 [..., height, width, C] by area averaging (rounded)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3:
        raise ValueError(f"frames must be uint8 [..., H, W, C], got {frames.dtype} {frames.shape}")
    source_height, source_width = frames.shape[-3:-1]
    if (source_height, source_width) == (height, width):
        return frames.copy()
    rows = area_weights(source_height, height)
    columns = area_weights(source_width, width)
    # [..., H, W, C] -> [..., height, W, C] -> [..., height, width, C]
    resized = np.einsum("ih,...hwc->...iwc", rows, frames.astype(np.float64))
    resized = np.einsum("jw,...iwc->...ijc", columns, resized)
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8)


def crop_frames(frames: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Remove `top`/`bottom` rows and `left`/`right` columns of [..., H, W, C] frames (a view)."""
    height, width = np.shape(frames)[-3:-1]
    if min(top, bottom, left, right) < 0 or top + bottom >= height or left + right >= width:
        raise ValueError(f"crop {top},{bottom},{left},{right} (top,bottom,left,right) must be >= 0 and "
                         f"leave pixels of the {height}x{width} frames")
    return frames[..., top:height - bottom, left:width - right, :]
