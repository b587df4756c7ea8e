"""Stage `rolling`: Rolling Forcing — rolling windows with an attention sink.

A rolling rollout keeps W frames in flight at staggered noise levels (oldest least noisy); each
forward denoises them all by one level, emits the oldest as a clean frame into the cache and
admits one new pure-noise frame. The sequence's start frame(s) stay in the cache as the attention
sink (the cache's `sink_frames`), so however far the window rolls, every frame still sees where
the rollout began. Only the forwards at steps `w ≡ exit (mod W)` are differentiated — windows
that never share a frame — and each such window's x0 predictions get the DMD loss, scored with
the last emitted clean frames as context. Steps mix rolling rollouts with plain frame-wise ones
(`plain_prob`), so the generator stays good at both; the kind, like the exit step, is drawn on
rank 0 and broadcast. With `anchor_weight` the sequence is a real clip's and every window's x0
is also held to the clip's true frames on the cells the context carries (as in `dmd`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from worldsim.training.common import save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.distribution_matching import ScoredWindow
from worldsim.training.dmd import DMDConfig, DMDStage, RolloutConditions
from worldsim.training.self_rollout import RollingWindow, gaussian_noise_source, rolling_rollout
from worldsim.training.trainer import TrainSummary

__all__ = ["RollingConfig", "RollingStage"]


@dataclass
class WindowLoss:
    """One rolling window's part of a step: what the critic trains on and the generator's loss."""

    x0: Tensor  # [B, W, ...] the window's x0 predictions
    overlap: Tensor | None  # the clean frames it was scored after
    span: slice  # the window's frames (overlap included) in the sequence
    scored: ScoredWindow
    loss: Tensor  # DMD (+ anchor) loss, a scalar
    logs: dict[str, float]  # the anchor's logs, empty without it


@dataclass
class RollingConfig(DMDConfig):
    window: int = 4  # W: frames in flight
    frames: int = 16  # frames admitted per rollout
    context_frames: int = 1  # real start frames: the attention sink
    overlap_frames: int = 2  # emitted frames used as the scoring context of a window
    plain_prob: float = 0.25  # share of steps that run a plain frame-wise rollout instead
    steps: int = 1000

    def validate(self) -> None:
        super().validate()
        if self.window < 1 or self.overlap_frames < 0 or self.frames < self.window:
            raise ConfigError("need window >= 1, frames >= window and overlap_frames >= 0")
        if not 0.0 <= self.plain_prob <= 1.0:
            raise ConfigError(f"plain_prob must be in [0, 1], got {self.plain_prob}")


class RollingStage(DMDStage):
    name = "rolling"
    role = "few-step causal generator (Rolling Forcing)"

    def __init__(self, config: RollingConfig, context: DistributedContext):
        super().__init__(config, context)
        self.shift = self.world.config.sampling.sigma_shift

    def train_step(self, step: int) -> dict[str, float]:
        config = self.config
        plain = broadcast_choice(lambda: int(float(torch.rand(())) < config.plain_prob), self.context)
        if plain:
            return {**super().train_step(step), "rolling": 0.0}
        clip = self.clips.batch(step)
        conditions, pending, context_latents = self.start_of(clip)
        exit_step = broadcast_choice(lambda: int(torch.randint(config.window, ())), self.context)
        cache = self.generator.new_cache(config.batch_size, device=self.context.device)
        windows, emitted = rolling_rollout(
            self.generator, cache, conditions.for_student(slice(config.context_frames, None)), config.window,
            self.shift, exit_step, gaussian_noise_source(conditions.student_events), pending)
        clean = emitted if context_latents is None else torch.cat([context_latents, emitted], dim=1)
        true_clip = self.true_clip(clip)
        anchored, spared = self.carried_truth(true_clip), self.sprite_spared(true_clip)
        parts = [self.window_loss(window, clean, conditions, anchored, spared) for window in windows]
        teacher_forcing, teacher_forcing_metrics = self.teacher_forcing_loss(true_clip, conditions)
        metrics = self.update_generator(torch.stack([part.loss for part in parts]).mean() + teacher_forcing, step)
        metrics.update(teacher_forcing_metrics)
        for key in parts[0].logs:
            metrics[key] = sum(part.logs[key] for part in parts) / len(parts)
        critic_losses = [self.train_critic(part.x0, part.overlap, *conditions.window(part.span))["loss"]
                         for part in parts]
        gaps = [part.scored.fake_real_gap() for part in parts]
        return {**metrics, "loss": sum(critic_losses) / len(critic_losses),
                "fake_real_gap": sum(gaps) / len(gaps), "rolling": 1.0}

    def window_loss(self, window: RollingWindow, clean: Tensor, conditions: RolloutConditions,
                    anchored: tuple[Tensor, Tensor] | None, spared: Tensor | None = None) -> WindowLoss:
        """One window's DMD loss, scored after the last emitted clean frames before it, plus (with
        `anchored` = the true frames after the context and their carried cells) the anchor on its
        x0: every frame in flight, however noisy its input, is held to the carried map. `spared`
        (after the context) are the cells around true sprites the DMD gradient skips."""
        config = self.config
        start = config.context_frames + window.first_frame  # the window's oldest frame in the sequence
        overlap = clean[:, max(0, start - config.overlap_frames):start]
        overlap = overlap if overlap.shape[1] else None
        span = slice(start - (0 if overlap is None else overlap.shape[1]), start + window.x0.shape[1])
        frames = slice(window.first_frame, window.first_frame + window.x0.shape[1])  # counted after the context
        truth, carried = self.anchored_frames(anchored, frames)
        scored = self.scores.score(window.x0, overlap, *conditions.window(span),
                                   self.dmd_cells(carried, self.frames_of(spared, frames)))
        anchor, logs = self.anchor_loss(window.x0, truth, carried)
        return WindowLoss(window.x0, overlap, span, scored, scored.per_sample_loss.mean() + anchor, logs)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.generator.load_state_dict(self.ema.state_dict())
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, window=self.config.window, frames=self.config.frames)
