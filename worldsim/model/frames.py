"""Conversions between uint8 frames at the edges and float pixels inside the networks."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_pixels(frames: Tensor | np.ndarray, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 ``[..., H, W, 3]`` → float ``[N, 3, H, W]`` in [-1, 1], leading dims flattened to N."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [..., H, W, 3], got {tuple(frames.shape)}")
    frames = frames.to(device) if device is not None else frames
    pixels = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2)
    return pixels.to(dtype) / 127.5 - 1.0


def to_frames(pixels: Tensor) -> Tensor:
    """float ``[N, 3, H, W]`` (nominally [-1, 1]) → uint8 ``[N, H, W, 3]``, rounded and clamped."""
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must have shape [N, 3, H, W], got {tuple(pixels.shape)}")
    values = ((pixels.float() + 1.0) * 127.5).round().clamp(0, 255)
    return values.to(torch.uint8).permute(0, 2, 3, 1).contiguous()
