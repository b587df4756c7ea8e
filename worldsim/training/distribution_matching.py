"""The two scores of distribution matching (DMD) and the updates they drive.

Real score: the frozen teacher. Fake score: the critic, a trainable copy of the teacher that
keeps learning (by flow matching) the distribution of the generator's current samples. Both
score a *window*: clean context frames (earlier frames of the same rollout, at sigma 0) followed
by the new generated frames, all noised to one random level per sample; only the new frames
receive the DMD gradient, so the teacher judges them in the light of what came before.

Two layouts (`DMDSettings.layout`):
- "bidirectional": the window through the bidirectional teacher, every frame seeing the whole
  window (the layout the `teacher` stage learnt from its per-frame noise levels);
- "teacher_forcing": the layout `[clean ; noisy]` of an autoregressive teacher (the `ar-teacher`
  stage, or a world trained like it): each noisy frame sees the clean frames before it, so each
  new frame is scored as a next frame of the rollout's own history. An AR world can then be
  its own real score, and the critic learns the generator's next frames given its own past.

Used by the `dmd`, `stream`, `delta` and `rolling` stages.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from worldsim.model import CausalTransformer, flow
from worldsim.training import losses
from worldsim.training.common import freeze, sample_sigma
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.trainer import optimizer_step

__all__ = ["DMDSettings", "ScoredWindow", "DistributionMatching", "LAYOUTS"]

LAYOUTS = ("bidirectional", "teacher_forcing")


@dataclass
class DMDSettings:
    sigma_min: float = 0.02  # DMD noise levels are drawn uniformly in [sigma_min, sigma_max] (before the shift)
    sigma_max: float = 0.98
    real_guidance: float = 1.5  # classifier-free guidance of the real score on the event
    critic_lr: float = 1e-4
    critic_steps: int = 2  # critic updates per generator update
    # Steps at the start that train only the critic: it starts as a copy of the teacher, so until
    # it has learnt the generator's distribution the DMD gradient is mostly its own lag.
    critic_warmup: int = 0
    layout: str = "bidirectional"  # how both scores read a window: "bidirectional" or "teacher_forcing"

    def validate(self) -> None:
        if not 0.0 <= self.sigma_min < self.sigma_max <= 1.0:
            raise ConfigError(f"need 0 <= sigma_min < sigma_max <= 1, got {self.sigma_min}, {self.sigma_max}")
        if self.critic_steps < 1 or self.critic_lr <= 0 or self.critic_warmup < 0:
            raise ConfigError("critic_steps must be >= 1, critic_lr positive and critic_warmup >= 0")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")


@dataclass
class ScoredWindow:
    """The scores of one window's new frames."""

    per_sample_loss: Tensor  # [B]: DMD loss, mean over elements (gradient g / D w.r.t. the frames)
    x0_real: Tensor  # [B, F, ...]: the teacher's x0 for the new frames (no grad)
    x0_fake: Tensor  # [B, F, ...]: the critic's
    grad: Tensor  # [B, F, ...]: the DMD gradient g

    def fake_real_gap(self) -> float:
        """Mean squared distance of the two scores' x0: zero when the generator matches the data."""
        return (self.x0_fake - self.x0_real).pow(2).mean().item()


class DistributionMatching:
    """Real and fake scores over windows `[context ; new frames]`, and the critic's training."""

    def __init__(self, teacher: CausalTransformer, settings: DMDSettings, shift: float,
                 context: DistributedContext, grad_clip: float, weight_decay: float = 0.0):
        self.teacher = freeze(teacher)
        self.critic = copy.deepcopy(teacher).train().requires_grad_(True)
        self.optimizer = torch.optim.AdamW(self.critic.parameters(), lr=settings.critic_lr, betas=(0.9, 0.99),
                                           weight_decay=weight_decay)
        self.settings, self.shift, self.context, self.grad_clip = settings, shift, context, grad_clip

    def _noised_window(self, context_frames: Tensor | None, frames: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        """(noisy window, sigma [B, Fw], noise of the new frames, number of context frames)."""
        batch, num_new = frames.shape[:2]
        level = sample_sigma((batch, 1), self.shift, frames.device, self.settings.sigma_min, self.settings.sigma_max)
        noise = torch.randn_like(frames)
        noisy = flow.add_noise(frames, noise, level.expand(batch, num_new))
        if context_frames is None:
            return noisy, level.expand(batch, num_new), noise, 0
        num_context = context_frames.shape[1]
        sigma = torch.cat([level.new_zeros(batch, num_context), level.expand(batch, num_new)], dim=1)
        return torch.cat([context_frames, noisy], dim=1), sigma, noise, num_context

    def _velocity(self, net: CausalTransformer, noisy: Tensor, sigma: Tensor, clean: Tensor, actions: Tensor,
                  events: Tensor | None) -> Tensor:
        """`net`'s velocity over the noisy window; `clean` (the window's clean frames) is what each
        noisy frame sees of the past in the teacher-forcing layout."""
        if self.settings.layout == "teacher_forcing":
            return net.forward_teacher_forcing(clean, noisy, sigma, actions, events)
        return net(noisy, sigma, actions, events, mode="bidirectional")

    def score(self, frames: Tensor, context_frames: Tensor | None, actions: Tensor, events: Tensor,
              cells: Tensor | None = None) -> ScoredWindow:
        """DMD loss of the new `frames` `[B, F, ...]` (with gradient) after `context_frames` (clean, no grad).

        `actions` and `events` (the teacher's embedding) cover the whole window `[B, Fc + F]`.
        With `cells` (bool `[B, F, h, w]`) the DMD gradient reaches only those cells of the frames.
        """
        with torch.no_grad():
            noisy, sigma, _, num_context = self._noised_window(context_frames, frames.detach())
            clean = _clean_window(context_frames, frames.detach())
            v_real = self._velocity(self.teacher, noisy, sigma, clean, actions, events)
            if self.settings.real_guidance != 1.0:
                v_uncond = self._velocity(self.teacher, noisy, sigma, clean, actions, None)
                v_real = losses.guided_velocity(v_real, v_uncond, self.settings.real_guidance)
            v_fake = self._velocity(self.critic, noisy, sigma, clean, actions, events)
            new = slice(num_context, None)
            x0_real = flow.x0_from_velocity(noisy[:, new], sigma[:, new], v_real[:, new])
            x0_fake = flow.x0_from_velocity(noisy[:, new], sigma[:, new], v_fake[:, new])
            grad = losses.dmd_gradient(frames.detach(), x0_fake, x0_real)
            if cells is not None:
                grad = losses.on_cells(grad, cells)
        elements = frames[0].numel()
        return ScoredWindow(losses.dmd_loss(frames, grad) / elements, x0_real, x0_fake, grad)

    def train_critic(self, frames: Tensor, context_frames: Tensor | None, actions: Tensor, events: Tensor) -> float:
        """`critic_steps` flow-matching updates of the critic on the detached window; mean loss."""
        frames = frames.detach()
        clean = _clean_window(context_frames, frames)
        total = 0.0
        for _ in range(self.settings.critic_steps):
            noisy, sigma, noise, num_context = self._noised_window(context_frames, frames)
            velocity = self._velocity(self.critic, noisy, sigma, clean, actions, events)[:, num_context:]
            loss = losses.critic_loss(velocity, frames, noise)
            optimizer_step(loss, self.optimizer, self.context, self.grad_clip)
            total += loss.item()
        return total / self.settings.critic_steps


def _clean_window(context_frames: Tensor | None, frames: Tensor) -> Tensor:
    """The window's clean frames: the context, then the new frames."""
    return frames if context_frames is None else torch.cat([context_frames, frames], dim=1)
