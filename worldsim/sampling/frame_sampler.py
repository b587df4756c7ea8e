"""Few-step sampling of frames against a KV cache: frame-wise (F = 1) or chunk-wise (F > 1).

Solver: **x0 prediction with re-noising**, the sampler of few-step students (CausVid, Self
Forcing, multistep consistency sampling). At level sigma_i the network's velocity gives
x0 = x - sigma_i * v; the next input is that x0 noised to sigma_{i+1} with *fresh* noise, and the
last level (0) returns x0. We use it rather than Euler on the flow because the students
(`causal-cd`, `dmd`) are trained to map any level straight to x0, from inputs noised exactly this
way, so inference sees the inputs training saw. `fresh_noise` < 1 mixes the noise the velocity
implies into the re-noising (0 is the Euler step of the flow's ODE): the sampler then commits to
what its first step started — in many steps, rare sprites that fresh noise averages away — and
carries forward errors that fresh noise would wash out (docs/generator-design.md, section 24).

The cache holds only clean frames. A generated frame is kept *pending* (its latents and
conditions) and written to the cache by a pass at sigma 0 — the clean re-encode. That pass is
fused with the first denoising step of the next frame (one forward over ``[clean f ; noisy f+1]``
with ``commit=1``): the chunk is frame-causal, the clean frame is at sigma 0, and the later
frames of the pass see the cache as it will be after the commit — the window frame it evicts
hidden, the sink seen through a copy at the position it will have (`kv_cache.chunk_layout`) —
so frame f+1 sees exactly what it would see after a separate commit. Only a commit that fills a
row's sink and evicts at once (several pending frames) runs as its own pass first.

Every function takes a `noise` callable, ``noise(shape) -> [B, *shape]``, so the Simulator can
use per-row counter noise and trainers `torch.randn` with their own generator.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.profiler import record_function

from worldsim.model import flow, kv_cache
from worldsim.model.kv_cache import KVCache
from worldsim.model.transformer import CausalTransformer

NoiseSource = Callable[[Sequence[int]], Tensor]


@dataclass
class Conditions:
    """What each of F frames is conditioned on, per row."""

    actions: Tensor  # long [B, F]: the action that led to each frame (NO_ACTION after a reset)
    events: Tensor  # float [B, F, E]: the event embedding in force at each frame

    def cat(self, later: "Conditions") -> "Conditions":
        """These frames followed by `later` frames."""
        return Conditions(
            torch.cat((self.actions, later.actions), dim=1), torch.cat((self.events, later.events), dim=1)
        )


@dataclass
class CleanFrames:
    """Generated frames that the cache does not hold yet."""

    latents: Tensor  # [B, F, C, h, w]
    conditions: Conditions

    @property
    def num_frames(self) -> int:
        return self.latents.shape[1]


def step_sigmas(steps: int | Sequence[float], shift: float) -> list[float]:
    """Descending noise levels from 1 to 0: `steps` evenly spaced and shifted, or an explicit list.

    An explicit list must start at 1 (samples start from pure noise), descend strictly and stay
    in (0, 1]; the final 0 is appended when missing.
    """
    if isinstance(steps, bool):
        raise ValueError(f"steps must be a positive int or a list of sigmas, got {steps!r}")
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return flow.sigma_grid(steps, shift).tolist()
    sigmas = [float(sigma) for sigma in steps]
    if sigmas and sigmas[-1] == 0.0:
        sigmas = sigmas[:-1]
    descending = all(a > b for a, b in zip(sigmas, sigmas[1:]))
    if not sigmas or sigmas[0] != 1.0 or not descending or sigmas[-1] <= 0.0:
        raise ValueError(f"step sigmas must descend strictly from 1.0 and stay above 0, got {list(steps)}")
    return sigmas + [0.0]


def denoise_step(x: Tensor, sigma: float | Tensor, sigma_next: float | Tensor, velocity: Tensor,
                 noise: NoiseSource, fresh_noise: float = 1.0) -> Tensor:
    """One sampler step: predict x0 at `sigma`, re-noise it to `sigma_next` (or return it at 0).

    The levels are floats shared by every frame, or per-frame levels ``[B, F]``; a frame at level
    0 passes through unchanged (x0 = x), and one whose next level is 0 gets its x0.

    The noise it is re-noised with is `f · fresh + sqrt(1 − f²) · implied` for f = `fresh_noise`,
    where `implied` is the noise the velocity assigns to `x`: 1 draws it fresh, 0 keeps the
    implied noise, which makes the step exactly the Euler step of the flow's ODE. The fresh draw
    is taken whatever f is, so the noise stream does not depend on it.
    """
    x0 = flow.x0_from_velocity(x, sigma, velocity)
    if not isinstance(sigma_next, Tensor) and sigma_next == 0.0:
        return x0
    fresh = noise(x.shape[1:])
    if fresh_noise != 1.0:
        implied = flow.noise_from_velocity(x, sigma, velocity)
        fresh = fresh_noise * fresh + math.sqrt(1.0 - fresh_noise ** 2) * implied
    return flow.add_noise(x0, fresh, sigma_next)


def fused_commit_is_exact(cache: KVCache, num_commit: int) -> bool:
    """Whether committing `num_commit` frames in the same pass as new frames equals committing
    first (see `kv_cache.fused_commit_is_exact`; always true for one frame)."""
    return kv_cache.fused_commit_is_exact(cache.num_frames, cache.sink_frames, cache.window_frames, num_commit)


def commit(net: CausalTransformer, cache: KVCache, clean: CleanFrames) -> None:
    """The clean re-encode on its own: write `clean` into the cache with a pass at sigma 0."""
    sigma = clean.latents.new_zeros(clean.latents.shape[:2])
    with record_function("worldsim.transformer_pass"):  # a label for `worldsim bench --profile`
        net.forward_cached(
            clean.latents,
            sigma,
            clean.conditions.actions,
            clean.conditions.events,
            cache,
            commit=clean.num_frames,
            return_committed=False,
        )


def predict_velocity(
    net: CausalTransformer,
    cache: KVCache,
    x: Tensor,
    sigma: Tensor,
    conditions: Conditions,
    pending: CleanFrames | None = None,
) -> Tensor:
    """Velocity of the frames `x` at levels `sigma` [B, F], after committing `pending` to the cache.

    The commit shares the pass (``[pending ; x]`` with ``commit=P``) where that is exact, and runs
    as its own pass before otherwise.
    """
    if pending is not None and not fused_commit_is_exact(cache, pending.num_frames):
        commit(net, cache, pending)
        pending = None
    if pending is None:
        with record_function("worldsim.transformer_pass"):
            return net.forward_cached(x, sigma, conditions.actions, conditions.events, cache)
    levels = torch.cat((sigma.new_zeros(sigma.shape[0], pending.num_frames), sigma), dim=1)
    both = pending.conditions.cat(conditions)
    with record_function("worldsim.transformer_pass"):
        return net.forward_cached(
            torch.cat((pending.latents, x), dim=1),
            levels,
            both.actions,
            both.events,
            cache,
            commit=pending.num_frames,
            return_committed=False,
        )


def sample_frames(
    net: CausalTransformer,
    cache: KVCache,
    conditions: Conditions,
    sigmas: Sequence[float],
    noise: NoiseSource,
    pending: CleanFrames | None = None,
    fresh_noise: float = 1.0,
    reader_start: float = 0.0,
) -> Tensor:
    """Generate F frames (F = conditions' frame count) that follow the cache and `pending`.

    `pending` frames are committed on the way, with the first step. Returns the clean latents
    ``[B, F, C, h, w]``; the caller keeps them as the next `pending`. `fresh_noise`: see
    `denoise_step`. `reader_start` > 0 starts one frame that follows `pending` from the history
    reader's guess (`reader_started`); the first frame of a row, and chunks, start from noise.
    """
    def velocity_at(x: Tensor, levels: Tensor, step: int) -> Tensor:
        return predict_velocity(net, cache, x, levels, conditions, pending if step == 0 else None)

    if starts_from_guess(reader_start, pending, conditions):
        start, levels = reader_started(net, cache, conditions, sigmas, noise, pending, reader_start)
        return _denoise(net, conditions, levels, noise, velocity_at, fresh_noise, start)
    return _denoise(net, conditions, sigmas, noise, velocity_at, fresh_noise)


def starts_from_guess(reader_start: float, pending: CleanFrames | None, conditions: Conditions) -> bool:
    """Whether new frames start from the history reader's guess (`reader_started`): with a start
    level, for one frame that follows `pending` clean frames; the first frame of a row, and
    chunks of several frames, start from noise."""
    return reader_start > 0.0 and pending is not None and conditions.actions.shape[1] == 1


def levels_from_guess(sigmas: Sequence[float], level: float) -> list[float]:
    """The levels a frame started from the history reader's guess at `level` takes: that level,
    then those of `sigmas` below it (ending in 0 when `sigmas` does)."""
    return [level] + [sigma for sigma in sigmas if sigma < level]


def reader_started(net: CausalTransformer, cache: KVCache, conditions: Conditions, sigmas: Sequence[float],
                   noise: NoiseSource, pending: CleanFrames, level: float) -> tuple[Tensor, Tensor]:
    """Where one frame's sampling starts when it starts from the history reader's guess of it.

    The guess (from the cache and `pending`) noised to `level`, then the levels of `sigmas` below
    it: with level 0.8 and sigmas [1, 0.667, 0], two passes as from noise, but the first already
    sees where the reader puts the sprites it follows. A row whose event changed at this frame
    starts from that same noise alone and takes every level of `sigmas`, since the reader does not
    see events. Returns the start ``[B, 1, C, h, w]`` and per-row levels ``[B, L]`` (rows with
    fewer levels end in zeros, which `denoise_step` passes through).
    """
    guess = net.read_following(cache, pending.latents, conditions.actions[:, -1])
    fresh = noise(guess.shape[1:])
    switched = (conditions.events[:, 0] != pending.conditions.events[:, -1]).any(dim=-1)
    from_guess = levels_from_guess(sigmas, level)
    from_noise = list(sigmas)
    length = max(len(from_guess), len(from_noise))
    table = torch.tensor([from_noise + [0.0] * (length - len(from_noise)),
                          from_guess + [0.0] * (length - len(from_guess))], dtype=guess.dtype, device=guess.device)
    levels = table[(~switched).long()]
    start = torch.where(switched.view(-1, 1, 1, 1, 1), fresh, flow.add_noise(guess, fresh, levels[:, :1]))
    return start, levels


def sample_frames_guided(
    net: CausalTransformer,
    cache: KVCache,
    conditions: Conditions,
    reference_events: Tensor,
    scale: Tensor,
    sigmas: Sequence[float],
    noise: NoiseSource,
    pending: CleanFrames | None = None,
    fresh_noise: float = 1.0,
) -> Tensor:
    """`sample_frames` with each velocity pushed away from the one under `reference_events`:
    `v_ref + scale · (v − v_ref)` per row (`scale` [B]; rows at 1 get the unguided frame, up to the
    rounding of committing `pending` in its own pass).

    Right after an event switch the reference is the event before it, so the guidance amplifies
    what the new event changes (the world's frames otherwise carry the old look forward). Costs
    two passes per step, plus a separate commit of `pending`, which both passes then see.
    """
    if pending is not None:
        commit(net, cache, pending)
    reference = Conditions(conditions.actions, reference_events)
    guided = (scale != 1.0).view(-1, *([1] * 4))
    scale = scale.view(-1, *([1] * 4)).to(reference_events.dtype)

    def velocity_at(x: Tensor, levels: Tensor, step: int) -> Tensor:
        velocity = predict_velocity(net, cache, x, levels, conditions)
        velocity_reference = predict_velocity(net, cache, x, levels, reference)
        return torch.where(guided, velocity_reference + scale * (velocity - velocity_reference), velocity)

    return _denoise(net, conditions, sigmas, noise, velocity_at, fresh_noise)


def _denoise(net: CausalTransformer, conditions: Conditions, sigmas: Sequence[float] | Tensor, noise: NoiseSource,
             velocity_at: Callable[[Tensor, Tensor, int], Tensor], fresh_noise: float = 1.0,
             start: Tensor | None = None) -> Tensor:
    """The few-step loop shared by the samplers: start from `start` (default: noise), and at every
    level take `velocity_at(x, levels [B, F], step)` into one `denoise_step`. `sigmas` are shared
    by every row, or per row ``[B, L]``; the loop stops once every row is at level 0."""
    config = net.config
    num_frames = conditions.actions.shape[1]
    x = noise((num_frames, config.latent_channels, config.latent_size, config.latent_size)) if start is None else start
    per_row = isinstance(sigmas, Tensor)
    for step in range((sigmas.shape[1] if per_row else len(sigmas)) - 1):
        if per_row:
            sigma = sigmas[:, step:step + 1].expand(x.shape[:2])
            sigma_next = sigmas[:, step + 1:step + 2].expand(x.shape[:2])
            if not bool((sigma > 0).any()):
                break
            levels = sigma
        else:
            sigma, sigma_next = sigmas[step], sigmas[step + 1]
            levels = x.new_full(x.shape[:2], sigma)
        x = denoise_step(x, sigma, sigma_next, velocity_at(x, levels, step), noise, fresh_noise)
    return x
