"""Re-cache on switch (LongLive-style ablation, off by default; `SamplingConfig.recache_on_switch`).

When an env's event changes, the frames its cache holds are re-encoded under the new event, so
the remembered past stops pulling the model back to the old event. The cache stores keys and
values only, so `FrameHistory` keeps the clean latents and actions of the cached frames, slot for
slot, and `recache_rows` rebuilds the switched rows in a scratch cache and copies them over.
"""
from __future__ import annotations

import torch
from torch import Tensor

from worldsim.model.kv_cache import KVCache, frame_slot
from worldsim.model.transformer import CausalTransformer
from worldsim.sampling.frame_sampler import CleanFrames


class FrameHistory:
    """Clean latents, actions and events of the frames a cache holds, in the cache's slots."""

    def __init__(self, cache: KVCache, latent_shape: tuple[int, ...], event_dim: int) -> None:
        slots = (cache.batch_size, cache.capacity)
        self.sink_frames, self.window_frames = cache.sink_frames, cache.window_frames
        self.latents = torch.zeros(*slots, *latent_shape, device=cache.device)
        self.actions = torch.zeros(slots, dtype=torch.long, device=cache.device)
        self.events = torch.zeros(*slots, event_dim, device=cache.device)

    def record(self, frame_counts: Tensor, clean: CleanFrames) -> None:
        """Store `clean` as the frames about to be committed after `frame_counts` [B] frames."""
        rows = torch.arange(len(frame_counts), device=frame_counts.device)
        for offset in range(clean.num_frames):
            slots = frame_slot(frame_counts + offset, self.sink_frames, self.window_frames)
            self.latents[rows, slots] = clean.latents[:, offset].float()
            self.actions[rows, slots] = clean.conditions.actions[:, offset]
            self.events[rows, slots] = clean.conditions.events[:, offset].float()


def recache_rows(
    net: CausalTransformer, cache: KVCache, history: FrameHistory, rows: Tensor, events: Tensor
) -> None:
    """Re-encode the cached frames of `rows` (long indices [n]) under `events` [n, E]."""
    positions, valid = cache.slot_layout()
    counts = valid.sum(dim=1)
    for count in sorted(set(counts[rows].tolist()) - {0}):
        in_group = counts[rows] == count
        group, group_events = rows[in_group], events[in_group]
        # Slots sorted by temporal position: the frames oldest first (invalid slots sort last).
        order = positions[group].masked_fill(~valid[group], cache.capacity).argsort(dim=1)[:, :count]
        latents = history.latents[group[:, None], order]
        actions = history.actions[group[:, None], order]
        frame_events = group_events[:, None].expand(-1, count, -1)
        scratch = net.new_cache(
            len(group), sink_frames=cache.sink_frames, window_frames=cache.window_frames, dtype=cache.dtype
        )
        sigma = latents.new_zeros(len(group), count)
        net.forward_cached(latents, sigma, actions, frame_events, scratch, commit=count, return_committed=False)
        cache.assign_rows(group, scratch)
        # A fresh cache fills slots 0..count-1 in order, so the history is rewritten the same way.
        history.latents[group, :count] = latents
        history.actions[group, :count] = actions
        history.events[group, :count] = frame_events.float()
