"""The exploration policy: sticky actions, stretches of standing still, event switches, resets."""
from __future__ import annotations

from dataclasses import replace

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


def run_with_mask(config: PolicyConfig, blocked: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    """Actions [steps, B] of a policy that is told `blocked` [B, 5] at every step."""
    policy = ExplorationPolicy(len(blocked), 5, [], config, np.random.default_rng(seed))
    return np.stack([policy.step(blocked).actions for _ in range(steps)])


def test_blocked_moves_are_redrawn_unless_kept():
    blocked = np.zeros((64, 5), dtype=bool)
    blocked[:, 1] = True  # "up" runs into a wall everywhere
    blocked[:32, 3] = True  # and "left" in half the envs
    moves_only = PolicyConfig(hold_frames=(3, 6), still_prob=0.0, episode_frames=None,
                              event_every=None, noop_in_moves=False)
    never = run_with_mask(replace(moves_only, keep_blocked_prob=0.0), blocked, 400)
    assert not (never == 1).any() and not (never[:, :32] == 3).any() and not (never == 0).any()
    assert (never[:, 32:] == 3).any()  # open elsewhere
    shares = [(run_with_mask(replace(moves_only, keep_blocked_prob=keep), blocked, 400) == 1).mean()
              for keep in (0.25, 0.5, 1.0)]
    assert 0.0 < shares[0] < shares[1] < shares[2]
    assert abs(shares[2] - 0.25) < 0.03  # kept always: as often as without a mask


def test_a_walled_in_env_keeps_pushing_and_noop_is_not_blocked():
    blocked = np.ones((4, 5), dtype=bool)  # every column, noop included: noop's is ignored
    config = PolicyConfig(still_prob=0.3, keep_blocked_prob=0.0, event_every=None, noop_in_moves=False)
    actions = run_with_mask(config, blocked, 300)
    assert (actions == 0).mean() > 0.3 and set(np.unique(actions)) == set(range(5))


def test_noop_only_in_still_stretches_when_moves_exclude_it():
    config = PolicyConfig(still_prob=0.0, noop_in_moves=False, event_every=None)
    actions = run(config, 1000, num_envs=4)["actions"]
    assert not (actions == 0).any() and set(np.unique(actions)) == {1, 2, 3, 4}


def test_a_bad_blocked_mask_is_refused():
    policy = ExplorationPolicy(2, 5, [], PolicyConfig(), np.random.default_rng(0))
    for bad in (np.zeros((2, 4), bool), np.zeros((2, 5), int), np.zeros((3, 5), bool)):
        with pytest.raises(ValueError, match=r"blocked must be bool \[2, 5\]"):
            policy.step(bad)


GROUPS = [0, 0, 0, 1, 1, 2]  # e.g. time (day, dusk, night), coins (normal, shower), lava (erupts)
GROUPED_TEXTS = [[0], [1], [2], [3], [4, 5], [6]]


def test_grouped_switches_always_change_the_world_and_cover_every_direction():
    config = PolicyConfig(event_every=(5, 10), start_event_prob=0.5, episode_frames=(40, 80))
    policy = ExplorationPolicy(16, 5, GROUPED_TEXTS, config, np.random.default_rng(1),
                               event_groups=GROUPS, base_types=[0, 3])
    in_force = np.tile([0, 3, -1], (16, 1))
    switched_to, groups_picked = [], []
    for _ in range(3000):
        decided = policy.step()
        for env in np.flatnonzero(decided.switched):
            new = decided.event_types[env]
            assert in_force[env, GROUPS[new]] != new  # a switch always changes something
            assert decided.events[env] in GROUPED_TEXTS[new]
            in_force[env, GROUPS[new]] = new
            switched_to.append(new)
            groups_picked.append(GROUPS[new])
        in_force[decided.truncate] = [0, 3, -1]
        policy.start_episodes(decided.truncate)
    counts = np.bincount(switched_to, minlength=6)
    assert (counts > 0).all()  # both directions of every toggle, the base types included
    # a group is picked uniformly among those with something new (lava, once erupted, has none)
    group_shares = np.bincount(groups_picked) / len(groups_picked)
    assert group_shares[0] > 0.3 and group_shares[1] > 0.3 and 0.05 < group_shares[2] < 0.3


def test_bad_event_groups_are_refused():
    with pytest.raises(ValueError, match="event_groups"):
        ExplorationPolicy(1, 5, GROUPED_TEXTS, PolicyConfig(), np.random.default_rng(0),
                          event_groups=[0, 1])
    with pytest.raises(ValueError, match="base_types"):
        ExplorationPolicy(1, 5, GROUPED_TEXTS, PolicyConfig(), np.random.default_rng(0),
                          event_groups=GROUPS, base_types=[0, 1])
