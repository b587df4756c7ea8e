"""Stage `delta`: Delta Forcing on top of streaming long tuning.

The paper's equations are not public; this is our reconstruction, with every variant switchable
from the config (`--set delta.continuity=M2`, `--set delta.weight=gauss`, ...):

- per chunk k, the history `h_k` (last clean frame before the chunk), the generator's frames
  `x̂_k` and the teacher's x0 `x̂ᴿ_k` (computed inside the DMD step anyway);
- the latent delta `d_k = ‖x̂ᴿ_k − x̂_k‖ / (T_k + ε)` (stop-grad, per sample), with the unit
  `T_k` the chunk's own transition `‖x̂_k − h_k‖` (`scale = "chunk"`) or the motion of the frames
  before the chunk (`scale = "motion"`, which a restyling switch does not inflate);
- the trust-region weight `w_k` (`clip`: min(1, ρ/d), `gauss`: exp(−(d/ρ)²), `cosine` gate);
- the loss `w_k·L_DMD,k + λ·(1 − w_k)·L_cont,k` with the continuity term
  M1 trust-region-projected target, M2 monotone-jump penalty (frame-to-frame change bounded by
  the motion before the chunk), or M3 proximal anchor to the EMA generator's output on the same
  noise and history;
- applied to every chunk, or only to the first `after_switch_chunks` chunks after a switch
  (elsewhere plain DMD).
`delta_d` / `delta_w` (and their values on chunks right after a switch) go to the CSV log.
The maths is in `losses` (`delta_statistic`, `trust_region_weight`, `projected_target`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from worldsim.training import losses
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.distribution_matching import ScoredWindow
from worldsim.training.self_rollout import Anchor
from worldsim.training.stream import StreamConfig, StreamStage

__all__ = ["DeltaSettings", "DeltaConfig", "DeltaStage", "CONTINUITY_VARIANTS"]

CONTINUITY_VARIANTS = ("M1", "M2", "M3", "none")


@dataclass
class DeltaSettings:
    """Defaults: the variant `worldsim eval --switch-study` chose by its rule (the lowest consistency
    drop among variants that keep stream's reactivity) on the Explorer world (docs/eval/delta-vs-stream,
    288 switches, on real clips): monotone-jump continuity, Gaussian weight, the two chunks after a
    switch, the trust region in units of the motion before the chunk, ρ 0.5, λ 1."""

    weight: str = "gauss"  # clip | gauss | cosine
    continuity: str = "M2"  # M1 (projected target) | M2 (monotone jump) | M3 (EMA anchor) | none
    rho: float = 0.5  # trust-region radius, in units of the transition scale
    scale: str = "motion"  # motion: the motion before the chunk | chunk: the chunk's own transition
    lam: float = 1.0  # weight of the continuity term
    apply_to: str = "after_switch"  # all | after_switch
    after_switch_chunks: int = 2  # with apply_to=after_switch: chunks after a switch that get Delta Forcing
    motion_margin: float = 1.0  # M2: allowed motion = margin x the largest motion before the chunk
    eps: float = 1e-3

    def validate(self) -> None:
        if self.weight not in losses.WEIGHT_KINDS:
            raise ConfigError(f"delta.weight must be one of {losses.WEIGHT_KINDS}, got {self.weight!r}")
        if self.continuity not in CONTINUITY_VARIANTS:
            raise ConfigError(f"delta.continuity must be one of {CONTINUITY_VARIANTS}, got {self.continuity!r}")
        if self.scale not in losses.TRANSITION_SCALES:
            raise ConfigError(f"delta.scale must be one of {losses.TRANSITION_SCALES}, got {self.scale!r}")
        if self.apply_to not in ("all", "after_switch"):
            raise ConfigError(f"delta.apply_to must be 'all' or 'after_switch', got {self.apply_to!r}")
        if self.rho <= 0 or self.lam < 0 or self.after_switch_chunks < 1 or self.motion_margin <= 0:
            raise ConfigError("delta: need rho > 0, lam >= 0, after_switch_chunks >= 1, motion_margin > 0")


@dataclass
class DeltaConfig(StreamConfig):
    delta: DeltaSettings = field(default_factory=DeltaSettings)

    def validate(self) -> None:
        super().validate()
        self.delta.validate()


class DeltaStage(StreamStage):
    name = "delta"
    role = "few-step causal generator (Delta Forcing)"

    def __init__(self, config: DeltaConfig, context: DistributedContext):
        super().__init__(config, context)
        self.settings = config.delta

    def anchor(self) -> Anchor | None:
        if self.settings.continuity != "M3":
            return None
        return Anchor(self.ema, self.ema.new_cache(self.config.batch_size, device=self.context.device))

    def applies(self, since_switch: Tensor) -> Tensor:
        """bool `[B]`: the rows whose chunk gets Delta Forcing (the others get plain DMD)."""
        if self.settings.apply_to == "all":
            return torch.ones_like(since_switch, dtype=torch.bool)
        return (since_switch >= 0) & (since_switch < self.settings.after_switch_chunks)

    def continuity(self, scored: ScoredWindow, frames: Tensor, history: Tensor, anchor_frames: Tensor | None) -> Tensor:
        """The chosen continuity term per sample, on the scale of the DMD loss (mean over elements)."""
        settings, elements = self.settings, frames[0].numel()
        if settings.continuity == "M1":
            target = losses.projected_target(scored.x0_real, frames.detach(), history, settings.rho, settings.scale)
            return losses.projected_target_loss(frames, target) / elements
        if settings.continuity == "M2":
            bound = settings.motion_margin * losses.largest_motion(history)
            return losses.monotone_jump_penalty(frames, history, bound) / elements
        if settings.continuity == "M3":
            return losses.proximal_anchor_loss(frames, anchor_frames) / elements
        return torch.zeros_like(scored.per_sample_loss)

    def chunk_loss(self, scored: ScoredWindow, frames: Tensor, history: Tensor | None, anchor_frames: Tensor | None,
                   since_switch: Tensor) -> tuple[Tensor, dict[str, float]]:
        needs_motion = self.settings.continuity == "M2" or self.settings.scale == "motion"
        too_short = needs_motion and history is not None and history.shape[1] < 2
        applied = self.applies(since_switch)
        if history is None or too_short or not applied.any():
            return scored.per_sample_loss.mean(), {}
        d = losses.delta_statistic(scored.x0_real, frames.detach(), history, self.settings.eps, self.settings.scale)
        w = losses.trust_region_weight(d, self.settings.rho, self.settings.weight)
        w = torch.where(applied, w, torch.ones_like(w))  # w = 1 is plain DMD
        continuity = self.continuity(scored, frames, history, anchor_frames)
        loss = losses.delta_forcing_loss(scored.per_sample_loss, continuity, w, self.settings.lam)
        metrics = {"delta_d": d[applied].mean().item(), "delta_w": w[applied].mean().item(),
                   "continuity": continuity[applied].mean().item()}
        at_switch = since_switch == 0
        if at_switch.any():
            metrics.update(delta_d_at_switch=d[at_switch].mean().item(), delta_w_at_switch=w[at_switch].mean().item())
        return loss, metrics

    def record(self) -> dict[str, Any]:
        """The stream record plus the variant: the ablation table labels its row with it."""
        settings = self.settings
        variant = f"{settings.continuity}-{settings.weight}"
        if settings.apply_to == "after_switch":
            variant += f"-first{settings.after_switch_chunks}"
        if settings.scale != "chunk":
            variant += f"-{settings.scale}"
        return {**super().record(), "variant": variant, "rho": settings.rho, "lam": settings.lam}
