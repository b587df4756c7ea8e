"""Rotary position embeddings over three axes: time, patch row and patch column.

Each attention head's channels are split into a temporal quarter ``[0, head_dim/4)`` and a
spatial rest, whose pairs are shared between patch rows and patch columns. Within a part of
width d, the pair (x[i], x[i + d/2]) is rotated by ``position * frequency[i]``. A rotation's dot
product depends only on the *difference* of the positions, so attention scores see relative
time and relative space; no position table exists, so rollouts of any length never overflow
one.

The two parts are applied at different moments: the spatial rotation when keys are projected
(a token's place in its frame never changes), the temporal one only when attending, because a
cached frame's temporal position changes as the window slides (see kv_cache.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from worldsim.model.config import TransformerConfig


def rope_frequencies(num_pairs: int, base: float) -> Tensor:
    """Geometric frequencies ``base ** (-i / num_pairs)`` for i in [0, num_pairs)."""
    return base ** (-torch.arange(num_pairs, dtype=torch.float64) / num_pairs)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor, start: int = 0) -> Tensor:
    """Rotate the channels ``[start, start + d)`` of `x`, d = 2 * cos.shape[-1], in pairs
    (x[..., start + i], x[..., start + i + d/2]); the other channels pass through.

    `x` is ``[..., L, channels]``; `cos` and `sin` are ``[..., L, d/2]`` and broadcast against it.
    """
    return apply_rope_(x.clone(), cos, sin, start)


def apply_rope_(x: Tensor, cos: Tensor, sin: Tensor, start: int = 0) -> Tensor:
    """`apply_rope` in place (the same floating-point operations); returns `x`.

    For tensors nothing else reads: rotating in place spares copying the channels the rotation
    leaves alone (three quarters of them for the temporal part), which every attention pass
    would otherwise do for all cached keys. `cos`/`sin` must broadcast to `x`'s shape.
    """
    half = cos.shape[-1]
    first = x[..., start:start + half]
    second = x[..., start + half:start + 2 * half]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    first_sin, second_sin = first * sin, second * sin
    first.mul_(cos).sub_(second_sin)
    second.mul_(cos).add_(first_sin)
    return x


class RotaryEmbedding(nn.Module):
    """cos/sin tables for the spatial and the temporal part of each head.

    Tokens of a frame are laid out row-major over the `grid_size`² patch grid, frames one after
    another, exactly as `CausalTransformer` flattens them.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pairs = config.head_dim // 2
        temporal_pairs = config.head_dim // 8
        spatial_pairs = (pairs - temporal_pairs) // 2
        self.tokens_per_frame = config.tokens_per_frame
        self.temporal_channels = 2 * temporal_pairs
        self.register_buffer("temporal_freqs",
                             rope_frequencies(temporal_pairs, config.rope_base).float(),
                             persistent=False)
        rows, cols = torch.meshgrid(torch.arange(config.grid_size), torch.arange(config.grid_size),
                                    indexing="ij")
        spatial_freqs = rope_frequencies(spatial_pairs, config.rope_base)
        spatial_angles = torch.cat((rows.reshape(-1, 1) * spatial_freqs,
                                    cols.reshape(-1, 1) * spatial_freqs), dim=-1).float()
        self.register_buffer("spatial_cos", spatial_angles.cos(), persistent=False)
        self.register_buffer("spatial_sin", spatial_angles.sin(), persistent=False)

    def spatial(self, num_frames: int) -> tuple[Tensor, Tensor]:
        """cos, sin ``[F*T, spatial_channels/2]`` for the spatial channels of F frames."""
        return tuple(table.expand(num_frames, -1, -1).reshape(-1, table.shape[-1])
                     for table in (self.spatial_cos, self.spatial_sin))

    def temporal(self, frame_positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos, sin ``[B, 1, F*T, temporal_channels/2]`` for frame positions ``[B, F]``.

        The singleton dim broadcasts over heads.
        """
        batch, frames = frame_positions.shape
        angles = frame_positions.float()[..., None] * self.temporal_freqs  # [B, F, pairs]
        cos, sin = (table[:, :, None].expand(-1, -1, self.tokens_per_frame, -1)
                    .reshape(batch, 1, frames * self.tokens_per_frame, -1)
                    for table in (angles.cos(), angles.sin()))
        return cos, sin
