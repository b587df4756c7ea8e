"""Stage `ar-teacher`: a teacher-forcing autoregressive diffusion model.

The layout is `[clean frames ; noisy frames]`: noisy frame f sees the clean frames before it and
itself, each noisy frame at its own noise level, and the loss is weighted by a bell over the
noise level (`logit_normal_weight`). This is the teacher whose ODE map a causal student can
actually learn (a bidirectional teacher's target would depend on future frames the student never
sees), so `causal-cd` distils from it. Trained like the bidirectional `teacher`, from whose world
it starts by default; the same network then also works with a diffusion-forcing sampler.

With `own_history > 0` a share of rows trains on the network's own history (scheduled sampling):
their context frames after the first are replaced by the network's rollout from the clip's first
frame under the clip's actions and events, sampled as the world is played, while the targets stay
the true frames. Teacher forcing alone never shows the network its own slightly blurred frames, so
in play it continues their blur until the view dissolves; these rows teach it to pull such a
history back toward the data. The targets stay true frames even where a long rollout has drifted
from them: with three quarters of the rows on 16-frame clips this blurred an Explorer world (known-
region PSNR 4-6 dB lower teacher-forced, 5-7 dB at frame 8; docs/generator-design.md, section 19),
so use it with short clips or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldsim.sampling.frame_sampler import CleanFrames, Conditions
from worldsim.training.batches import ModelBatch
from worldsim.training.config import ConfigError
from worldsim.training.self_rollout import continue_from, gaussian_noise_source
from worldsim.training.teacher import FlowMatchingConfig, FlowMatchingStage
from worldsim.training.teacher_forcing_term import LOSS_WEIGHTS, noised_context

__all__ = ["ARTeacherConfig", "ARTeacherStage"]


@dataclass
class ARTeacherConfig(FlowMatchingConfig):
    # Small noise on the clean context makes the teacher robust to its own imperfect frames.
    context_noise: float = 0.0  # max sigma of the context frames (0 = exactly clean)
    # "bell": the logit-normal weight, for a teacher that is distilled (its hard middle levels
    # matter most). "uniform": every level alike, for a world sampled as it is in 1-2 steps,
    # whose first step predicts x0 at sigma 1 — where the bell weight vanishes.
    loss_weight: str = "bell"
    own_history: float = 0.0  # share of rows whose context is the network's own rollout (module docstring)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.context_noise < 1.0:
            raise ConfigError(f"context_noise must be in [0, 1), got {self.context_noise}")
        if not 0.0 <= self.own_history <= 1.0:
            raise ConfigError(f"own_history must be in [0, 1], got {self.own_history}")
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ConfigError(f"loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")


class ARTeacherStage(FlowMatchingStage):
    name = "ar-teacher"
    role = "teacher-forcing autoregressive teacher (for causal-cd)"

    def velocity(self, batch: ModelBatch, noisy: Tensor, sigma: Tensor, events: Tensor) -> Tensor:
        # The noise goes on the context as drawn (own history or truth): noising the true latents
        # instead would throw the own-history rows away.
        clean, clean_sigma = noised_context(self.context_latents(batch, events), self.config.context_noise)
        return self.transformer.forward_teacher_forcing(clean, noisy, sigma, batch.actions, events,
                                                        clean_sigma=clean_sigma)

    def bell_weight(self) -> bool:
        return self.config.loss_weight == "bell"

    def context_latents(self, batch: ModelBatch, events: Tensor) -> Tensor:
        """The clean frames the noisy ones are conditioned on: the true clip, with the frames after
        the first replaced by the network's own rollout in an `own_history` share of rows.

        The last frame is no frame's context, so the rollout stops one short of it.
        """
        latents = batch.latents
        rows = torch.rand(latents.shape[0], device=latents.device) < self.config.own_history
        if latents.shape[1] < 3 or not bool(rows.any()):
            return latents
        actions, row_events = batch.actions[rows], events[rows]
        start = CleanFrames(latents[rows, :1], Conditions(actions[:, :1], row_events[:, :1]))
        later = Conditions(actions[:, 1:-1], row_events[:, 1:-1])
        own = continue_from(self.transformer, start, later, self.world.config.sampling.step_sigmas(),
                            gaussian_noise_source(row_events))
        latents = latents.clone()
        latents[rows, 1:-1] = own
        return latents
