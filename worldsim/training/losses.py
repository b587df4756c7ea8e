"""Every training loss as a pure tensor function.

Conventions (docs/ARCHITECTURE.md): flow matching with `x_sigma = (1 - sigma) * x0 + sigma * noise`,
the network predicts `v = noise - x0`, so `x0 = x_sigma - sigma * v`. Latents are `[B, F, C, h, w]`
(or any `[B, ...]`), noise levels `sigma` are `[B, F]` (or `[B]`) and are broadcast over the
trailing dimensions. "Per sample" means one value per batch row: norms and sums run over every
other dimension.

Stages only orchestrate; the maths they optimise lives here, one function per idea, each with a
unit test in tests/test_losses.py that checks its meaning.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from worldsim.model.flow import expand_sigma
from worldsim.model.scroll import best_scroll, scroll_distances, shifted_cells

__all__ = [
    "per_sample_norm",
    "flow_matching_loss",
    "next_latent_loss",
    "logit_normal_weight",
    "change_weight",
    "switch_weight",
    "carried_cells",
    "near_cells",
    "carried_region_loss",
    "reconstruction_loss",
    "psnr",
    "consistency_grid",
    "guided_velocity",
    "consistency_target",
    "ode_target",
    "consistency_loss",
    "dmd_gradient",
    "dmd_loss",
    "critic_loss",
    "delta_statistic",
    "transition_norm",
    "TRANSITION_SCALES",
    "trust_region_weight",
    "projected_target",
    "projected_target_loss",
    "frame_motion",
    "largest_motion",
    "monotone_jump_penalty",
    "proximal_anchor_loss",
    "delta_forcing_loss",
    "rolling_window_sigmas",
    "rolling_gradient_mask",
    "reward_loss",
    "event_prototype_loss",
]


# --------------------------------------------------------------------------------------------
# shared helpers


def per_sample_norm(x: Tensor) -> Tensor:
    """L2 norm of each batch row over all other dimensions: `[B, ...] -> [B]`."""
    return x.flatten(1).norm(dim=1)


def _per_sample_sum(x: Tensor) -> Tensor:
    return x.flatten(1).sum(dim=1)


def _half_squared_distance(x: Tensor, target: Tensor) -> Tensor:
    """`½‖x − sg(target)‖²` per sample; its gradient w.r.t. x is `x − target`."""
    return 0.5 * _per_sample_sum((x - target.detach()).pow(2))


# --------------------------------------------------------------------------------------------
# flow matching (teacher, AR teacher, critic)


def flow_matching_loss(
    v_pred: Tensor, x0: Tensor, noise: Tensor, weight: Tensor | None = None, cell_weight: Tensor | None = None
) -> Tensor:
    """Flow-matching regression, a scalar.

    With `x_sigma = (1 − σ)·x0 + σ·ε` the velocity target is `v = ε − x0` (independent of σ), and
    the loss is `mean_b,f [ w_{b,f} · mean_pixels (v_pred − v)² ]`. `weight` (`[B]` or `[B, F]`,
    default 1) weights each frame, e.g. by `logit_normal_weight(sigma)` for the AR teacher.
    `cell_weight` (broadcastable to x0, e.g. `change_weight`) weights elements, divided by its
    mean so that the loss keeps its scale.
    """
    if v_pred.shape != x0.shape or noise.shape != x0.shape:
        raise ValueError(
            f"shape mismatch: v_pred {tuple(v_pred.shape)}, x0 {tuple(x0.shape)}, "
            f"noise {tuple(noise.shape)}"
        )
    return _weighted_mean((v_pred - (noise - x0)).pow(2), weight, cell_weight)


def next_latent_loss(guess: Tensor, latents: Tensor, cell_weight: Tensor | None = None) -> Tensor:
    """A history reader's regression, a scalar: `guess` `[B, F, ...]` of each frame of `latents`
    from the frames before it, scored on frames 1.. (frame 0 has no past to read). `cell_weight`
    (`[B, F, 1, h, w]` or None) weights elements as in `flow_matching_loss`."""
    if guess.shape != latents.shape:
        raise ValueError(f"shape mismatch: guess {tuple(guess.shape)}, latents {tuple(latents.shape)}")
    if latents.shape[1] < 2:
        raise ValueError(f"a clip of {latents.shape[1]} frame has no frame with a past to predict")
    later_weight = None if cell_weight is None else cell_weight[:, 1:]
    return _weighted_mean((guess[:, 1:] - latents[:, 1:]).pow(2), None, later_weight)


def _weighted_mean(squared_error: Tensor, weight: Tensor | None, cell_weight: Tensor | None) -> Tensor:
    """The regressions' reduction: `cell_weight` (broadcastable, divided by its mean so the loss
    keeps its scale) on each element, then `weight` (`[B]` or `[B, F]`) on each unit's mean."""
    if cell_weight is not None:
        squared_error = squared_error * (cell_weight / cell_weight.mean())
    if weight is None:
        return squared_error.mean()
    per_unit = squared_error.flatten(weight.dim()).mean(dim=-1)  # [B] or [B, F]
    return (weight * per_unit).mean()


def change_weight(latents: Tensor, strength: float) -> Tensor:
    """Per-cell loss weight `[B, F, 1, h, w]` that favours what changes between frames, with the
    weight of every frame kept at a mean of 1.

    Raw weight `1 + strength · c / mean(c)`, with `c` the channel-mean `|z_f − z_{f−1}|` of each
    latent cell (0 for a clip's first frame) and the mean over the batch; each frame's weights are
    then divided by their own mean. A sprite is a cell or two of a frame whose other cells stay
    put, so under a plain mean its error hardly counts; here a still frame with a walking enemy puts
    several times the average weight on the enemy's cells. The per-frame mean keeps frames where
    nothing changes (a move into a wall, standing still) as heavy as frames that scroll.
    """
    change = (latents[:, 1:] - latents[:, :-1]).abs().mean(dim=2, keepdim=True)
    change = torch.cat([torch.zeros_like(change[:, :1]), change], dim=1)
    raw = 1 + strength * change / change.mean().clamp_min(1e-6)
    return raw / raw.mean(dim=(2, 3, 4), keepdim=True)


def switch_weight(event_ids: Tensor, strength: float) -> Tensor:
    """Per-frame loss weight `[B, F]`: `1 + strength` on frames whose event differs from the frame
    before (a switch), 1 elsewhere, divided by the batch mean so that the loss keeps its scale.

    A restyle ("night falls") happens in the one frame after the switch; the frames after it copy
    the new look from their context. In a 16-frame clip that frame is 1/16 of a plain mean.
    """
    switched = torch.zeros_like(event_ids, dtype=torch.bool)
    switched[:, 1:] = event_ids[:, 1:] != event_ids[:, :-1]
    raw = 1 + strength * switched.float()
    return raw / raw.mean()


def frame_weight(sigma: Tensor, bell: bool, event_ids: Tensor | None = None,
                 switch_strength: float = 0.0) -> Tensor | None:
    """Per-frame loss weight `[B, F]` of a flow-matching loss: the bell over noise levels
    (`logit_normal_weight`) if `bell`, times `switch_weight(event_ids, switch_strength)` if the
    strength is non-zero; None when neither applies (a plain mean)."""
    weight = logit_normal_weight(sigma) if bell else None
    if not switch_strength:
        return weight
    switches = switch_weight(event_ids, switch_strength)
    return switches if weight is None else weight * switches


def carried_cells(latents: Tensor, context_frames: int, tolerance: float = 0.05, max_shift: int = 1,
                  across_restyles: bool = False) -> Tensor:
    """bool `[B, F - context_frames, h, w]`: the cells of every frame after the context whose content
    was carried unchanged from the last context frame, frame by frame, through a global shift of up
    to `max_shift` cells (a scrolling view) — the part of a frame its context already determines.

    Per frame the shift is the one of smallest median per-cell distance (channel-mean squared
    difference) to the frame before, so sprites and animated cells do not sway it; a cell is
    carried when its distance under that shift is below `tolerance` and the cell it came from was
    carried too. A newly revealed strip, a moving sprite, a restyled frame (an event switch: even
    the median cell changed) and everything after them are not. With `across_restyles` a restyled
    frame is not carried but the chain starts again from it: the frames after a switch are the
    same map in the new look, so what they carry from the restyled frame is determined too.
    With no context frame nothing is carried.
    """
    batch, num_frames, _, height, width = latents.shape
    carried = torch.zeros(batch, num_frames - context_frames, height, width, dtype=torch.bool,
                          device=latents.device)
    if context_frames < 1:
        return carried
    known = torch.ones(batch, height, width, dtype=torch.bool, device=latents.device)
    rows = torch.arange(batch, device=latents.device)
    for index, frame in enumerate(range(context_frames, num_frames)):
        shifts, distance, medians, best = best_scroll(latents[:, frame], latents[:, frame - 1], max_shift)
        source = _scroll_rows(known.float(), shifts, best, outside=0.0) > 0.5
        carried[:, index] = (distance[best, rows] < tolerance) & source  # NaN (outside) compares False
        known = carried[:, index]
        if across_restyles:
            restyled = medians[best, rows] >= tolerance  # [B]
            known = known | restyled[:, None, None]
    return carried


def carried_from_previous(latents: Tensor, tolerance: float = 0.05, max_shift: int = 1) -> Tensor:
    """bool `[B, F, h, w]`: per frame of a clip `[B, F, C, h, w]`, the cells carried unchanged from the
    frame just before it through the view's scroll (`carried_cells` of each neighbouring pair). A
    clip's first frame has none. Teacher-forced, the true frame before is the context, so these
    are the cells the context determines; the rest is new ground, a moved sprite or a restyle."""
    batch, frames, _, height, width = latents.shape
    carried = torch.zeros(batch, frames, height, width, dtype=torch.bool, device=latents.device)
    if frames > 1:
        pairs = torch.stack((latents[:, :-1], latents[:, 1:]), dim=2).flatten(0, 1)  # [B*(F-1), 2, C, h, w]
        carried[:, 1:] = carried_cells(pairs, 1, tolerance, max_shift).view(batch, frames - 1, height, width)
    return carried


def sprite_cells(cells: Tensor, hold_frames: int = 0, tolerance: float = 0.02, max_share: float = 0.25,
                 max_shift: int = 1) -> Tensor:
    """bool `[B, F, h, w]`: the cells that the scroll from the frame before does not explain —
    where a sprite arrived or left (an enemy's patrol step, a picked coin) — and, for `hold_frames`
    frames after, the same map cells as the view scrolls on.

    `cells` `[B, F, C, h, w]` describes each cell of each frame, e.g. the pixels of its patch side by
    side (`pixel_cells`). Per frame the shift of up to `max_shift` cells is the one under which the
    fewest cells differ from the frame before by `tolerance` (channel-mean squared distance) or
    more; those cells count. Newly revealed strips (no cell before them), a clip's first frame and
    frames where more than `max_share` of the cells changed (an event's restyle) have none: what
    they show is new, not moved. (The fewest changed cells, not the median distance of
    `carried_cells`, chooses the shift: pixels of a repeating ground tile match under several
    shifts, which ties the median at zero.)

    Why, as a loss weight (`weight_on_cells`): an Explorer enemy is one latent cell of 256 and
    steps every third frame, so under a plain mean its step hardly counts. Unlike `change_weight`,
    the scroll is taken out first, so a scrolling frame weighs its sprites, not every textured
    cell. With the changes alone weighed (`hold_frames` 0) a hold guessed wrong costs less than a
    step guessed wrong, and a world trained so stepped every frame and invented sprites; with
    `hold_frames` as long as a sprite holds, a hold counts as much as a step.
    """
    batch, num_frames, _, height, width = cells.shape
    moved = torch.zeros(batch, num_frames, height, width, dtype=torch.bool, device=cells.device)
    never = float(hold_frames + 1)
    age = torch.full((batch, height, width), never, device=cells.device)  # frames since the cell last changed
    rows = torch.arange(batch, device=cells.device)
    for frame in range(1, num_frames):
        shifts, distance = scroll_distances(cells[:, frame], cells[:, frame - 1], max_shift)
        changed = distance >= tolerance  # NaN (outside) compares False
        share = changed.flatten(2).float().sum(2) / (~distance.isnan()).flatten(2).sum(2).clamp_min(1)  # [S, B]
        best = share.argmin(dim=0)
        restyled = share[best, rows] > max_share
        age = _scroll_rows(age, shifts, best, outside=never) + 1
        age[changed[best, rows]] = 0
        age[restyled] = never
        moved[:, frame] = age <= hold_frames
    return moved


def _scroll_rows(values: Tensor, shifts: list[tuple[int, int]], best: Tensor, outside: float) -> Tensor:
    """`values` `[B, h, w]`, each row moved by its own shift `shifts[best[row]]`; cells from outside
    the frame get `outside`."""
    scrolled = torch.empty_like(values)
    for index, (dx, dy) in enumerate(shifts):
        rows = best == index
        if rows.any():
            moved, inside = shifted_cells(values[rows], dx, dy)
            scrolled[rows] = moved.masked_fill(~inside, outside)
    return scrolled


def pixel_cells(pixels: Tensor, cell: int) -> Tensor:
    """Frames `[B, F, 3, H, W]` → `[B, F, 3·cell², H/cell, W/cell]`: each `cell`×`cell` patch's
    pixels as the channels of one cell (the latent grid, for an autoencoder that downsamples by
    `cell`)."""
    batch, num_frames = pixels.shape[:2]
    patches = torch.nn.functional.pixel_unshuffle(pixels.flatten(0, 1), cell)
    return patches.view(batch, num_frames, *patches.shape[1:])


def weight_on_cells(cells: Tensor, strength: float) -> Tensor:
    """Per-cell loss weight `[B, F, 1, h, w]`: `1 + strength` on `cells` (bool `[B, F, h, w]`, e.g.
    `sprite_cells`), 1 elsewhere, divided by the batch mean so that the loss keeps its scale."""
    raw = 1 + strength * cells[:, :, None].float()
    return raw / raw.mean()


def near_cells(cells: Tensor, margin: int) -> Tensor:
    """bool `[B, F, h, w]`: the cells within `margin` cells (either axis, diagonals included) of a
    marked cell of `cells` (bool `[B, F, h, w]`), the marked ones too; `margin` 0 gives `cells`."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    batch, frames, height, width = cells.shape
    flat = cells.reshape(batch * frames, 1, height, width).float()
    near = torch.nn.functional.max_pool2d(flat, 2 * margin + 1, stride=1, padding=margin)
    return near.reshape(batch, frames, height, width) > 0.5


def on_cells(values: Tensor, cells: Tensor) -> Tensor:
    """Latent-shaped `values` `[B, F, C, h, w]` where `cells` (bool `[B, F, h, w]`) holds, zero elsewhere."""
    return values * cells[:, :, None].to(values.dtype)


def carried_region_loss(frames: Tensor, target: Tensor, carried: Tensor) -> Tensor:
    """Half squared distance of generated latents `[B, F, C, h, w]` to the true ones on the carried
    cells (bool `[B, F, h, w]`), per element of the whole frames, so that a frame with fewer
    carried cells weighs less. Regression is safe there: the context fixes those cells, so pulling
    them to the truth does not average over futures (which is what blurs a frame elsewhere)."""
    return 0.5 * on_cells((frames - target).pow(2), carried).mean()


def logit_normal_weight(sigma: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Bell-shaped loss weight over noise levels: the logit-normal density of σ.

    `w(σ) = exp(−(logit σ − m)² / 2s²) / (s·√(2π)·σ·(1 − σ))`. It is a probability density on
    (0, 1), so its mean under uniformly drawn σ is 1 and the overall loss scale is unchanged; it
    peaks in the middle of the schedule, where the AR teacher's prediction is hardest, and
    vanishes at both ends.
    """
    sigma = sigma.clamp(1e-5, 1 - 1e-5)
    logit = torch.log(sigma) - torch.log1p(-sigma)
    density = torch.exp(-((logit - mean) ** 2) / (2 * std**2))
    return density / (std * math.sqrt(2 * math.pi) * sigma * (1 - sigma))


# --------------------------------------------------------------------------------------------
# autoencoder


def _image_gradients(pixels: Tensor) -> tuple[Tensor, Tensor]:
    return pixels[..., :, 1:] - pixels[..., :, :-1], pixels[..., 1:, :] - pixels[..., :-1, :]


def reconstruction_loss(recon: Tensor, target: Tensor, edge_weight: float = 0.5) -> Tensor:
    """Autoencoder loss, a scalar: `L1 + L2 + edge_weight · L1(image gradients)`.

    L1 keeps flat tiles exact, L2 punishes rare large errors, and the gradient term keeps the
    4-pixel tile edges sharp (an L2-only decoder blurs them). Pixels are `[N, 3, H, W]` in [-1, 1].
    """
    if recon.shape != target.shape:
        raise ValueError(f"shape mismatch: recon {tuple(recon.shape)}, target {tuple(target.shape)}")
    loss = F.l1_loss(recon, target) + F.mse_loss(recon, target)
    if edge_weight:
        for grad_recon, grad_target in zip(_image_gradients(recon), _image_gradients(target)):
            loss = loss + edge_weight * F.l1_loss(grad_recon, grad_target)
    return loss


def psnr(recon: Tensor, target: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image (`[N, ...] -> [N]`); pixels span `data_range`."""
    mse = (recon - target).flatten(1).pow(2).mean(dim=1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


# --------------------------------------------------------------------------------------------
# Causal Forcing++: consistency distillation


def consistency_grid(num_steps: int = 48, sampler_steps: int = 4) -> Tensor:
    """Descending noise grid `t_i = 1 − i/N`, `i = 0..N`, for consistency distillation.

    N must be a multiple of `sampler_steps` so that the few-step sampler's levels
    (`1, 1 − 1/k, …` for k steps) are grid points: every pair the student learns to jump between
    then lines up with the levels it is run at. Apply the σ shift to the returned values.
    """
    if num_steps <= 0 or sampler_steps <= 0 or num_steps % sampler_steps:
        raise ValueError(
            f"num_steps ({num_steps}) must be a positive multiple of sampler_steps ({sampler_steps})"
        )
    return torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64).float()


def guided_velocity(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance on the event condition: `v = v_uncond + g·(v_cond − v_uncond)`."""
    return v_uncond + scale * (v_cond - v_uncond)


def consistency_target(
    teacher_velocity: Callable[[Tensor, Tensor, bool], Tensor],
    target_x0: Callable[[Tensor, Tensor], Tensor],
    x_t: Tensor,
    sigma: Tensor,
    sigma_next: Tensor,
    guidance: float = 1.0,
) -> Tensor:
    """The consistency-distillation target, computed without gradient.

    One Euler step of the frozen teacher along its (guided) probability-flow ODE,
    `x_{t'} = x_t + (σ' − σ)·v_g(x_t, σ)` with `v_g = guided_velocity(v(·, cond), v(·, uncond), g)`,
    then the x0 that the **EMA student** predicts at `(x_{t'}, σ')`.

    `teacher_velocity(x, sigma, conditioned)` returns the teacher's velocity with or without the
    event condition; `target_x0(x, sigma)` is the EMA student's x0 prediction. The online student
    must not appear here: the target is a slowly moving copy so that the regression is stable.
    With guidance 1 the unconditional teacher call is skipped.
    """
    with torch.no_grad():
        v = teacher_velocity(x_t, sigma, True)
        if guidance != 1.0:
            v = guided_velocity(v, teacher_velocity(x_t, sigma, False), guidance)
        x_next = x_t + expand_sigma(sigma_next - sigma, x_t) * v
        return target_x0(x_next, sigma_next).detach()


def ode_target(
    teacher_velocity: Callable[[Tensor, Tensor, bool], Tensor],
    x_t: Tensor,
    sigma: Tensor,
    fractions: Tensor,
    guidance: float = 1.0,
) -> Tensor:
    """The end of the frozen teacher's (guided) probability-flow ODE from `(x_t, sigma)`, without
    gradient: Euler steps through the levels `sigma · fractions[k]` (`fractions` descends from 1
    to 0, e.g. a shifted `sigma_grid`), so every frame runs the same number of steps from its own
    level down to clean.

    The ODE is deterministic, so its end is a function of `x_t`: a student regressed onto it
    learns the teacher's many-step sampler in one jump and keeps what that sampler commits to
    (a rare sprite on new ground), where regressing onto data would give the blurry mean.
    """
    if fractions.dim() != 1 or fractions[0] != 1 or fractions[-1] != 0 or bool((fractions[1:] >= fractions[:-1]).any()):
        raise ValueError(f"fractions must descend strictly from 1 to 0, got {fractions.tolist()}")
    with torch.no_grad():
        x = x_t
        for now, later in zip(fractions[:-1].tolist(), fractions[1:].tolist()):
            level = sigma * now
            v = teacher_velocity(x, level, True)
            if guidance != 1.0:
                v = guided_velocity(v, teacher_velocity(x, level, False), guidance)
            x = x + expand_sigma(sigma * (later - now), x) * v
        return x.detach()


def target_on_new_cells(new_target: Tensor, clean: Tensor, truth_cells: Tensor) -> Tensor:
    """The true frames `clean` `[B, F, C, h, w]` on `truth_cells` (bool `[B, F, h, w]`: the carried
    cells, `carried_from_previous`, or a part of them) and `new_target` elsewhere.

    Why, for distillation onto a teacher's ODE end: a carried cell is fixed by the context, so
    regressing it onto the truth does not blur it, while the ODE, a sampler that commits, carries
    its own errors there; on new ground, a stepped sprite or a restyle the truth is one future of
    many (its regression is their blurred mean) and the ODE end commits to one, rare sprites
    included."""
    return torch.where(truth_cells[:, :, None], clean, new_target)


def consistency_loss(student_x0: Tensor, target: Tensor, weight: Tensor | None = None,
                     cell_weight: Tensor | None = None) -> Tensor:
    """`MSE(student x0 at (x_t, t), sg(target))`, a scalar; optional per-frame `weight` and
    per-element `cell_weight` (broadcastable to x0, e.g. `weight_on_cells`), the latter divided by
    its mean so that the loss keeps its scale."""
    return _weighted_mean((student_x0 - target.detach()).pow(2), weight, cell_weight)


# --------------------------------------------------------------------------------------------
# Self Forcing: distribution matching distillation


def dmd_gradient(x: Tensor, x0_fake: Tensor, x0_real: Tensor, eps: float = 1e-6) -> Tensor:
    """The distribution-matching gradient `g = (x̂_fake − x̂_real) / mean|x − x̂_real|`.

    `x` is the generator's sample, `x̂_real` / `x̂_fake` the real-score (teacher) and fake-score
    (critic) x0 predictions for a noised copy of `x`. Descending along `g` moves samples from where
    the generator's own distribution puts them toward where the data distribution does. The
    per-sample normaliser makes the step size independent of how far off the sample already is.
    Computed without gradient.
    """
    with torch.no_grad():
        scale = (x - x0_real).abs().flatten(1).mean(dim=1).clamp_min(eps)
        return (x0_fake - x0_real) / expand_sigma(scale, x)


def dmd_loss(x: Tensor, grad: Tensor) -> Tensor:
    """`½‖x − sg(x − g)‖²` per sample (`[B]`): its gradient w.r.t. `x` is exactly `g`.

    This turns the hand-made gradient of `dmd_gradient` into something autograd can push through
    the generator's rollout.
    """
    return _half_squared_distance(x, x - grad)


def critic_loss(v_pred: Tensor, generated: Tensor, noise: Tensor) -> Tensor:
    """Fake-score (critic) loss: flow matching on the generator's samples, a scalar.

    The critic learns the score of the generator's current distribution; the samples are
    detached so that this loss never trains the generator (the stage must also noise the detached
    samples before the critic's forward).
    """
    return flow_matching_loss(v_pred, generated.detach(), noise)


# --------------------------------------------------------------------------------------------
# Delta Forcing (our reconstruction: the paper's equations are not public)


TRANSITION_SCALES = ("chunk", "motion")


def transition_norm(generator_x0: Tensor, history: Tensor, scale: str = "chunk") -> Tensor:
    """The unit of Delta Forcing's trust region per sample (`[B]`), without gradient.

    - `chunk`:  `‖x̂_k − h_k‖`, the chunk's own transition away from the last clean frame `h_k`
      (broadcast over the chunk's frames);
    - `motion`: `√F · max_f ‖h_f − h_{f−1}‖`, how fast the world moved before the chunk, as if each
      of its F frames moved that much. A switch that restyles the chunk makes `chunk` large exactly
      where the trust region should bind; `motion` does not see the chunk at all. Needs a history
      of at least 2 frames `[B, K, ...]`.
    """
    with torch.no_grad():
        if scale == "chunk":
            return per_sample_norm(generator_x0 - _broadcast_history(history, generator_x0))
        if scale == "motion":
            if history.dim() != generator_x0.dim() or history.shape[1] < 2:
                raise ValueError(f"scale 'motion' needs a history of >= 2 frames, got {tuple(history.shape)}")
            return largest_motion(history) * generator_x0.shape[1] ** 0.5
        raise ValueError(f"scale must be one of {TRANSITION_SCALES}, got {scale!r}")


def delta_statistic(
    teacher_x0: Tensor, generator_x0: Tensor, history: Tensor, eps: float = 1e-3, scale: str = "chunk"
) -> Tensor:
    """Latent delta `d_k = ‖x̂ᴿ_k − x̂_k‖ / (T_k + ε)` per sample, without gradient.

    The teacher's disagreement with the generator's chunk, measured in units `T_k` of
    `transition_norm` (by default the chunk's own transition away from the history `h_k`, the last
    clean frame(s) before chunk k). `d ≈ 0`: the teacher endorses the transition; `d ≫ 1`: the
    teacher would move the chunk further than the generator moved it at all, typically right after
    an event switch, where following it blindly breaks continuity.
    """
    with torch.no_grad():
        disagreement = per_sample_norm(teacher_x0 - generator_x0)
        return disagreement / (transition_norm(generator_x0, history, scale) + eps)


def _broadcast_history(history: Tensor, frames: Tensor) -> Tensor:
    """History `[B, C, h, w]` or `[B, K, C, h, w]` → its last frame expanded to `frames`' shape."""
    if history.dim() == frames.dim():
        history = history[:, -1]
    if history.dim() != frames.dim() - 1 or history.shape[1:] != frames.shape[2:]:
        raise ValueError(
            f"history {tuple(history.shape)} does not match frames {tuple(frames.shape)}"
        )
    return history.unsqueeze(1).expand_as(frames)


WEIGHT_KINDS = ("clip", "gauss", "cosine")


def trust_region_weight(d: Tensor, rho: float, kind: str = "clip") -> Tensor:
    """Trust-region weight `w_k` of the DMD loss, from the delta statistic `d_k`.

    - `clip`:   `w = min(1, ρ/d)` — full weight inside the trust region, then `ρ/d`.
    - `gauss`:  `w = exp(−(d/ρ)²)` — smooth, already below 1 for any disagreement.
    - `cosine`: `w = 1` for `d ≤ ρ`, a half-cosine down to 0 at `d = 2ρ`, 0 beyond.
    All are 1 at `d = 0` (teacher agrees) and non-increasing in `d`.
    """
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if kind == "clip":
        return (rho / d.clamp_min(1e-12)).clamp(max=1.0)
    if kind == "gauss":
        return torch.exp(-((d / rho) ** 2))
    if kind == "cosine":
        progress = ((d - rho) / rho).clamp(0.0, 1.0)
        return 0.5 * (1 + torch.cos(math.pi * progress))
    raise ValueError(f"unknown trust-region weight kind {kind!r}; choose from {WEIGHT_KINDS}")


def projected_target(
    teacher_x0: Tensor, generator_x0: Tensor, history: Tensor, rho: float, scale: str = "chunk"
) -> Tensor:
    """M1 target: the teacher's x0, pulled back into the trust region, without gradient.

    Move from `x̂_k` toward `x̂ᴿ_k` by at most `r = ρ·T_k` (`transition_norm`): the teacher's own
    prediction when it lies inside that radius (`d_k ≤ ρ`), else the point at distance `r` on the segment.
    """
    with torch.no_grad():
        step = teacher_x0 - generator_x0
        radius = rho * transition_norm(generator_x0, history, scale)
        scale = (radius / per_sample_norm(step).clamp_min(1e-12)).clamp(max=1.0)
        return generator_x0 + expand_sigma(scale, step) * step


def projected_target_loss(generator_x0: Tensor, target: Tensor) -> Tensor:
    """M1 continuity loss `½‖x̂_k − sg(target)‖²` per sample (`[B]`)."""
    return _half_squared_distance(generator_x0, target)


def frame_motion(frames: Tensor) -> Tensor:
    """Frame-to-frame latent change `‖x_f − x_{f−1}‖` per sample: `[B, F, ...] -> [B, F−1]`."""
    return (frames[:, 1:] - frames[:, :-1]).flatten(2).norm(dim=2)


def largest_motion(history: Tensor) -> Tensor:
    """The largest frame-to-frame change of a history `[B, K, ...]` (K >= 2), per sample `[B]`: how
    fast the world was moving before a chunk."""
    return frame_motion(history).max(dim=1).values


def monotone_jump_penalty(frames: Tensor, history: Tensor, motion_bound: Tensor) -> Tensor:
    """M2 continuity loss: `½ Σ_f relu(‖x_f − x_{f−1}‖ − m)²` per sample (`[B]`).

    `frames` are the chunk's new frames `[B, F, ...]`, `history` the clean frame(s) before them
    (its last frame is `x_{−1}`, so the jump into the chunk counts), `motion_bound` `[B]` the
    pre-switch motion `m` (e.g. the largest `frame_motion` of the history). A switch may change
    what the world looks like, but not faster than the world was already moving: motion under the
    bound costs nothing, every excess is penalised quadratically.
    """
    previous = _broadcast_history(history, frames[:, :1])
    motion = frame_motion(torch.cat([previous, frames], dim=1))
    excess = F.relu(motion - motion_bound.detach().unsqueeze(1))
    return 0.5 * excess.pow(2).sum(dim=1)


def proximal_anchor_loss(generator_x0: Tensor, anchor_x0: Tensor) -> Tensor:
    """M3 continuity loss `½‖x̂_k − sg(x̂^EMA_k)‖²` per sample (`[B]`).

    The anchor is the EMA generator's output on the same noise and history: the generator may
    follow the teacher, but only by a proximal step away from where it already was.
    """
    return _half_squared_distance(generator_x0, anchor_x0)


def delta_forcing_loss(
    dmd_losses: Tensor, continuity_losses: Tensor, weights: Tensor, lam: float
) -> Tensor:
    """Delta Forcing objective `mean_k [ w_k·L_DMD,k + λ·(1 − w_k)·L_cont,k ]`, a scalar.

    All inputs are per sample (`[B]`); the weights are constants (computed from stop-grad `d_k`).
    Where the teacher agrees (w = 1) this is plain DMD; where it pulls away, the continuity term
    takes over in proportion.
    """
    weights = weights.detach()
    return (weights * dmd_losses + lam * (1 - weights) * continuity_losses).mean()


# --------------------------------------------------------------------------------------------
# Rolling Forcing


def rolling_window_sigmas(window: int) -> tuple[Tensor, Tensor]:
    """Noise levels of a rolling window of W frames, oldest first: `(sigma_in, sigma_out)`, `[W]`.

    Before a forward the frames sit at `σ_j = (j + 1)/W` (oldest least noisy, newest pure noise);
    one forward denoises each by one level to `σ_j = j/W`, so the oldest comes out clean and is
    emitted, and one new pure-noise frame is admitted. Apply the σ shift to both.
    """
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    levels = torch.arange(window + 1, dtype=torch.float32) / window
    return levels[1:], levels[:-1]


def rolling_gradient_mask(num_steps: int, window: int, exit_step: int) -> Tensor:
    """Which rolling forwards get gradient: steps `w` with `w ≡ exit (mod W)`, a bool `[num_steps]`.

    The window at step w holds frames `w .. w+W−1`, so windows W steps apart never share a frame:
    every frame is trained through exactly one differentiated forward and the rest run no-grad.
    """
    if not 0 <= exit_step < window:
        raise ValueError(f"exit_step must be in [0, {window}), got {exit_step}")
    return torch.arange(num_steps) % window == exit_step


# --------------------------------------------------------------------------------------------
# reward / termination model


def reward_loss(
    reward_logits: Tensor,
    done_logit: Tensor,
    reward_class: Tensor,
    done: Tensor,
    class_weights: Tensor | None = None,
    done_pos_weight: Tensor | None = None,
) -> Tensor:
    """Cross-entropy over reward classes (−1/0/+1 as 0/1/2) plus termination BCE, a scalar.

    `class_weights` (`[3]`) and `done_pos_weight` (a scalar tensor) counter the rarity of non-zero
    rewards and of terminations.
    """
    reward_term = F.cross_entropy(reward_logits, reward_class, weight=class_weights)
    done_term = F.binary_cross_entropy_with_logits(done_logit, done.float(), pos_weight=done_pos_weight)
    return reward_term + done_term


# --------------------------------------------------------------------------------------------
# event text encoder


def event_prototype_loss(
    vectors: Tensor,
    labels: Tensor,
    prototypes: Tensor,
    temperature: float = 0.1,
    anchors: Tensor | None = None,
    anchor_weight: float = 1.0,
) -> Tensor:
    """Pull each text's vector `[N, E]` towards its event's prototype, away from the others, a scalar.

    Cross-entropy of the cosine similarities to the prototypes `[K, E]` over `temperature`, for the
    class `labels` `[N]`. With `anchors` `[A, E]` (A <= K: the vectors a trained generator expects
    for events 0..A-1), rows labelled below A also pay `anchor_weight` times their squared distance
    to their anchor, relative to the anchors' mean square, so the vectors keep their scale and place.
    """
    logits = F.normalize(vectors, dim=-1) @ F.normalize(prototypes, dim=-1).T / temperature
    loss = F.cross_entropy(logits, labels)
    if anchors is None:
        return loss
    anchored = labels < len(anchors)
    if not bool(anchored.any()):
        return loss
    distance = (vectors[anchored] - anchors[labels[anchored]]).pow(2).mean()
    return loss + anchor_weight * distance / anchors.pow(2).mean().clamp_min(1e-8)
