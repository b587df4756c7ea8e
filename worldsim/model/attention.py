"""Attention masks (pure functions) and the self-attention layer of the transformer.

Masks are boolean, True where a query may attend to a key, built per frame and expanded to
tokens: every token of a frame sees every token of the frames it may see (bidirectional within
a frame).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldsim.model.rope import apply_rope_


def expand_frame_mask(frame_mask: Tensor, tokens_per_frame: int) -> Tensor:
    """``[..., Fq, Fk]`` frame mask → ``[..., Fq*T, Fk*T]`` token mask."""
    *lead, query_frames, key_frames = frame_mask.shape
    tokens = frame_mask[..., :, None, :, None].expand(*lead, query_frames, tokens_per_frame,
                                                      key_frames, tokens_per_frame)
    return tokens.reshape(*lead, query_frames * tokens_per_frame, key_frames * tokens_per_frame)


def frame_causal_mask(num_frames: int, device: torch.device | None = None) -> Tensor:
    """``[F, F]``: frame f sees frames <= f."""
    return torch.ones(num_frames, num_frames, dtype=torch.bool, device=device).tril()


def teacher_forcing_mask(num_frames: int, device: torch.device | None = None) -> Tensor:
    """``[2F, 2F]`` for the layout ``[clean 0..F-1 ; noisy 0..F-1]``.

    Clean frames are frame-causal among themselves; noisy frame f sees the clean frames < f and
    itself, never another noisy frame, so every noisy frame is denoised from the true past.
    """
    causal = frame_causal_mask(num_frames, device)
    strictly_past = causal.tril(diagonal=-1)
    own_frame = torch.eye(num_frames, dtype=torch.bool, device=device)
    no_view = torch.zeros_like(causal)
    return torch.cat((torch.cat((causal, no_view), dim=1),
                      torch.cat((strictly_past, own_frame), dim=1)), dim=0)


def mask_to_bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean mask → additive bias (0 where allowed, -inf elsewhere).

    Converting once per forward spares every layer's attention the same conversion.
    """
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask,
                                                                                 float("-inf"))


class AttentionGroup(NamedTuple):
    """Queries `queries` attend to keys `keys` (token slices) with an additive `bias` (None: all
    of them). Splitting a pass into groups spares attending to keys a mask would hide."""

    queries: slice
    keys: slice
    bias: Tensor | None


class SelfAttention(nn.Module):
    """Multi-head attention with RMS-normalised queries/keys and rotary positions.

    `project` rotates the spatial channels only, so its keys are what a cache stores (temporal
    positions are assigned when attending); `attend` rotates the temporal channels
    ``[0, temporal_channels)`` and attends.
    """

    def __init__(self, dim: int, num_heads: int, temporal_channels: int) -> None:
        super().__init__()
        self.temporal_channels = temporal_channels
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        # Normalising q and k keeps attention logits bounded, which few-step training needs.
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def project(self, x: Tensor, spatial_rope: tuple[Tensor, Tensor]
                ) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, L, D]`` → q, k, v each ``[B, H, L, head_dim]``; q/k rotated in space only."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        # q and k are normalised (each with its own weight; both norms use eps 1e-6) and rotated
        # in space together, in [B, L, 2, H, head_dim] layout with cos/sin broadcast over (2, H):
        # half the small operations, which dominate at batch 1.
        weight = torch.stack((self.q_norm.weight, self.k_norm.weight))[:, None]
        query_key = F.rms_norm(qkv[:, :, :2], (self.head_dim,), eps=self.q_norm.eps) * weight
        cos, sin = spatial_rope[0][:, None, None], spatial_rope[1][:, None, None]
        apply_rope_(query_key, cos, sin, start=self.temporal_channels)
        # Indexing, not unbind: autograd lets `attend` rotate a single view in place.
        query, key, value = query_key[:, :, 0], query_key[:, :, 1], qkv[:, :, 2]
        return query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)

    def attend(self, query: Tensor, key: Tensor, value: Tensor,
               query_rope: tuple[Tensor, Tensor], key_rope: tuple[Tensor, Tensor],
               groups: list[AttentionGroup]) -> Tensor:
        """Rotate q/k in time by their temporal cos/sin — in place: the callers pass tensors
        made for this call — and attend per group (biases from `mask_to_bias`); returns
        ``[B, Lq, D]`` for the groups' queries, in group order."""
        query = apply_rope_(query, *query_rope)
        key = apply_rope_(key, *key_rope)
        outs = [F.scaled_dot_product_attention(
                    query[:, :, group.queries], key[:, :, group.keys], value[:, :, group.keys],
                    attn_mask=None if group.bias is None else group.bias.to(query.dtype))
                for group in groups]
        out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
        batch, _, length, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(batch, length, -1))
