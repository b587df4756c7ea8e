"""Rolling-window sampler (Rolling Forcing, inference side).

With the levels ``sigmas = [1 = s_0 > s_1 > ... > s_{W-1} > 0]``, up to W frames are in flight at
once, each at its own level, the oldest least noisy. One pass of the transformer (frame-causal
within the window, after the cache and its attention sink) predicts x0 for all of them; every
frame moves one level down (re-noised with fresh noise, as in frame_sampler), the oldest reaches
0 and is emitted, and a new pure-noise frame is admitted at s_0. So each pass costs one forward
over W frames and emits one frame, W-1 passes after that frame's action was admitted: actions
take effect with W-1 frames of latency, which is the price of the overlap.

Emitted frames become the pending clean frame of frame_sampler, committed to the cache at sigma 0
in the next pass (fused with it where exact, see `fused_commit_is_exact`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from worldsim.model import flow
from worldsim.model.kv_cache import KVCache
from worldsim.model.transformer import CausalTransformer
from worldsim.sampling.frame_sampler import CleanFrames, Conditions, NoiseSource, predict_velocity


class RollingSampler:
    """Frames in flight, oldest first, with the level index each one is at."""

    def __init__(
        self,
        net: CausalTransformer,
        cache: KVCache,
        sigmas: Sequence[float],
        noise: NoiseSource,
        pending: CleanFrames | None = None,
    ) -> None:
        self.net, self.cache, self.noise = net, cache, noise
        self.sigmas = list(sigmas)
        self.pending = pending  # the last emitted frame, not yet in the cache
        self.latents: Tensor | None = None  # [B, n, C, h, w] noisy frames in flight
        self.conditions: Conditions | None = None
        self.levels: list[int] = []  # index into sigmas of each frame in flight

    @property
    def window(self) -> int:
        """W: how many frames can be in flight (one per non-zero level)."""
        return len(self.sigmas) - 1

    @property
    def in_flight(self) -> int:
        return len(self.levels)

    def push(self, conditions: Conditions) -> Tensor | None:
        """Admit one new frame (conditions of F = 1) and run one pass.

        Returns the clean latents ``[B, 1, C, h, w]`` of the frame this pass finished, or None
        while the window is still filling.
        """
        if conditions.actions.shape[1] != 1:
            raise ValueError(f"push admits one frame at a time, got {conditions.actions.shape[1]}")
        if self.in_flight == self.window:
            raise RuntimeError("window is full; every pass emits a frame, so this cannot happen")
        config = self.net.config
        fresh = self.noise((1, config.latent_channels, config.latent_size, config.latent_size))
        self.latents = fresh if self.latents is None else torch.cat((self.latents, fresh), dim=1)
        self.conditions = conditions if self.conditions is None else self.conditions.cat(conditions)
        self.levels.append(0)
        return self._pass()

    def restart(self, rows: Tensor, start: CleanFrames, conditions: Conditions, noise: NoiseSource) -> None:
        """Restart `rows` (bool [B]) of a steady window from the clean frame `start` ([n, 1, ...]).

        `start` becomes their pending frame, and their W-1 frames in flight become copies of it
        noised to the levels W-1 .. 1 (`noise` draws for these rows only) under `conditions`
        ([n, W-1]): the window is full again at once, as if nothing had moved yet. The first
        restart must cover every row.
        """
        levels = list(range(self.window - 1, 0, -1))
        copies = start.latents.expand(-1, len(levels), -1, -1, -1)
        if levels:
            sigma = copies.new_tensor([self.sigmas[level] for level in levels]).expand(len(copies), -1)
            copies = flow.add_noise(copies, noise(copies.shape[1:]), sigma)
        if self.pending is None:
            self.pending, self.levels = start, levels
            self.latents, self.conditions = (copies, conditions) if levels else (None, None)
            return
        if self.levels != levels:
            raise RuntimeError(f"restart needs a steady window (levels {levels}), have {self.levels}")
        self.pending.latents[rows] = start.latents
        self.pending.conditions.actions[rows] = start.conditions.actions
        self.pending.conditions.events[rows] = start.conditions.events
        if levels:
            self.latents[rows] = copies
            self.conditions.actions[rows] = conditions.actions
            self.conditions.events[rows] = conditions.events

    def flush(self) -> list[Tensor]:
        """Run passes without admitting frames until nothing is in flight; returns the emitted frames."""
        emitted = []
        while self.in_flight:
            frame = self._pass()
            if frame is not None:
                emitted.append(frame)
        return emitted

    def _pass(self) -> Tensor | None:
        x, conditions = self.latents, self.conditions
        sigma = x.new_tensor([self.sigmas[level] for level in self.levels]).expand(x.shape[0], -1)
        pending, self.pending = self.pending, None
        velocity = predict_velocity(self.net, self.cache, x, sigma, conditions, pending)
        x0 = flow.x0_from_velocity(x, sigma, velocity)
        self.levels = [level + 1 for level in self.levels]
        if self.levels[0] < self.window:
            self.latents = self._renoise(x0, self.levels)
            return None
        finished = CleanFrames(x0[:, :1], Conditions(conditions.actions[:, :1], conditions.events[:, :1]))
        self.pending = finished
        self.levels = self.levels[1:]
        if self.levels:
            self.latents = self._renoise(x0[:, 1:], self.levels)
            self.conditions = Conditions(conditions.actions[:, 1:], conditions.events[:, 1:])
        else:
            self.latents, self.conditions = None, None
        return finished.latents

    def _renoise(self, x0: Tensor, levels: list[int]) -> Tensor:
        sigma = x0.new_tensor([self.sigmas[level] for level in levels]).expand(x0.shape[0], -1)
        return flow.add_noise(x0, self.noise(x0.shape[1:]), sigma)
