"""Rotary position embeddings over three axes: time, patch row and patch column.

Each attention head's `head_dim / 2` channel pairs are split into a temporal quarter and two
spatial parts (rows, columns) of 3/8 each. A pair (x[i], x[i + head_dim/2]) is rotated by
``position * frequency[i]``. Because a rotation's dot product depends only on the *difference*
of the positions, attention scores see relative time and relative space; no position table
exists, so rollouts of any length never overflow one (DESIGN §6.2, §6.3).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from worldsim.model.config import TransformerConfig


def rope_frequencies(num_pairs: int, base: float) -> Tensor:
    """Geometric frequencies ``base ** (-i / num_pairs)`` for i in [0, num_pairs)."""
    return base ** (-torch.arange(num_pairs, dtype=torch.float64) / num_pairs)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs (x[..., i], x[..., i + d/2]) by the angles whose cos/sin are given.

    `x` is ``[..., L, d]``; `cos` and `sin` are ``[..., L, d/2]`` and broadcast against it.
    """
    first, second = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


class RotaryEmbedding(nn.Module):
    """Angles for tokens given the temporal position of their frame.

    Tokens of a frame are laid out row-major over the `grid_size`² patch grid, frames one after
    another, exactly as `CausalTransformer` flattens them.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        pairs = config.head_dim // 2
        temporal_pairs = config.head_dim // 8
        spatial_pairs = (pairs - temporal_pairs) // 2
        self.tokens_per_frame = config.tokens_per_frame
        self.register_buffer("temporal_freqs",
                             rope_frequencies(temporal_pairs, config.rope_base).float(),
                             persistent=False)
        rows, cols = torch.meshgrid(torch.arange(config.grid_size), torch.arange(config.grid_size),
                                    indexing="ij")
        spatial_freqs = rope_frequencies(spatial_pairs, config.rope_base)
        spatial_angles = torch.cat((rows.reshape(-1, 1) * spatial_freqs,
                                    cols.reshape(-1, 1) * spatial_freqs), dim=-1)
        self.register_buffer("spatial_angles", spatial_angles.float(), persistent=False)

    def forward(self, frame_positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos, sin of shape ``[B, 1, F*T, head_dim/2]`` for frame positions ``[B, F]``.

        The singleton dim broadcasts over heads.
        """
        batch, frames = frame_positions.shape
        temporal = frame_positions.float()[..., None] * self.temporal_freqs  # [B, F, pt]
        temporal = temporal[:, :, None].expand(-1, -1, self.tokens_per_frame, -1)
        spatial = self.spatial_angles.expand(batch, frames, -1, -1)  # [B, F, T, ps]
        angles = torch.cat((temporal, spatial), dim=-1).flatten(1, 2)[:, None]
        return angles.cos(), angles.sin()
