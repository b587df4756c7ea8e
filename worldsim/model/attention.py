"""Attention masks (pure functions) and the self-attention layer of the transformer.

Masks are boolean, True where a query may attend to a key, built per frame and expanded to
tokens: every token of a frame sees every token of the frames it may see (bidirectional within
a frame, DESIGN §6.2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldsim.model.rope import apply_rope


def expand_frame_mask(frame_mask: Tensor, tokens_per_frame: int) -> Tensor:
    """``[..., Fq, Fk]`` frame mask → ``[..., Fq*T, Fk*T]`` token mask."""
    return frame_mask.repeat_interleave(tokens_per_frame, dim=-2).repeat_interleave(
        tokens_per_frame, dim=-1)


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


class SelfAttention(nn.Module):
    """Multi-head attention with RMS-normalised queries/keys and rotary positions.

    `project` returns keys before any rotation, which is what a cache stores (positions are
    assigned when attending, DESIGN §6.3); `attend` rotates and attends.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        # Normalising q and k keeps attention logits bounded, which few-step training needs.
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.out = nn.Linear(dim, dim)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``[B, L, D]`` → q, k, v each ``[B, H, L, head_dim]``, un-rotated."""
        batch, length, _ = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return self.q_norm(query), self.k_norm(key), value

    def attend(self, query: Tensor, key: Tensor, value: Tensor,
               query_rope: tuple[Tensor, Tensor], key_rope: tuple[Tensor, Tensor],
               mask: Tensor | None) -> Tensor:
        """Rotate q/k by their positions and attend; returns ``[B, Lq, D]``."""
        query = apply_rope(query, *query_rope)
        key = apply_rope(key, *key_rope)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        batch, _, length, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(batch, length, -1))
