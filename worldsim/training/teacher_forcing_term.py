"""A teacher-forced flow-matching term for the distribution-matching stages.

The worlds here sample with the same network the `ar-teacher` stage trains by flow matching, run
for a few steps. Distribution matching on the generator's own rollouts (`dmd`, `stream`, `delta`,
`rolling`) scores whole frames, and a sprite that fills one latent cell of 256 (an Explorer enemy)
weighs next to nothing in it: those stages lose the enemies that sprite-weighted teacher forcing
taught (docs/generator-design.md, sections 17-18). This term keeps training the velocity field on
the real clip the stage already reads — teacher-forced, as the `ar-teacher` stage does, with the
cells where a sprite arrived, held or left weighted — beside the scores that train the rollouts.

`noised_context` is shared with the `ar-teacher` stage.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldsim.model import CausalTransformer, flow
from worldsim.training import losses
from worldsim.training.common import sample_sigma
from worldsim.training.config import ConfigError

__all__ = ["TeacherForcingTerm", "LOSS_WEIGHTS", "noised_context", "teacher_forced_loss"]

LOSS_WEIGHTS = ("bell", "uniform")


@dataclass
class TeacherForcingTerm:
    weight: float = 0.0  # the term's weight beside the generator's DMD loss (0 = off)
    sprite_weight: float = 0.0  # extra weight on sprite cells (as the ar-teacher stage's sprite_weight)
    context_noise: float = 0.0  # max sigma of the clean context frames (as the ar-teacher stage's)
    loss_weight: str = "bell"  # weight over noise levels: "bell" (logit-normal) or "uniform"
    switch_weight: float = 0.0  # extra weight on the frame where the event switches (as the ar-teacher stage's)

    def validate(self) -> None:
        if self.weight < 0 or self.sprite_weight < 0 or self.switch_weight < 0:
            raise ConfigError("teacher_forcing: weight, sprite_weight and switch_weight must be >= 0")
        if not 0.0 <= self.context_noise < 1.0:
            raise ConfigError(f"teacher_forcing.context_noise must be in [0, 1), got {self.context_noise}")
        if self.loss_weight not in LOSS_WEIGHTS:
            raise ConfigError(f"teacher_forcing.loss_weight must be one of {LOSS_WEIGHTS}, got {self.loss_weight!r}")


def noised_context(latents: Tensor, context_noise: float) -> tuple[Tensor, Tensor | None]:
    """Clean context frames with a little noise (sigma uniform in [0, context_noise] per frame), so a
    network learns to continue its own imperfect frames; (latents, None) when `context_noise` is 0."""
    if context_noise <= 0:
        return latents, None
    clean_sigma = context_noise * torch.rand(latents.shape[:2], device=latents.device)
    return flow.add_noise(latents, torch.randn_like(latents), clean_sigma), clean_sigma


def teacher_forced_loss(transformer: CausalTransformer, latents: Tensor, actions: Tensor, events: Tensor,
                        sigma_shift: float, term: TeacherForcingTerm, cell_weight: Tensor | None = None,
                        event_ids: Tensor | None = None) -> Tensor:
    """Flow-matching loss of `transformer` in the teacher-forcing layout on true `latents` `[B, F, ...]`
    under their `actions` `[B, F]` and event vectors `[B, F, E]`, each frame at its own noise level;
    `event_ids` `[B, F]` say where the event switches (needed with `term.switch_weight`)."""
    if term.switch_weight and event_ids is None:
        raise ValueError("teacher_forced_loss: switch_weight needs the clip's event_ids")
    sigma = sample_sigma(tuple(latents.shape[:2]), sigma_shift, latents.device)
    noise = torch.randn_like(latents)
    clean, clean_sigma = noised_context(latents, term.context_noise)
    velocity = transformer.forward_teacher_forcing(clean, flow.add_noise(latents, noise, sigma), sigma, actions,
                                                   events, clean_sigma=clean_sigma)
    frame_weight = losses.frame_weight(sigma, term.loss_weight == "bell", event_ids, term.switch_weight)
    return losses.flow_matching_loss(velocity, latents, noise, frame_weight, cell_weight)
