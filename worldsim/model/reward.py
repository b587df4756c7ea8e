"""Reward and termination model.

It reads the latents of the last K frames, stacked on channels, and the action taken from the
last of them, and predicts reward logits over the classes (-1, 0, +1) and a termination logit.
At an episode's start, with fewer than K frames, callers repeat the first frame. Two heads:

- "cells" (the default): the action enters as one input plane per action, full-resolution
  convolutions score every latent cell for "+1 here", "-1 here" and "the episode ends here", and
  each score is pooled over the cells by log-sum-exp (a soft "somewhere"), plus a learned prior per
  cell. What pays or kills is local (a coin, lava or an enemy next to the player, in the move's
  direction), so one shared rule learnt at every cell generalises from a few hundred episode ends,
  which the flattened map learnt by heart (docs/eval/ppo/README.md, "The reward model's head");
- "flatten" (worlds saved before the cells head): strided convolutions, the features flattened so
  that *where* something happens stays visible, the action embedded and added before an MLP.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from worldsim.model.config import RewardConfig

REWARD_VALUES = (-1.0, 0.0, 1.0)
# The cells head's per-cell scores: reward class -1, reward class +1, termination.
_CELL_SCORES = 3
# The odds an untrained cells head gives each rare outcome (a reward of -1 or +1, an episode end).
_RARE_OUTCOME_PRIOR = 0.01


def reward_to_class(rewards: Tensor) -> Tensor:
    """Float rewards → long class indices: negative → 0, zero → 1, positive → 2."""
    return (torch.sign(rewards) + 1).long()


def class_to_reward(classes: Tensor) -> Tensor:
    """Long class indices → float rewards in REWARD_VALUES."""
    return classes.float() - 1.0


def start_window(latents: Tensor, context_frames: int) -> Tensor:
    """An episode's first latents ``[B, C, h, w]`` → its reward window ``[B, K, C, h, w]``: the first
    frame repeated K times (the model reads K frames before there are K)."""
    return latents[:, None].repeat(1, context_frames, 1, 1, 1)


def advance_window(window: Tensor, latents: Tensor) -> Tensor:
    """The reward window after a step: the oldest frame out, the new latents ``[B, C, h, w]`` in."""
    return torch.cat((window[:, 1:], latents[:, None]), dim=1)


def predict_outcomes(reward_model: nn.Module, window: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """The outcome of each step as a reward model (or a wrapper of one) reads it: the reward (-1, 0
    or +1, the most likely class) ``[B]`` and whether the episode ends (termination above even
    odds) ``[B]`` bool."""
    reward_logits, done_logit = reward_model(window, actions)
    return class_to_reward(reward_logits.argmax(dim=-1)), done_logit > 0


def action_planes(actions: Tensor, num_planes: int, like: Tensor) -> Tensor:
    """long ``[B]`` → one-hot planes ``[B, num_planes, h, w]`` with the dtype, device and size of `like`."""
    one_hot = nn.functional.one_hot(actions, num_planes).to(like.dtype)
    return one_hot[:, :, None, None].expand(-1, -1, *like.shape[-2:])


def pool_cell_scores(cell_scores: Tensor) -> tuple[Tensor, Tensor]:
    """Per-cell scores ``[B, 3, h, w]`` (reward -1, reward +1, termination) → (reward logits
    ``[B, 3]`` with the "nothing" class at 0, termination logit ``[B]``), each score pooled over
    the cells by log-sum-exp."""
    pooled = cell_scores.flatten(2).logsumexp(dim=2)
    nothing = torch.zeros_like(pooled[:, :1])
    return torch.cat((pooled[:, :1], nothing, pooled[:, 1:2]), dim=1), pooled[:, 2]


class RewardModel(nn.Module):
    def __init__(self, config: RewardConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        if config.head == "cells":
            self._build_cells_head(config)
        else:
            self._build_flatten_head(config)

    @property
    def output_bias(self) -> Tensor:
        """The bias of (reward logits, termination logit) ``[4]``, which the reward stage's prior
        correction moves."""
        return self.pooled_bias if self.config.head == "cells" else self.head[-1].bias

    def _build_cells_head(self, config: RewardConfig) -> None:
        width, size = config.width, config.latent_size
        inputs = config.context_frames * config.latent_channels + config.num_actions + 1
        self.features = nn.Sequential(
            nn.Conv2d(inputs, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, _CELL_SCORES, 1),
        )
        # Before training every outcome (+1, -1, an end) has probability about 1 %: the cells start
        # equal, summing to 1 under log-sum-exp, and the pooled bias holds the rare outcomes' odds.
        # An untrained world then neither pays nor ends at every step (at 0 per cell each pooled
        # score would start at log(h*w), every outcome at once).
        nn.init.zeros_(self.features[-1].weight)
        nn.init.zeros_(self.features[-1].bias)
        self.cell_prior = nn.Parameter(torch.full((_CELL_SCORES, size, size), -math.log(size * size)))
        rare = math.log(_RARE_OUTCOME_PRIOR / (1 - _RARE_OUTCOME_PRIOR))
        self.pooled_bias = nn.Parameter(torch.tensor([rare, 0.0, rare, rare]))

    def _build_flatten_head(self, config: RewardConfig) -> None:
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
        stacked = latents.flatten(1, 2)
        if config.head == "cells":
            planes = action_planes(actions, config.num_actions + 1, stacked)
            reward_logits, done_logit = pool_cell_scores(
                self.features(torch.cat((stacked, planes), dim=1)) + self.cell_prior)
            return reward_logits + self.pooled_bias[:-1], done_logit + self.pooled_bias[-1]
        logits = self.head(self.project(self.features(stacked)) + self.action_embed(actions))
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
