"""Record any Gymnasium env with image observations and discrete actions into a dataset."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from worldsim.data.policy import RANDOM_POLICY, ExplorationPolicy, PolicyConfig
from worldsim.data.reader import Dataset
from worldsim.data.writer import DatasetWriter

# Sticky recording: actions held for a few steps, short pauses, no events, the env's own episodes.
STICKY_POLICY = PolicyConfig(hold_frames=(1, 12), still_prob=0.1, still_frames=(4, 30),
                             event_every=None, start_event_prob=0.0, episode_frames=None)
POLICIES = {"sticky": STICKY_POLICY, "random": RANDOM_POLICY}


@dataclass(frozen=True)
class RecordConfig:
    env_id: str
    frames: int
    seed: int = 0
    policy: str = "sticky"  # a key of POLICIES
    shard_frames: int | None = None  # None: about 64 MiB of raw frames per shard

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose from {sorted(POLICIES)}")


def make_image_env(env_id: str) -> gym.Env:
    """`gym.make(env_id)` after checking it has uint8 [H,W,3] observations and Discrete actions."""
    if env_id.startswith("ALE/"):
        import ale_py  # registers the Atari envs; optional dependency (extra "atari")

        gym.register_envs(ale_py)
    env = gym.make(env_id)
    obs_space, action_space = env.observation_space, env.action_space
    is_image = (isinstance(obs_space, gym.spaces.Box) and obs_space.dtype == np.uint8
                and len(obs_space.shape) == 3 and obs_space.shape[2] == 3)
    if not is_image or not isinstance(action_space, gym.spaces.Discrete):
        env.close()
        raise ValueError(
            f"{env_id}: needs uint8 [H,W,3] Box observations and Discrete actions, got "
            f"observation_space={obs_space}, action_space={action_space}"
        )
    return env


def record(out: str | Path, config: RecordConfig, progress: bool = True) -> Dataset:
    """Play `config.env_id` with the chosen policy for `config.frames` frames into folder `out`."""
    env = make_image_env(config.env_id)
    num_actions = int(env.action_space.n)
    policy = ExplorationPolicy(1, num_actions, [], POLICIES[config.policy],
                               np.random.default_rng(config.seed))
    generator = {"kind": "record", "env": config.env_id, "seed": config.seed,
                 "policy": config.policy, "frames": config.frames}
    try:
        writer = DatasetWriter(out, world=config.env_id, frame_shape=env.observation_space.shape,
                               num_actions=num_actions, shard_frames=config.shard_frames,
                               generator=generator)
        with writer, tqdm(total=config.frames, unit="frame", disable=not progress) as bar:
            _play(env, policy, writer, config, bar)
    finally:
        env.close()
    return Dataset(out)


def _play(env: gym.Env, policy: ExplorationPolicy, writer: DatasetWriter, config: RecordConfig,
          bar: tqdm) -> None:
    first_action = int(env.action_space.start)  # Discrete spaces may start anywhere
    frame, _ = env.reset(seed=config.seed)
    for _ in range(config.frames):
        action = int(policy.step().actions[0])
        next_frame, reward, terminated, truncated, _ = env.step(first_action + action)
        writer.add(frame, action, float(reward), bool(terminated))
        if terminated or truncated:
            writer.end_episode()  # the frame after a reset starts a new episode
            next_frame, _ = env.reset()
            policy.start_episodes(np.ones(1, dtype=bool))
        frame = next_frame
        bar.update(1)
