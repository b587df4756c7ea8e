"""Reward and termination model.

A small conv net over the latents of the last K frames, stacked on channels, plus the action
that led to the last frame, predicts reward logits over the classes (-1, 0, +1) and a
termination logit. The features are flattened rather than pooled so that *where* something
happens (under the player, in the centre) stays visible. At an episode's start, with fewer than
K frames, callers repeat the first frame.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from worldsim.model.config import RewardConfig

REWARD_VALUES = (-1.0, 0.0, 1.0)


def reward_to_class(rewards: Tensor) -> Tensor:
    """Float rewards → long class indices: negative → 0, zero → 1, positive → 2."""
    return (torch.sign(rewards) + 1).long()


def class_to_reward(classes: Tensor) -> Tensor:
    """Long class indices → float rewards in REWARD_VALUES."""
    return classes.float() - 1.0


class RewardModel(nn.Module):
    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        width = config.width
        self.features = nn.Sequential(
            nn.Conv2d(config.context_frames * config.latent_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
        )
        feature_dim = 2 * width * (config.latent_size // 4) ** 2
        hidden = 4 * width
        self.project = nn.Linear(feature_dim, hidden)
        self.action_embed = nn.Embedding(config.num_actions + 1, hidden)
        self.head = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                  nn.Linear(hidden, len(REWARD_VALUES) + 1))

    def forward(self, latents: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """latents ``[B, K, C, h, w]``, actions long ``[B]`` → (reward logits ``[B, 3]``,
        termination logit ``[B]``)."""
        config = self.config
        expected = (config.context_frames, config.latent_channels, config.latent_size,
                    config.latent_size)
        if latents.ndim != 5 or tuple(latents.shape[1:]) != expected:
            raise ValueError(f"latents must be [B, {', '.join(map(str, expected))}], "
                             f"got {tuple(latents.shape)}")
        if actions.shape != latents.shape[:1] or actions.dtype != torch.long:
            raise ValueError(f"actions must be long [B] = ({latents.shape[0]},), "
                             f"got {actions.dtype} {tuple(actions.shape)}")
        hidden = self.project(self.features(latents.flatten(1, 2))) + self.action_embed(actions)
        logits = self.head(hidden)
        return logits[:, :-1], logits[:, -1]


class NeverTerminates(nn.Module):
    """A reward model's rewards with every episode end removed: a world in steady state.

    Benchmarks and long-rollout tests use it so that a random-weights reward model, which may end
    most episodes at once, does not turn every step into a reset.
    """

    def __init__(self, reward_model: nn.Module) -> None:
        super().__init__()
        self.inner = reward_model

    def forward(self, latents: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        reward_logits, done_logit = self.inner(latents, actions)
        return reward_logits, torch.full_like(done_logit, -1.0)
