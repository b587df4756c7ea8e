"""The exploration policy: sticky actions, stretches of standing still, event switches, resets."""
from __future__ import annotations

import numpy as np
import pytest

from worldsim.data.policy import RANDOM_POLICY, ExplorationPolicy, PolicyConfig

TEXTS_BY_TYPE = [[0, 1, 2], [3, 4], [5], [6, 7, 8, 9]]


def run(config: PolicyConfig, steps: int, num_envs: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    policy = ExplorationPolicy(num_envs, 5, TEXTS_BY_TYPE, config, np.random.default_rng(seed))
    decided = [policy.step() for _ in range(steps)]
    return {name: np.stack([getattr(d, name) for d in decided])
            for name in ("actions", "events", "switched", "event_types", "truncate")}


def run_lengths(values: np.ndarray) -> list[int]:
    """Lengths of the runs of equal values in a 1-D array."""
    changes = np.flatnonzero(np.diff(values) != 0) + 1
    return np.diff(np.concatenate([[0], changes, [len(values)]])).tolist()


def test_same_seed_same_decisions_and_other_seed_differs():
    config = PolicyConfig()
    first, again, other = run(config, 300), run(config, 300), run(config, 300, seed=1)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["actions"], other["actions"])


def test_actions_are_held_and_standing_still_comes_in_stretches():
    config = PolicyConfig(hold_frames=(4, 6), still_prob=0.5, still_frames=(20, 25),
                          episode_frames=None)
    actions = run(config, 2000, num_envs=4)["actions"]
    assert set(np.unique(actions)) == set(range(5))
    for env in range(4):
        inner_runs = run_lengths(actions[:, env])[1:-1]  # first and last may be cut short
        assert min(inner_runs) >= 4  # a drawn action lasts at least hold_frames[0]
    noop_share = (actions == config.noop_action).mean()
    assert 0.6 < noop_share < 0.95  # long still stretches dominate with still_prob=0.5


def test_random_policy_changes_action_freely_and_uniformly():
    actions = run(RANDOM_POLICY, 4000, num_envs=2)["actions"]
    shares = np.bincount(actions.ravel(), minlength=5) / actions.size
    np.testing.assert_allclose(shares, 0.2, atol=0.03)
    assert (np.diff(actions, axis=0) != 0).mean() > 0.7


def test_events_switch_every_30_to_300_frames_to_a_new_type_and_a_training_text():
    decided = run(PolicyConfig(episode_frames=None, start_event_prob=0.0), 3000, num_envs=6)
    for env in range(6):
        switch_frames = np.flatnonzero(decided["switched"][:, env])
        assert 30 <= switch_frames[0] <= 300
        gaps = np.diff(switch_frames)
        assert gaps.min() >= 30 and gaps.max() <= 300
        types = decided["event_types"][switch_frames, env]
        assert (np.diff(types) != 0).all()  # never "switches" to the event already in force
        for frame, event_type in zip(switch_frames, types):
            assert decided["events"][frame, env] in TEXTS_BY_TYPE[event_type]
        assert (decided["events"][: switch_frames[0], env] == -1).all()
    assert len(np.unique(decided["events"])) == 11  # every text and "no event" get used


def test_episodes_are_cut_and_start_without_an_event():
    config = PolicyConfig(episode_frames=(50, 80), event_every=(30, 30), start_event_prob=0.0)
    policy = ExplorationPolicy(3, 5, TEXTS_BY_TYPE, config, np.random.default_rng(0))
    frames_in_episode = np.zeros(3, dtype=int)
    lengths = []
    for _ in range(1000):
        decided = policy.step()
        frames_in_episode += 1
        assert ((frames_in_episode > 30) == (decided.events >= 0)).all()
        if decided.truncate.any():
            lengths += frames_in_episode[decided.truncate].tolist()
            frames_in_episode[decided.truncate] = 0
            policy.start_episodes(decided.truncate)
    assert len(lengths) >= 3 * 1000 // 80 - 3 and 50 <= min(lengths) and max(lengths) <= 80


def test_some_episodes_start_with_an_event_in_force():
    always = run(PolicyConfig(start_event_prob=1.0), 1, num_envs=50)
    assert always["switched"][0].all() and (always["events"][0] >= 0).all()
    half = run(PolicyConfig(start_event_prob=0.5), 1, num_envs=400)
    assert 0.4 < half["switched"][0].mean() < 0.6
    assert ((half["events"][0] >= 0) == half["switched"][0]).all()


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="hold_frames"):
        PolicyConfig(hold_frames=(5, 2))
    with pytest.raises(ValueError, match="still_prob"):
        PolicyConfig(still_prob=1.5)
    with pytest.raises(ValueError, match="noop_action"):
        ExplorationPolicy(1, 3, [], PolicyConfig(noop_action=3), np.random.default_rng())
    assert PolicyConfig.from_dict(PolicyConfig().to_dict()) == PolicyConfig()
    with pytest.raises(ValueError, match="unknown PolicyConfig key"):
        PolicyConfig.from_dict({"speed": 3})
