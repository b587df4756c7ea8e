"""Reward/termination model: shapes, gradients, class mapping."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from worldsim.model import RewardModel, WorldConfig, class_to_reward, reward_to_class
from worldsim.model.reward import action_planes, advance_window, pool_cell_scores, predict_outcomes, start_window


@pytest.mark.parametrize("head", ["cells", "flatten"])
def test_shapes_gradients_and_action_dependence(head):
    """After one update (the cells head starts with its output layer at zero, predicting nothing),
    every parameter learns and an env's outcome depends on its own action only."""
    config = dataclasses.replace(WorldConfig.preset("tiny").reward, head=head)
    torch.manual_seed(0)
    model = RewardModel(config)
    latents = torch.randn(3, config.context_frames, config.latent_channels, config.latent_size,
                          config.latent_size)
    actions = torch.tensor([0, 2, config.num_actions])  # NO_ACTION is a valid input

    def loss_of(reward_logits, done_logit):
        loss = torch.nn.functional.cross_entropy(reward_logits, torch.tensor([0, 1, 2]))
        return loss + torch.nn.functional.binary_cross_entropy_with_logits(done_logit, torch.ones(3))

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_of(*model(latents, actions)).backward()
    optimizer.step()
    optimizer.zero_grad()
    reward_logits, done_logit = model(latents, actions)
    assert reward_logits.shape == (3, 3) and done_logit.shape == (3,)
    loss_of(reward_logits, done_logit).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    other_logits, _ = model(latents, torch.tensor([1, 2, config.num_actions]))
    assert not torch.equal(other_logits[0], reward_logits[0])
    assert torch.allclose(other_logits[1:], reward_logits[1:])


def test_a_fresh_cells_head_gives_each_rare_outcome_one_percent():
    """An untrained world neither pays nor ends an episode at every step."""
    config = WorldConfig.preset("tiny").reward
    model = RewardModel(config)
    latents = torch.randn(2, config.context_frames, config.latent_channels, config.latent_size, config.latent_size)
    reward_logits, done_logit = model(latents, torch.tensor([1, 2]))
    rare = torch.log(torch.tensor(0.01 / 0.99))
    torch.testing.assert_close(reward_logits, torch.stack([rare, torch.tensor(0.0), rare]).expand(2, 3),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(done_logit, rare.expand(2), atol=1e-5, rtol=0)
    assert (reward_logits.argmax(-1) == 1).all() and (done_logit < 0).all()


def test_action_planes_are_one_hot_maps_of_the_input_size():
    like = torch.zeros(2, 7, 3, 4, dtype=torch.float64)
    planes = action_planes(torch.tensor([0, 5]), 6, like)
    assert planes.shape == (2, 6, 3, 4) and planes.dtype == torch.float64
    assert planes.sum(dim=1).eq(1).all()
    assert planes[0, 0].eq(1).all() and planes[1, 5].eq(1).all()


def test_pooled_cell_scores_are_soft_maxima_with_nothing_at_zero():
    scores = torch.full((1, 3, 2, 2), -30.0)
    scores[0, 1, 1, 0] = 2.0  # "+1 here" at one cell
    scores[0, 2] = torch.log(torch.tensor([[0.5, 0.25], [0.125, 0.125]]))  # termination spread out
    reward_logits, done_logit = pool_cell_scores(scores)
    assert reward_logits[0, 1] == 0 and reward_logits[0, 0] < -25
    torch.testing.assert_close(reward_logits[0, 2], torch.tensor(2.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(done_logit[0], torch.tensor(0.0), atol=1e-6, rtol=0)  # log(sum) = log 1


@pytest.mark.parametrize("head", ["cells", "flatten"])
def test_both_heads_carry_the_prior_bias(head):
    config = dataclasses.replace(WorldConfig.preset("tiny").reward, head=head)
    torch.manual_seed(0)
    model = RewardModel(config)
    latents = torch.randn(2, config.context_frames, config.latent_channels, config.latent_size, config.latent_size)
    actions = torch.tensor([0, 3])
    reward_logits, done_logit = model(latents, actions)
    with torch.no_grad():
        model.output_bias[3] += 1.5
        model.output_bias[:3] += torch.tensor([0.5, 0.0, -0.5])
    shifted_rewards, shifted_done = model(latents, actions)
    torch.testing.assert_close(shifted_done, done_logit + 1.5)
    torch.testing.assert_close(shifted_rewards, reward_logits + torch.tensor([0.5, 0.0, -0.5]))


def test_the_cells_head_applies_one_rule_at_every_cell():
    """Shifting the frames shifts every cell's score with them (away from the border), so an outcome
    learnt at one place is predicted at another: only the learned per-cell prior tells places apart."""
    config = WorldConfig.preset("tiny").reward
    torch.manual_seed(0)
    model = RewardModel(config)
    stacked = torch.zeros(1, config.context_frames * config.latent_channels, 12, 12)
    stacked[..., 4, 4] = 3.0
    planes = action_planes(torch.tensor([2]), config.num_actions + 1, stacked)
    scores = model.features(torch.cat((stacked, planes), 1))
    moved = model.features(torch.cat((stacked.roll(2, dims=-1), planes), 1))
    # three 3x3 convolutions: cells 3 or more from the border do not see the zero padding
    torch.testing.assert_close(moved[..., 3:-3, 5:-3], scores[..., 3:-3, 3:-5])


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


def test_the_reward_window_starts_with_the_first_frame_and_slides_one_frame_a_step():
    first, second = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    window = start_window(first, 4)
    assert window.shape == (2, 4, 3, 4, 4) and window.eq(0).all()
    window = advance_window(window, second)
    assert window.shape == (2, 4, 3, 4, 4) and window[:, :3].eq(0).all() and window[:, 3].eq(1).all()


def test_predict_reads_the_most_likely_reward_and_an_end_above_even_odds():
    config = WorldConfig.preset("tiny").reward
    model = RewardModel(config)
    latents = torch.randn(2, config.context_frames, config.latent_channels, config.latent_size, config.latent_size)
    with torch.no_grad():
        model.output_bias.copy_(torch.tensor([0.0, 0.0, 9.0, 0.0]))  # +1 the likeliest; the end at even odds
    rewards, ended = predict_outcomes(model, latents, torch.tensor([1, 2]))
    assert rewards.tolist() == [1.0, 1.0] and rewards.dtype == torch.float32
    assert ended.dtype == torch.bool and not ended.any()
