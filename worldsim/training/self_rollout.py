"""Training rollouts: the student generates frames with its KV cache exactly as at inference.

Self Forcing trains on the model's own rollouts. Frames are generated one at a time with the
sampler pieces of `worldsim.sampling.frame_sampler` (x0 prediction, re-noising, clean re-encode of
each frame into the cache), with one change: every frame stops at an *exit step* drawn for the
rollout. The steps before it run without gradient; the exit step's x0 prediction is the frame,
with gradient, so the DMD loss reaches the network through exactly one forward per frame. The
frame then enters the cache detached (the cache never holds gradients), so memory grows with
the number of frames, not with the number of steps.

An optional `Anchor` (a second network with its own cache, e.g. the EMA generator) is fed the
same history and, at each exit step, the same noisy input: its x0 is the proximal anchor of
Delta Forcing's M3 continuity variant.

`rolling_rollout` is the Rolling Forcing variant: a window of frames at staggered noise levels.
`continue_from` is a plain rollout without gradient: the self-generated history the `ar-teacher`
stage can train on.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from worldsim.model import CausalTransformer, KVCache, flow
from worldsim.sampling.frame_sampler import (
    CleanFrames,
    Conditions,
    NoiseSource,
    commit,
    denoise_step,
    predict_velocity,
    reader_started,
    sample_frames,
    starts_from_guess,
)
from worldsim.training.losses import rolling_gradient_mask, rolling_window_sigmas

__all__ = ["ExitSteps", "Anchor", "Rollout", "RollingWindow", "gaussian_noise_source", "frame_with_exit",
           "rollout", "rolling_rollout", "continue_from"]


@dataclass(frozen=True)
class ExitSteps:
    """Which denoising step each frame stops at: one for a rollout's first frame, one for the rest."""

    first: int
    rest: int


@dataclass
class Anchor:
    """A second network that sees the same history and exit-step inputs (no gradient)."""

    net: CausalTransformer
    cache: KVCache


@dataclass
class Rollout:
    frames: Tensor  # [B, F, C, h, w], with gradient through each frame's exit step
    pending: CleanFrames  # the last frame, detached, not yet in the cache
    anchor_frames: Tensor | None  # [B, F, ...] the anchor's x0 at the same inputs, or None


def gaussian_noise_source(like: Tensor) -> NoiseSource:
    """`noise(shape) -> [B, *shape]` from the global torch RNG (checkpointed, so resumes are exact)."""
    batch = like.shape[0]
    return lambda shape: torch.randn(batch, *shape, device=like.device, dtype=like.dtype)


def _x0(net: CausalTransformer, cache: KVCache, x: Tensor, levels: Tensor, conditions: Conditions) -> Tensor:
    return flow.x0_from_velocity(x, levels, predict_velocity(net, cache, x, levels, conditions))


def _start(net: CausalTransformer, cache: KVCache, conditions: Conditions, sigmas: Sequence[float],
           noise: NoiseSource, pending: CleanFrames | None, reader_start: float) -> tuple[Tensor, Tensor]:
    """Where new frames' denoising starts, and each row's levels ``[B, L]``: from the history
    reader's guess for one frame that follows `pending` when `reader_start` > 0 (as the frame
    sampler does, `reader_started`), else from noise along `sigmas`."""
    if starts_from_guess(reader_start, pending, conditions):
        return reader_started(net, cache, conditions, sigmas, noise, pending, reader_start)
    config = net.config
    x = noise((conditions.actions.shape[1], config.latent_channels, config.latent_size, config.latent_size))
    return x, x.new_tensor(list(sigmas)).expand(x.shape[0], -1)


def frame_with_exit(
    net: CausalTransformer,
    cache: KVCache,
    conditions: Conditions,
    sigmas: Sequence[float],
    exit_step: int,
    noise: NoiseSource,
    pending: CleanFrames | None,
    anchor: Anchor | None = None,
    reader_start: float = 0.0,
) -> tuple[Tensor, Tensor | None]:
    """Denoise new frames `[B, F, ...]` along `sigmas`; return the x0 predicted at `exit_step`.

    Only the exit step's forward records gradient. When the exit step is the first, `pending`
    (clean frames not yet cached) is committed in a separate no-grad pass, so that no gradient
    flows through their keys and values — as if an earlier call had cached them. Returns the x0
    and, with an `anchor`, the anchor's x0 for the same exit-step input. `reader_start` > 0 starts
    a frame that follows `pending` from the history reader's guess, as the world's sampler does
    (`sampling.reader_start`); its exit step then counts the levels it takes from there.
    """
    if not 0 <= exit_step < len(sigmas) - 1:
        raise ValueError(f"exit_step must be in [0, {len(sigmas) - 1}), got {exit_step}")
    num_frames = conditions.actions.shape[1]
    with torch.no_grad():
        x, row_levels = _start(net, cache, conditions, sigmas, noise, pending, reader_start)
        levels = [row_levels[:, step:step + 1].expand(-1, num_frames) for step in range(exit_step + 1)]
        if anchor is not None and pending is not None:
            commit(anchor.net, anchor.cache, pending)
        if pending is not None and exit_step == 0:
            commit(net, cache, pending)
            pending = None
        for step in range(exit_step):
            velocity = predict_velocity(net, cache, x, levels[step], conditions, pending)
            pending = None
            x = denoise_step(x, levels[step], levels[step + 1], velocity, noise)
        anchor_x0 = None if anchor is None else _x0(anchor.net, anchor.cache, x, levels[exit_step], conditions)
    return _x0(net, cache, x, levels[exit_step], conditions), anchor_x0


def rollout(
    net: CausalTransformer,
    cache: KVCache,
    conditions: Conditions,
    sigmas: Sequence[float],
    first_frame_sigmas: Sequence[float],
    exits: ExitSteps,
    noise: NoiseSource,
    pending: CleanFrames | None = None,
    anchor: Anchor | None = None,
    reader_start: float = 0.0,
) -> Rollout:
    """Generate `F` frames one by one after the cache (+ `pending`).

    With nothing cached and nothing pending, the first frame is generated from scratch with the
    first-frame schedule, as `Simulator.reset` does without context frames. The last frame is
    returned as the new pending frame, which the next call continues from. `reader_start`: the
    world's `sampling.reader_start` (frames after the first start from the history reader's guess).
    """
    frames, anchor_frames = [], []
    for index in range(conditions.actions.shape[1]):
        condition = Conditions(conditions.actions[:, index:index + 1], conditions.events[:, index:index + 1])
        from_scratch = pending is None and bool((cache.num_frames == 0).all())
        schedule, exit_step = (first_frame_sigmas, exits.first) if from_scratch else (sigmas, exits.rest)
        frame, anchor_frame = frame_with_exit(net, cache, condition, schedule, exit_step, noise, pending, anchor,
                                              reader_start)
        pending = CleanFrames(frame.detach(), condition)
        frames.append(frame)
        anchor_frames.append(anchor_frame)
    anchored = torch.cat(anchor_frames, dim=1) if anchor is not None else None
    return Rollout(torch.cat(frames, dim=1), pending, anchored)


@dataclass
class RollingWindow:
    """The x0 predictions of one differentiated rolling forward."""

    x0: Tensor  # [B, n, C, h, w], with gradient
    first_frame: int  # index (among the admitted frames) of the window's oldest frame


def rolling_rollout(
    net: CausalTransformer,
    cache: KVCache,
    conditions: Conditions,
    window: int,
    shift: float,
    exit_step: int,
    noise: NoiseSource,
    pending: CleanFrames | None = None,
) -> tuple[list[RollingWindow], Tensor]:
    """Rolling Forcing: admit F frames (one per forward) into a window of W staggered noise levels.

    Each forward denoises every frame in the window by one level (oldest least noisy,
    `rolling_window_sigmas`); the oldest then leaves clean and is committed to the cache, behind
    the attention sink (the cache's first frames, e.g. the real start frame in `pending`). The
    forwards at steps `w ≡ exit_step (mod W)` run with gradient and return their window's x0
    predictions — windows that never share a frame; the others run without gradient. Returns
    those windows and the emitted clean frames `[B, E, ...]` (detached).
    """
    levels_in, levels_out = (flow.shift_sigma(levels, shift) for levels in rolling_window_sigmas(window))
    with_grad = rolling_gradient_mask(conditions.actions.shape[1], window, exit_step)
    config = net.config
    shape = (1, config.latent_channels, config.latent_size, config.latent_size)
    state = conditions.events.new_zeros(conditions.actions.shape[0], 0, *shape[1:])
    emitted, windows = [], []
    first = 0  # index of the window's oldest frame
    for step in range(conditions.actions.shape[1]):
        state = torch.cat([state, noise(shape)], dim=1)
        count = state.shape[1]
        held = Conditions(conditions.actions[:, first:step + 1], conditions.events[:, first:step + 1])
        sigma_in = levels_in[window - count:].to(state).expand(state.shape[0], count)
        differentiated = bool(with_grad[step])
        if differentiated and pending is not None:  # keep gradients out of the cached frames
            with torch.no_grad():
                commit(net, cache, pending)
            pending = None
        with torch.set_grad_enabled(differentiated and torch.is_grad_enabled()):
            x0 = flow.x0_from_velocity(state, sigma_in, predict_velocity(net, cache, state, sigma_in, held, pending))
        pending = None
        if differentiated:
            windows.append(RollingWindow(x0, first))
        x0 = x0.detach()
        sigma_out = levels_out[window - count:].to(state).expand(state.shape[0], count)
        state = flow.add_noise(x0, noise(tuple(x0.shape[1:])), sigma_out)
        if count == window:  # the oldest frame reached sigma 0: emit it
            pending = CleanFrames(x0[:, :1], Conditions(held.actions[:, :1], held.events[:, :1]))
            emitted.append(x0[:, :1])
            state, first = state[:, 1:], first + 1
    return windows, torch.cat(emitted, dim=1) if emitted else state[:, :0]


@torch.no_grad()
def continue_from(net: CausalTransformer, start: CleanFrames, conditions: Conditions, sigmas: Sequence[float],
                  noise: NoiseSource) -> Tensor:
    """Frames `[B, F, ...]` generated after the clean `start` frames, one at a time along `sigmas`,
    exactly as the Simulator plays them (a fresh cache, no gradient)."""
    cache = net.new_cache(start.latents.shape[0], device=start.latents.device)
    pending, frames = start, []
    for index in range(conditions.actions.shape[1]):
        condition = Conditions(conditions.actions[:, index:index + 1], conditions.events[:, index:index + 1])
        frame = sample_frames(net, cache, condition, sigmas, noise, pending)
        pending = CleanFrames(frame, condition)
        frames.append(frame)
    return torch.cat(frames, dim=1)
