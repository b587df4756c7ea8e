"""Reward/termination model: shapes, gradients, class mapping."""
from __future__ import annotations

import pytest
import torch

from worldsim.model import RewardModel, WorldConfig, class_to_reward, reward_to_class


def test_shapes_gradients_and_action_dependence():
    config = WorldConfig.preset("tiny").reward
    torch.manual_seed(0)
    model = RewardModel(config)
    latents = torch.randn(3, config.context_frames, config.latent_channels, config.latent_size,
                          config.latent_size)
    actions = torch.tensor([0, 2, config.num_actions])  # NO_ACTION is a valid input
    reward_logits, done_logit = model(latents, actions)
    assert reward_logits.shape == (3, 3) and done_logit.shape == (3,)
    loss = torch.nn.functional.cross_entropy(reward_logits, torch.tensor([0, 1, 2]))
    loss = loss + torch.nn.functional.binary_cross_entropy_with_logits(done_logit, torch.ones(3))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    other_logits, _ = model(latents, torch.tensor([1, 2, config.num_actions]))
    assert not torch.allclose(other_logits[0], reward_logits[0])
    assert torch.allclose(other_logits[1:], reward_logits[1:])


def test_reward_classes_round_trip():
    rewards = torch.tensor([-1.0, 0.0, 1.0, 0.0])
    assert reward_to_class(rewards).tolist() == [0, 1, 2, 1]
    assert torch.equal(class_to_reward(reward_to_class(rewards)), rewards)


def test_rejects_bad_input():
    config = WorldConfig.preset("tiny").reward
    model = RewardModel(config)
    latents = torch.randn(2, config.context_frames, config.latent_channels, config.latent_size,
                          config.latent_size)
    with pytest.raises(ValueError, match="latents"):
        model(latents[:, 1:], torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="actions"):
        model(latents, torch.zeros(3, dtype=torch.long))
