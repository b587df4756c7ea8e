"""Recording Gymnasium envs with image observations into datasets."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from worldsim.data import Dataset
from worldsim.data.cli import add_parser  # noqa: F401 (the CLI module must import cleanly)
from worldsim.data.record import RecordConfig, record

TOY_ID = "worldsim-test/Counter-v0"


class CounterEnv(gym.Env):
    """Image = the step counter in every pixel; action 2 ends the episode with reward -1,
    action 1 gives reward +1; episodes are truncated after 9 steps."""

    observation_space = gym.spaces.Box(0, 255, (4, 3, 3), np.uint8)
    action_space = gym.spaces.Discrete(3, start=10)  # unusual start: stored actions are 0..2

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = int(self.np_random.integers(100))
        return self._frame(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        self.count += 1
        terminated = action == 12
        reward = -1.0 if terminated else float(action == 11)
        return self._frame(), reward, terminated, self.count % 9 == 0, {}

    def _frame(self):
        return np.full((4, 3, 3), self.count % 256, dtype=np.uint8)


@pytest.fixture(scope="module", autouse=True)
def counter_env():
    gym.register(TOY_ID, entry_point=CounterEnv)
    yield
    del gym.registry[TOY_ID]


@pytest.mark.parametrize("policy", ["sticky", "random"])
def test_recording_keeps_frames_actions_rewards_and_episode_ends_aligned(tmp_path, policy):
    dataset = record(tmp_path / "ds", RecordConfig(TOY_ID, frames=300, seed=1, policy=policy,
                                                   shard_frames=64), progress=False)
    assert len(dataset) == 300 and dataset.num_shards == 5 and dataset.complete
    assert dataset.world == TOY_ID and dataset.num_actions == 3 and dataset.event_texts == []
    shards = list(dataset.iter_shards())
    frames = np.concatenate([s.frames for s in shards])[:, 0, 0, 0].astype(int)
    actions, rewards, terminated, episode = (
        np.concatenate([getattr(s, name) for s in shards])
        for name in ("actions", "rewards", "terminated", "episode"))
    assert set(np.unique(actions)) == {0, 1, 2}
    np.testing.assert_array_equal(rewards, np.where(actions == 2, -1.0, (actions == 1) * 1.0))
    np.testing.assert_array_equal(terminated, actions == 2)
    same_episode = episode[1:] == episode[:-1]
    # inside an episode the counter advances by one per step; a new episode starts after a reset
    np.testing.assert_array_equal(((frames[1:] - frames[:-1]) % 256 == 1)[same_episode], True)
    assert not same_episode[terminated[:-1]].any()
    truncated = ~same_episode & ~terminated[:-1]
    assert truncated.any() and ((frames[:-1][truncated] + 1) % 9 == 0).all()
    assert np.all(np.concatenate([s.events for s in shards]) == -1)


def test_recording_is_reproducible_from_the_seed(tmp_path):
    first = record(tmp_path / "a", RecordConfig(TOY_ID, 50, seed=3), progress=False)
    second = record(tmp_path / "b", RecordConfig(TOY_ID, 50, seed=3), progress=False)
    assert first.manifest["shards"][0]["sha256"] == second.manifest["shards"][0]["sha256"]


def test_envs_without_image_observations_are_refused(tmp_path):
    with pytest.raises(ValueError, match="CartPole-v1: needs uint8 \\[H,W,3\\] Box observations"):
        record(tmp_path / "ds", RecordConfig("CartPole-v1", 10), progress=False)
    assert not (tmp_path / "ds").exists()


def test_records_atari_pong(tmp_path):
    pytest.importorskip("ale_py")
    dataset = record(tmp_path / "pong", RecordConfig("ALE/Pong-v5", frames=40), progress=False)
    shard = Dataset(tmp_path / "pong", verify=True).load_shard(0)
    assert dataset.world == "ALE/Pong-v5" and dataset.num_actions == 6
    assert shard.frames.shape == (40, 210, 160, 3) and shard.frames.std() > 0
