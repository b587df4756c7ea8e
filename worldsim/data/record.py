"""Record any Gymnasium env with image observations and discrete actions into a dataset.

Frames are stored as the env renders them, or cropped and resized to `size` x `size` (area
averaging, `worldsim.imaging.resize`) so that a world can be trained on them. With `frame_skip`
k, each stored step repeats its action k times and stores the sum of the rewards. The manifest's
`generator` entry holds the env's action meanings (`action_names`, from
`get_action_meanings()` where the env has it, else "action 0".."action n-1"), which is how the
engine names the recorded game's actions (`worldsim.games`).

Recording resumes: run the same command on an unfinished dataset folder and it keeps the shards
already written and records the missing frames in new episodes (seeded from the frame count), so
the result is complete but not byte-equal to an uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from worldsim.data.format import MANIFEST_NAME, DatasetError
from worldsim.data.manifest import load_manifest
from worldsim.data.policy import RANDOM_POLICY, ExplorationPolicy, PolicyConfig
from worldsim.data.reader import Dataset
from worldsim.data.writer import DatasetWriter
from worldsim.games import default_action_names
from worldsim.imaging.resize import crop_frames, resize_frames

# Sticky recording: actions held for a few steps, short pauses, no events, the env's own episodes.
STICKY_POLICY = PolicyConfig(hold_frames=(1, 12), still_prob=0.1, still_frames=(4, 30),
                             event_every=None, start_event_prob=0.0, episode_frames=None)
POLICIES = {"sticky": STICKY_POLICY, "random": RANDOM_POLICY}
FIRE = "FIRE"  # the Atari action that launches the ball or starts the round
MAX_SIZE = 512


@dataclass(frozen=True)
class RecordConfig:
    env_id: str
    frames: int
    seed: int = 0
    policy: str = "sticky"  # a key of POLICIES
    shard_frames: int | None = None  # None: about 64 MiB of raw frames per shard
    size: int | None = None  # resize frames to size x size; None keeps the env's frames
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)  # rows/columns removed first: top, bottom, left, right
    frame_skip: int = 1  # env steps per stored frame (the action repeated, rewards summed)
    fire_at_reset: bool = True  # press FIRE once after each reset when the game has that action

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}; choose from {sorted(POLICIES)}")
        if self.size is not None and not 4 <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be in [4, {MAX_SIZE}], got {self.size}")
        if len(self.crop) != 4 or min(self.crop) < 0:
            raise ValueError(f"crop must be 4 values >= 0 (top, bottom, left, right), got {self.crop}")
        if self.frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {self.frame_skip}")

    def settings(self) -> dict[str, Any]:
        """What decides the content (stored in the manifest; a resumed run must match it)."""
        return {"kind": "record", "env": self.env_id, "seed": self.seed, "policy": self.policy,
                "size": self.size, "crop": list(self.crop), "frame_skip": self.frame_skip,
                "fire_at_reset": self.fire_at_reset}


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


def action_names(env: gym.Env) -> tuple[str, ...]:
    """The env's action meanings (`get_action_meanings()`, as Atari envs have), else numbered names."""
    count = int(env.action_space.n)
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    names = tuple(str(name) for name in meanings()) if callable(meanings) else ()
    if len(names) != count or len(set(names)) != count:
        names = default_action_names(count)
    return names


class FrameTransform:
    """Crop, then resize to size x size: the env's frames as the dataset stores them."""

    def __init__(self, source_shape: tuple[int, ...], config: RecordConfig) -> None:
        top, bottom, left, right = config.crop
        height, width = source_shape[0] - top - bottom, source_shape[1] - left - right
        if height < 1 or width < 1:
            raise ValueError(f"crop {config.crop} leaves no pixels of the {source_shape[0]}x{source_shape[1]} frames")
        self.crop = config.crop
        self.shape = (height, width, 3) if config.size is None else (config.size, config.size, 3)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = crop_frames(np.asarray(frame, dtype=np.uint8), *self.crop)
        return resize_frames(frame, self.shape[0], self.shape[1])


def record(out: str | Path, config: RecordConfig, progress: bool = True) -> Dataset:
    """Play `config.env_id` with the chosen policy until folder `out` holds `config.frames` frames."""
    out = Path(out)
    recorded = _frames_already_recorded(out, config)
    env = make_image_env(config.env_id)
    try:
        transform = FrameTransform(env.observation_space.shape, config)
        names = action_names(env)
        seed = config.seed + recorded  # a resumed run starts new episodes from fresh seeds
        policy = ExplorationPolicy(1, len(names), [], POLICIES[config.policy], np.random.default_rng(seed))
        generator = {**config.settings(), "frames": config.frames, "action_names": list(names)}
        writer = DatasetWriter(out, world=config.env_id, frame_shape=transform.shape, num_actions=len(names),
                               shard_frames=config.shard_frames, generator=generator,
                               append=(out / MANIFEST_NAME).is_file())
        player = _Player(env, policy, writer, transform, config, names)
        with writer, tqdm(total=config.frames, initial=recorded, unit="frame", disable=not progress) as bar:
            player.play(config.frames - recorded, seed, bar)
    finally:
        env.close()
    return Dataset(out)


def _frames_already_recorded(out: Path, config: RecordConfig) -> int:
    """Frames of an unfinished recording with the same settings in `out` (0 for a new folder)."""
    if not (out / MANIFEST_NAME).is_file():
        return 0
    manifest = load_manifest(out)
    settings = {key: manifest.generator.get(key) for key in config.settings()}
    if manifest.complete or settings != config.settings() or manifest.generator.get("frames") != config.frames:
        raise DatasetError(f"{out} already holds a dataset ({'complete' if manifest.complete else 'other settings'}); "
                           "choose a new folder, or repeat the exact command of an unfinished recording")
    return manifest.num_frames


class _Player:
    """The record loop: policy → env (frame skip, FIRE at reset) → writer."""

    def __init__(self, env: gym.Env, policy: ExplorationPolicy, writer: DatasetWriter,
                 transform: FrameTransform, config: RecordConfig, names: tuple[str, ...]) -> None:
        self.env, self.policy, self.writer, self.transform = env, policy, writer, transform
        self.frame_skip = config.frame_skip
        self.first_action = int(env.action_space.start)  # Discrete spaces may start anywhere
        self.fire = names.index(FIRE) if config.fire_at_reset and FIRE in names else None

    def play(self, frames: int, seed: int, bar: tqdm) -> None:
        frame = self._reset(seed)
        for _ in range(frames):
            action = int(self.policy.step().actions[0])
            next_frame, reward, terminated, truncated = self._step(action)
            self.writer.add(self.transform(frame), action, reward, terminated)
            if terminated or truncated:
                self.writer.end_episode()  # the frame after a reset starts a new episode
                next_frame = self._reset(None)
                self.policy.start_episodes(np.ones(1, dtype=bool))
            frame = next_frame
            bar.update(1)

    def _reset(self, seed: int | None) -> np.ndarray:
        frame, _ = self.env.reset(seed=seed)
        if self.fire is not None:  # e.g. Breakout waits for FIRE before the ball appears
            frame, _, terminated, truncated, _ = self.env.step(self.first_action + self.fire)
            if terminated or truncated:
                frame, _ = self.env.reset()
        return frame

    def _step(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        total = 0.0
        for _ in range(self.frame_skip):
            frame, reward, terminated, truncated, _ = self.env.step(self.first_action + action)
            total += float(reward)
            if terminated or truncated:
                break
        return frame, total, bool(terminated), bool(truncated)


def recorded_dataset_maker(env_id: str):
    """The `GameSpec.make_dataset` of a recorded Gymnasium env: `record` with the sticky policy."""

    def make_dataset(out: Path, frames: int, size: int, seed: int, progress: bool) -> Dataset:
        return record(out, RecordConfig(env_id, frames=frames, seed=seed, size=size), progress=progress)

    return make_dataset
