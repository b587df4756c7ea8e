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

from worldsim.training.common import save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.dmd import DMDConfig, DMDStage
from worldsim.training.self_rollout import gaussian_noise_source, rolling_rollout
from worldsim.training.trainer import TrainSummary

__all__ = ["RollingConfig", "RollingStage"]


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
        truth, carried = self.carried_truth(clip) if config.anchor_weight else (None, None)
        exit_step = broadcast_choice(lambda: int(torch.randint(config.window, ())), self.context)
        cache = self.generator.new_cache(config.batch_size, device=self.context.device)
        first = config.context_frames
        windows, emitted = rolling_rollout(
            self.generator, cache, conditions.for_student(slice(first, None)), config.window, self.shift,
            exit_step, gaussian_noise_source(conditions.student_events), pending)
        clean = emitted if context_latents is None else torch.cat([context_latents, emitted], dim=1)
        scored_windows, window_losses, anchor_logs = [], [], []
        for window in windows:
            start = first + window.first_frame  # the window's oldest frame, as an index into the sequence
            overlap = clean[:, max(0, start - config.overlap_frames):start]
            overlap = overlap if overlap.shape[1] else None
            span = slice(start - (0 if overlap is None else overlap.shape[1]), start + window.x0.shape[1])
            after_context = slice(window.first_frame, window.first_frame + window.x0.shape[1])
            cells = None if carried is None else carried[:, after_context]
            scored = self.scores.score(window.x0, overlap, *conditions.window(span), self.dmd_cells(cells))
            scored_windows.append((window.x0, overlap, span, scored))
            window_losses.append(scored.per_sample_loss.mean())
            if truth is not None:  # every x0 in flight, however noisy its input, is held to the carried map
                anchor, logs = self.anchor_loss(window.x0, truth[:, after_context], cells)
                window_losses[-1] = window_losses[-1] + anchor
                anchor_logs.append(logs)
        loss = torch.stack(window_losses).mean()
        metrics = self.update_generator(loss, step)
        for key in anchor_logs[0] if anchor_logs else ():
            metrics[key] = sum(logs[key] for logs in anchor_logs) / len(anchor_logs)
        critic_losses = [self.train_critic(x0, overlap, *conditions.window(span))["loss"]
                         for x0, overlap, span, _ in scored_windows]
        gaps = [scored.fake_real_gap() for *_, scored in scored_windows]
        return {**metrics, "loss": sum(critic_losses) / len(critic_losses),
                "fake_real_gap": sum(gaps) / len(gaps), "rolling": 1.0}

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.generator.load_state_dict(self.ema.state_dict())
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, window=self.config.window, frames=self.config.frames)
