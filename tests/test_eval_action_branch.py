"""The action-branch test, the collision probe and their true contexts, on tiny random worlds."""
import dataclasses

import numpy as np
import pytest
import torch

from worldsim.envs.explorer import NUM_ACTIONS, events
from worldsim.eval.action_branch import action_branch_test, collision_probe, held_collision, move_spread
from worldsim.eval.branch_contexts import MOVES, NOOP, sample_branch_contexts
from worldsim.eval.next_frame import generate_held_frames, generate_next_frames
from worldsim.eval.probes import Probes
from worldsim.model import WorldConfig
from worldsim.world import WorldModel


@pytest.fixture(scope="module")
def contexts():
    return sample_branch_contexts(8, context_frames=2, size=64, seed=3)


@pytest.fixture(scope="module")
def probes():
    return Probes.load()


def _world(action_sensitive: bool) -> WorldModel:
    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=events.training_texts(), seed=0)
    if action_sensitive:
        # A fresh world predicts zero velocity (AdaLN-zero), so its frames ignore the action;
        # random output layers let the action embedding reach the frames.
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name, parameter in world.transformer.named_parameters():
                if "modulation" in name or "final" in name or "head" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return world


def test_contexts_hold_the_truths_outcome_of_every_action(contexts):
    n = contexts.num_contexts
    assert contexts.frames.shape == (n, 2, 64, 64, 3) and contexts.next_frames.shape == (n, NUM_ACTIONS, 64, 64, 3)
    rows = np.arange(n)
    assert contexts.moved[rows, contexts.true_action].all()  # the true continuation scrolls
    assert (contexts.true_action != contexts.wrong_action).all()
    assert set(contexts.wrong_action.tolist()) <= set(MOVES)
    assert not contexts.moved[:, NOOP].any()
    # About half of the contexts have a wall next to the player; a blocked move does not scroll.
    walled = contexts.blocked.any(axis=1)
    assert walled.sum() == 4
    n_blocked, a_blocked = np.nonzero(contexts.blocked)
    scrolled = np.abs(contexts.next_frames[n_blocked, a_blocked].astype(int) - contexts.frames[n_blocked, -1]).mean()
    moved = np.abs(contexts.next_frames[rows, contexts.true_action].astype(int) - contexts.frames[:, -1]).mean()
    assert scrolled < moved
    again = sample_branch_contexts(8, context_frames=2, size=64, seed=3)
    assert np.array_equal(again.frames, contexts.frames) and again.texts == contexts.texts


def test_context_selection_and_bad_sizes(contexts):
    subset = contexts.select(np.array([0, 2]))
    assert subset.num_contexts == 2 and subset.texts == [contexts.texts[0], contexts.texts[2]]
    with pytest.raises(ValueError):
        sample_branch_contexts(0)
    with pytest.raises(ValueError, match="blocked_share"):
        sample_branch_contexts(4, blocked_share=1.5)
    with pytest.raises(ValueError, match="frames must be"):
        dataclasses.replace(contexts, frames=contexts.frames[0])
    with pytest.raises(ValueError, match="true_action"):
        dataclasses.replace(contexts, true_action=contexts.true_action[:2])


def test_branches_share_noise_per_context_and_rows_do_not_interact(contexts):
    world = _world(action_sensitive=True)
    frames, actions, texts = contexts.frames, contexts.actions, contexts.texts
    together = generate_next_frames(world, frames, actions, texts, np.array([0, 1, 1]), np.array([1, 2, 3]), seed=5)
    alone = generate_next_frames(world, frames, actions, texts, np.array([1]), np.array([2]), seed=5)
    assert np.array_equal(together[1], alone[0])
    other_seed = generate_next_frames(world, frames, actions, texts, np.array([1]), np.array([2]), seed=6)
    assert not np.array_equal(other_seed[0], alone[0])
    with pytest.raises(ValueError, match="actions must be in"):
        generate_next_frames(world, frames, actions, texts, np.array([0]), np.array([NUM_ACTIONS]), seed=0)
    with pytest.raises(ValueError, match="rows must index"):
        generate_next_frames(world, frames, actions, texts, np.array([99]), np.array([0]), seed=0)
    with pytest.raises(ValueError, match="context actions"):
        generate_next_frames(world, frames, actions[:, :0], texts, np.array([0]), np.array([0]), seed=0)


def test_a_world_that_ignores_actions_has_no_move_spread(contexts, probes):
    found = action_branch_test(_world(action_sensitive=False), contexts, seed=0, probes=probes)
    assert found["move_spread_mse"] == 0.0 and found["seed_spread_mse"] > 1.0
    assert found["wrong_minus_true_psnr_db"] == 0.0
    assert found["truth_move_spread_mse"] > 100.0
    assert found["idm_moved_pairs"] >= contexts.num_contexts
    assert found["idm_blocked_pairs"] == contexts.blocked.sum()


def test_an_action_sensitive_world_separates_its_moves_and_collision_probe_agrees(contexts, probes):
    world = _world(action_sensitive=True)
    found = action_branch_test(world, contexts, seed=0, probes=probes)
    assert found["move_spread_mse"] > 0.0
    assert found["move_to_seed_spread"] == pytest.approx(found["move_spread_mse"] / found["seed_spread_mse"])
    assert np.isfinite(found["wrong_minus_true_psnr_db"]) and found["wrong_minus_true_psnr_db"] != 0.0
    without_probes = action_branch_test(world, contexts, seed=0)
    assert "idm_moved_accuracy" not in without_probes
    assert without_probes["move_spread_mse"] == found["move_spread_mse"]
    # The probe generates only the blocked branches with the same per-context noise.
    assert collision_probe(world, contexts, probes, seed=0) == pytest.approx(found["idm_blocked_accuracy"])


def test_held_frames_follow_their_own_frames_and_start_with_the_next_frame(contexts):
    world = _world(action_sensitive=True)
    frames, actions, texts = contexts.frames, contexts.actions, contexts.texts
    rows, moves = np.array([0, 1, 1]), np.array([1, 2, 4])
    held = generate_held_frames(world, frames, actions, texts, rows, moves, seed=5, num_frames=3)
    assert held.shape == (3, 3, 64, 64, 3) and held.dtype == np.uint8
    # Its first frame is the one-frame branch (same noise); holding longer changes no earlier frame.
    np.testing.assert_array_equal(held[:, 0], generate_next_frames(world, frames, actions, texts, rows, moves, seed=5))
    shorter = generate_held_frames(world, frames, actions, texts, rows, moves, seed=5, num_frames=2)
    np.testing.assert_array_equal(held[:, :2], shorter)
    assert not np.array_equal(held[:, 1], held[:, 2])  # later frames are generated, not copied
    with pytest.raises(ValueError, match="num_frames"):
        generate_held_frames(world, frames, actions, texts, rows, moves, seed=5, num_frames=0)


def test_held_collision_reads_every_step_of_every_push(contexts, probes):
    world = _world(action_sensitive=True)
    read = held_collision(world, contexts, probes, num_frames=3, seed=0)
    assert read.shape == (contexts.blocked.sum(), 3) and read.dtype == bool
    # Step 1 of a push is the one-frame collision test's pair.
    assert read[:, 0].mean() == pytest.approx(collision_probe(world, contexts, probes, seed=0))
    open_only = contexts.select(~contexts.blocked.any(axis=1))
    assert held_collision(world, open_only, probes, num_frames=3).shape == (0, 3)


def test_collision_probe_without_walls_is_nan(contexts, probes):
    open_only = contexts.select(~contexts.blocked.any(axis=1))
    assert np.isnan(collision_probe(_world(action_sensitive=False), open_only, probes))


def test_move_spread_is_zero_for_equal_moves_and_positive_otherwise():
    frames = np.zeros((2, NUM_ACTIONS, 4, 4, 3), dtype=np.uint8)
    assert move_spread(frames).tolist() == [0.0, 0.0]
    frames[1, 1] = 10
    assert move_spread(frames)[1] == pytest.approx(3 * 100 / 6)  # 3 of the 6 move pairs differ by 10


def test_branches_use_the_event_encoders_current_weights_not_a_stale_cache(contexts):
    world = _world(action_sensitive=True)
    rows = np.flatnonzero([bool(text) for text in contexts.texts])[:2]
    assert len(rows)
    actions = np.ones(len(rows), dtype=np.int64)
    before = generate_next_frames(world, contexts.frames, contexts.actions, contexts.texts, rows, actions, seed=0)
    world.encode_events(contexts.texts)  # fills the world's cache with the old vectors
    with torch.no_grad():
        for parameter in world.event_encoder.parameters():
            parameter.add_(0.5)
    after = generate_next_frames(world, contexts.frames, contexts.actions, contexts.texts, rows, actions, seed=0)
    world.event_cache.clear()
    fresh = generate_next_frames(world, contexts.frames, contexts.actions, contexts.texts, rows, actions, seed=0)
    assert np.array_equal(after, fresh)
    assert not np.array_equal(before, after)
