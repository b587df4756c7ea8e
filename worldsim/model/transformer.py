"""The causal diffusion transformer: the world's dynamics model.

Latents ``[B, F, C, h, w]`` become `patch_size`² patch tokens (64 tokens per 16x16 frame by
default): through a linear patch embedding, or — with `local_channels > 0` — through the conv
local path of local_path.py, which sees every frame at latent-cell resolution together with its
previous latents and its action, and also produces the velocity from the transformer's output.
Every frame f carries its own condition

    c_f = emb_sigma(sigma_f) + emb_action(a_{f-1}) + proj(e_f)

which drives AdaLN-zero shift/scale/gate in every block. Positions are rotary: spatial inside a
frame, temporal relative across frames (see rope.py). The network predicts the flow-matching
velocity ``v = noise - x0`` for every frame (see flow.py).

Entry points, all sharing one block stack:
- `forward(..., mode="causal" | "bidirectional")`: a whole clip at once;
- `forward_teacher_forcing`: the ``[clean ; noisy]`` layout of the AR teacher;
- `forward_cached`: incremental generation against a `KVCache`.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from worldsim.model.attention import (
    AttentionGroup,
    SelfAttention,
    expand_frame_mask,
    frame_causal_mask,
    mask_to_bias,
    teacher_forcing_mask,
)
from worldsim.model.config import TransformerConfig
from worldsim.model.kv_cache import KVCache, attention_groups, repeats_sink
from worldsim.model.local_path import LocalPath, previous_frames
from worldsim.model.rope import RotaryEmbedding

Rope = tuple[Tensor, Tensor]
Previous = tuple[Tensor, Tensor] | None  # predecessors [B, F, K, C, h, w] and levels [B, F, K]
MaskedGroup = tuple[slice, slice, Tensor | None]  # query frames, key frames, frame mask


def token_slice(frames: slice, tokens_per_frame: int) -> slice:
    """The tokens of a slice of frames (stop None: to the end)."""
    stop = None if frames.stop is None else frames.stop * tokens_per_frame
    return slice(frames.start * tokens_per_frame, stop)


def whole(mask: Tensor | None) -> list[MaskedGroup]:
    """One attention group: every query frame over every key frame."""
    return [(slice(0, None), slice(0, None), mask)]


class SigmaEmbedding(nn.Module):
    """Sinusoidal features of the noise level followed by a small MLP."""

    def __init__(self, dim: int, num_features: int = 256) -> None:
        super().__init__()
        half = num_features // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half) / half),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(num_features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sigma: Tensor) -> Tensor:
        # Scale sigma in [0, 1] up so that the sinusoids resolve small differences in noise level.
        angles = 1000.0 * sigma.float()[..., None] * self.freqs
        return self.mlp(torch.cat((angles.cos(), angles.sin()), dim=-1))


class Block(nn.Module):
    """Pre-norm transformer block with AdaLN-zero modulation from the per-frame condition."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, temporal_channels: int
                 ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm_attn = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, temporal_channels)
        self.norm_mlp = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))
        self.modulation = nn.Linear(dim, 6 * dim)

    def forward(self, tokens: Tensor, condition: Tensor, spatial_rope: Rope, query_rope: Rope,
                key_rope: Rope, groups: list[AttentionGroup],
                past: tuple[tuple[Tensor, ...], tuple[Tensor, ...]] = ((), ()),
                keep_from: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """tokens ``[B, F, T, D]``, condition ``[B, F, D]`` (already SiLU-activated).

        `past` holds parts of cached (temporally un-rotated) keys and of values, placed before
        this chunk's. `query_rope`/`key_rope` are the temporal cos/sin of the queries and of all
        keys; `groups` (token slices of those) must cover the queries of frames `keep_from`..F-1
        in order. Returns the new tokens of those frames only — the earlier frames' keys and
        values are all a caller may still need of them — and this chunk's temporally
        un-rotated keys and values ``[B, H, F*T, head_dim]``.
        """
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (
            self.modulation(condition)[:, :, None].chunk(6, dim=-1))
        hidden = torch.addcmul(shift_a, self.norm_attn(tokens), 1 + scale_a)
        query, key, value = self.attn.project(hidden.flatten(1, 2), spatial_rope)
        tokens = tokens[:, keep_from:]
        if not tokens.shape[1]:
            return tokens, key, value
        all_keys = torch.cat((*(part.to(key.dtype) for part in past[0]), key), dim=2)
        all_values = torch.cat((*(part.to(value.dtype) for part in past[1]), value), dim=2)
        attended = self.attn.attend(query, all_keys, all_values, query_rope, key_rope, groups)
        tokens = torch.addcmul(tokens, gate_a[:, keep_from:], attended.view_as(tokens))
        hidden = torch.addcmul(shift_m[:, keep_from:], self.norm_mlp(tokens),
                               1 + scale_m[:, keep_from:])
        tokens = torch.addcmul(tokens, gate_m[:, keep_from:], self.mlp(hidden))
        return tokens, key, value


def event_changes(events: Tensor, before: Tensor | None = None) -> Tensor:
    """Every frame's event vector minus the frame before's, ``[B, F, E]`` from ``[B, F, E]``;
    `before` ``[B, E]`` is the event of the frame before the first (None: no change there)."""
    previous = events[:, :1] if before is None else before[:, None].to(events.dtype)
    return events - torch.cat((previous, events[:, :-1]), dim=1)


class CausalTransformer(nn.Module):
    """Velocity network over latent clips with per-frame sigma, action and event conditions."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        dim = config.dim
        self.local: LocalPath | None = None
        if config.local_channels:
            self.local = LocalPath(config.latent_channels, config.num_actions, config.local_frames,
                                   config.local_channels, config.local_blocks, config.patch_size, dim,
                                   config.local_action_conv,
                                   config.latent_size if config.local_positions else 0,
                                   config.local_align_history, config.local_reader_channels,
                                   config.local_reader_blocks, config.local_reader_feeds_stem)
        else:
            self.patch_embed = nn.Linear(config.patch_dim, dim)
        self.sigma_embed = SigmaEmbedding(dim)
        # The extra last row is NO_ACTION, the condition of an episode's first frame.
        self.action_embed = nn.Embedding(config.num_actions + 1, dim)
        # No bias: the zero event vector ("no event") adds nothing to the condition.
        self.event_proj = nn.Linear(config.event_dim, dim, bias=False)
        self.event_change_proj = nn.Linear(config.event_dim, dim, bias=False) if config.event_change else None
        self.rope = RotaryEmbedding(config)
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, self.rope.temporal_channels)
            for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(dim, 2 * dim)
        if self.local is None:
            self.final = nn.Linear(dim, config.patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.action_embed.weight, std=0.02)
        # AdaLN-zero: every block starts as the identity and the output as zero velocity.
        heads = () if self.local is not None else (self.final,)
        for module in (*(block.modulation for block in self.blocks), self.final_modulation, *heads):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        if self.event_change_proj is not None:  # a grown network starts as the trained one
            nn.init.zeros_(self.event_change_proj.weight)

    # ----------------------------------------------------------------------------- public API

    def forward(self, latents: Tensor, sigma: Tensor, actions: Tensor, events: Tensor | None,
                mode: str = "causal") -> Tensor:
        """Velocity ``[B, F, C, h, w]`` for a whole clip.

        mode "causal": frame f sees frames <= f; "bidirectional": every frame sees the clip.
        `events` ``[B, F, E]`` (None = no event on any frame).
        """
        if mode not in ("causal", "bidirectional"):
            raise ValueError(f"mode must be 'causal' or 'bidirectional', got {mode!r}")
        self._check_inputs(latents, sigma, actions, events)
        batch, frames = sigma.shape
        positions = torch.arange(frames, device=latents.device).expand(batch, frames)
        mask = None
        if mode == "causal":
            mask = frame_causal_mask(frames, latents.device)
        previous = self._previous(latents, sigma)
        velocity, _, _ = self._run(latents, sigma, actions, events, previous, positions, whole(mask),
                                   changes=self._event_changes(events, sigma))
        return velocity

    def forward_teacher_forcing(self, clean: Tensor, noisy: Tensor, sigma: Tensor,
                                actions: Tensor, events: Tensor | None,
                                clean_sigma: Tensor | None = None) -> Tensor:
        """Velocity for the noisy frames of the layout ``[clean ; noisy]``.

        Noisy frame f (at `sigma[:, f]`) sees the clean frames < f and itself; clean frame f
        shares frame f's temporal position, action and event. `clean_sigma` (default zeros) lets
        a trainer feed slightly noised context.
        """
        self._check_inputs(noisy, sigma, actions, events)
        if clean.shape != noisy.shape:
            raise ValueError(f"clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} differ")
        batch, frames = sigma.shape
        if clean_sigma is None:
            clean_sigma = torch.zeros_like(sigma)
        positions = torch.arange(frames, device=noisy.device).expand(batch, frames).repeat(1, 2)
        mask = teacher_forcing_mask(frames, noisy.device)
        both_events = None if events is None else torch.cat((events, events), dim=1)
        changes = self._event_changes(events, sigma)
        # Clean frame f and noisy frame f have the same predecessors: the clean frames before f.
        previous = self._previous(clean, clean_sigma)
        if previous is not None:
            previous = (previous[0].repeat(1, 2, 1, 1, 1, 1), previous[1].repeat(1, 2, 1))
        velocity, _, _ = self._run(torch.cat((clean, noisy), dim=1),
                                   torch.cat((clean_sigma, sigma), dim=1),
                                   torch.cat((actions, actions), dim=1), both_events,
                                   previous, positions, whole(mask),
                                   changes=None if changes is None else torch.cat((changes, changes), dim=1))
        return velocity[:, frames:]

    def read_next(self, latents: Tensor, sigma: Tensor, actions: Tensor) -> Tensor:
        """The history reader's guess of every frame of a clip ``[B, F, C, h, w]`` from the frames
        before it (at levels `sigma`; frame 0 has none), as the local path reads it
        (`LocalPath.read_next`). Raises ValueError without a reader."""
        self._check_inputs(latents, sigma, actions, None)
        if self.local is None:
            raise ValueError("this network has no local path, hence no history reader")
        return self.local.read_next(*self._previous(latents, sigma), actions)

    def read_following(self, cache: KVCache, pending: Tensor | None, action: Tensor) -> Tensor:
        """The history reader's guess ``[B, 1, C, h, w]`` of the frame that follows the cache and
        `pending` (clean frames not cached yet, ``[B, P, C, h, w]``, or None), led to by `action`
        (long ``[B]``). Raises ValueError without a reader."""
        if self.local is None or self.local.reader is None:
            raise ValueError("this network has no history reader (transformer.local_reader_channels = 0)")
        config = self.config
        history, history_sigma = cache.recent_latents, cache.recent_sigma
        if pending is not None:  # the pending frames follow the cached ones, clean
            history = torch.cat((history.to(pending.dtype), pending), dim=1)
            history_sigma = torch.cat((history_sigma, history_sigma.new_zeros(pending.shape[:2])), dim=1)
        # Only the new frame's predecessors are read: its own latents are a placeholder.
        blank = history.new_zeros(history.shape[0], 1, *history.shape[2:])
        previous, previous_sigma = previous_frames(blank, history_sigma.new_ones(history.shape[0], 1), history,
                                                   history_sigma, count=config.local_frames,
                                                   align=self.local.align_history)
        return self.local.read_next(previous, previous_sigma, action[:, None])

    def new_cache(self, batch_size: int, device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None, sink_frames: int | None = None,
                  window_frames: int | None = None) -> KVCache:
        """An empty cache for this network; sink/window default to the config's."""
        config = self.config
        first = next(self.parameters())
        return KVCache(
            num_layers=config.depth, batch_size=batch_size, num_heads=config.num_heads,
            head_dim=config.head_dim, tokens_per_frame=config.tokens_per_frame,
            sink_frames=config.sink_frames if sink_frames is None else sink_frames,
            window_frames=config.window_frames if window_frames is None else window_frames,
            device=first.device if device is None else device,
            dtype=first.dtype if dtype is None else dtype,
            recent_frames=config.local_frames,
            latent_shape=(config.latent_channels, config.latent_size, config.latent_size),
            event_dim=config.event_dim if config.event_change else 0,
        )

    def forward_cached(self, latents: Tensor, sigma: Tensor, actions: Tensor,
                       events: Tensor | None, cache: KVCache, commit: int = 0,
                       return_committed: bool = True) -> Tensor:
        """Velocity for F new frames that follow the cached ones.

        The chunk attends to the valid cached frames and frame-causally to itself. Afterwards
        the keys/values of its first `commit` frames (detached) are appended to `cache`. Frames
        after the committed ones already see the cache as it will be after that commit (evicted
        window frames hidden, positions as they will be; `kv_cache.chunk_layout`), so with
        ``[clean frame f ; noisy frame f+1]`` and commit=1 a sampler re-encodes frame f and
        takes the first denoising step of frame f+1 in one pass that equals the two passes.
        Such a split commit raises ValueError where `kv_cache.fused_commit_is_exact` is False.
        With `return_committed=False` only the later frames' velocity ``[B, F-commit, ..]`` is
        returned, and the work only the committed frames' velocity needs is skipped: their
        queries, attention and MLP in the last block, and the head.
        """
        self._check_inputs(latents, sigma, actions, events)
        batch, frames = sigma.shape
        if cache.batch_size != batch or cache.num_layers != self.config.depth:
            raise ValueError(f"cache is for batch {cache.batch_size} and {cache.num_layers} "
                             f"layers, got batch {batch} and {self.config.depth} layers")
        if cache.tokens_per_frame != self.config.tokens_per_frame:
            raise ValueError(f"cache holds {cache.tokens_per_frame} tokens per frame, "
                             f"the network makes {self.config.tokens_per_frame}")
        if not 0 <= commit <= frames:
            raise ValueError(f"commit must be in [0, {frames}], got {commit}")
        positions, visible = cache.chunk_layout(frames, commit)
        visible = visible.to(latents.device)[:, None]  # [B, 1 (heads), F, K]
        masks = [(queries, keys, visible[..., queries, keys])
                 for queries, keys in attention_groups(cache.sink_frames, cache.window_frames,
                                                       frames, commit)]
        previous = self._previous(latents, sigma, cache)
        changes = self._event_changes(events, sigma, cache)
        velocity, keys, values = self._run(latents, sigma, actions, events, previous,
                                           positions.to(latents.device), masks, cache=cache,
                                           repeat_sink=repeats_sink(frames, commit),
                                           keep_from=0 if return_committed else commit, changes=changes)
        if commit:
            committed = commit * self.config.tokens_per_frame
            cache.append([key[:, :, :committed] for key in keys],
                         [value[:, :, :committed] for value in values],
                         latents[:, :commit], sigma[:, :commit],
                         None if changes is None else self._events_or_none(events, sigma)[:, :commit])
        return velocity

    # ---------------------------------------------------------------------------- internals

    def _check_inputs(self, latents: Tensor, sigma: Tensor, actions: Tensor,
                      events: Tensor | None) -> None:
        config = self.config
        expected = (config.latent_channels, config.latent_size, config.latent_size)
        if latents.ndim != 5 or tuple(latents.shape[2:]) != expected:
            raise ValueError(f"latents must be [B, F, {', '.join(map(str, expected))}], "
                             f"got {tuple(latents.shape)}")
        clip = tuple(latents.shape[:2])
        if tuple(sigma.shape) != clip:
            raise ValueError(f"sigma must be [B, F] = {clip}, got {tuple(sigma.shape)}")
        if tuple(actions.shape) != clip or actions.dtype != torch.long:
            raise ValueError(f"actions must be long [B, F] = {clip}, "
                             f"got {actions.dtype} {tuple(actions.shape)}")
        if events is not None and tuple(events.shape) != (*clip, config.event_dim):
            raise ValueError(f"events must be [B, F, {config.event_dim}], "
                             f"got {tuple(events.shape)}")

    def _events_or_none(self, events: Tensor | None, sigma: Tensor) -> Tensor:
        """`events`, or the zero vector ("no event") on every frame ``[B, F, E]``."""
        return sigma.new_zeros(*sigma.shape, self.config.event_dim) if events is None else events

    def _event_changes(self, events: Tensor | None, sigma: Tensor, cache: KVCache | None = None) -> Tensor | None:
        """Every input frame's event change (`event_changes`) when the network reads it, else None:
        the first frame's is measured from the cache's last committed frame, if its row has one."""
        if self.event_change_proj is None:
            return None
        events = self._events_or_none(events, sigma)
        before = None
        if cache is not None:
            has_frame = (cache.num_cached > 0).to(events.device)[:, None]
            before = torch.where(has_frame, cache.last_event.to(events.device, events.dtype), events[:, 0])
        return event_changes(events, before)

    def _previous(self, latents: Tensor, sigma: Tensor, cache: KVCache | None = None) -> Previous:
        """The local path's predecessors of every input frame (None without a local path): the
        frames before it in this pass, preceded by the cache's latest committed frames."""
        if self.local is None:
            return None
        history = (None, None) if cache is None else (cache.recent_latents, cache.recent_sigma)
        return previous_frames(latents, sigma, *history, count=self.config.local_frames,
                               align=self.local.align_history)

    def _embed(self, latents: Tensor, sigma: Tensor, actions: Tensor, events: Tensor | None,
               previous: Previous, changes: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        """Tokens ``[B, F, T, D]``, the SiLU-activated condition ``[B, F, D]`` and, with a
        local path, its full-resolution stem features ``[B*F, width, h, w]``."""
        config = self.config
        condition = self.sigma_embed(sigma) + self.action_embed(actions)
        if events is not None:
            condition = condition + self.event_proj(events.to(condition.dtype))
        if changes is not None:
            condition = condition + self.event_change_proj(changes.to(condition.dtype))
        condition = nn.functional.silu(condition)
        if self.local is None:
            patches = rearrange(latents, "b f c (y p) (x q) -> b f (y x) (c p q)",
                                p=config.patch_size, q=config.patch_size)
            return self.patch_embed(patches), condition, None
        features = self.local.stem_features(latents, *previous, actions, condition)
        return self.local.tokens(features, latents.shape[1]), condition, features

    def _head(self, tokens: Tensor, condition: Tensor, features: Tensor | None) -> Tensor:
        """Final AdaLN + projection back to velocity latents ``[B, F, C, h, w]`` (through the
        local path's head when there is one)."""
        config = self.config
        shift, scale = self.final_modulation(condition)[:, :, None].chunk(2, dim=-1)
        modulated = self.final_norm(tokens) * (1 + scale) + shift
        if self.local is not None:
            return self.local.velocity(modulated, features, condition)
        patches = self.final(modulated)
        return rearrange(patches, "b f (y x) (c p q) -> b f c (y p) (x q)",
                         y=config.grid_size, p=config.patch_size, q=config.patch_size)

    def _run(self, latents: Tensor, sigma: Tensor, actions: Tensor, events: Tensor | None,
             previous: Previous, positions: Tensor, masks: list[MaskedGroup],
             cache: KVCache | None = None,
             repeat_sink: bool = False, keep_from: int = 0, changes: Tensor | None = None
             ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Shared body. `positions` ``[B, Fk]`` are the temporal positions of all key frames
        (cached ones first, if any, as `cache.layer(.., repeat_sink)` lists them); the last F
        of them belong to the input frames. `masks`: the attention groups, frame slices with a
        boolean frame mask (None: all keys), whose queries split at frame `keep_from`. `changes`:
        the frames' event changes when the network reads them.
        Returns the velocity of frames `keep_from`.. and every layer's keys/values of the input
        frames."""
        frames = sigma.shape[1]
        tokens, condition, features = self._embed(latents, sigma, actions, events, previous, changes)
        per_frame = self.config.tokens_per_frame
        # Bias built per frame, then expanded: a quarter of the work of masking per token.
        groups = [AttentionGroup(token_slice(queries, per_frame), token_slice(keys, per_frame),
                                 None if mask is None
                                 else expand_frame_mask(mask_to_bias(mask, tokens.dtype), per_frame))
                  for queries, keys, mask in masks]
        # The last block only computes the outputs of the frames from `keep_from` on.
        kept_groups = [group for group in groups if group.queries.start >= keep_from * per_frame]
        spatial_rope = self.rope.spatial(frames)
        key_rope = self.rope.temporal(positions)
        query_length = frames * self.config.tokens_per_frame
        query_rope = (key_rope[0][:, :, -query_length:], key_rope[1][:, :, -query_length:])
        keys, values = [], []
        for index, block in enumerate(self.blocks):
            past = cache.layer(index, repeat_sink) if cache is not None else ((), ())
            last = index == len(self.blocks) - 1
            tokens, key, value = block(tokens, condition, spatial_rope, query_rope, key_rope,
                                       kept_groups if last else groups, past,
                                       keep_from if last else 0)
            keys.append(key)
            values.append(value)
        if features is not None:
            features = features.unflatten(0, (-1, frames))[:, keep_from:].flatten(0, 1)
        return self._head(tokens, condition[:, keep_from:], features), keys, values
