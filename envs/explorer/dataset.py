"""The Explorer's generated data: the settings of `worldsim data generate` for it and the content of
one shard, a batch of envs driven by the exploration policy.

A shard depends only on (config, shard index), never on the worker that made it or on earlier
interruptions, so `worldsim.data.generate` can split the work across processes and resume it shard
by shard.

The rollout tells the game-agnostic policy what only the game knows: which moves are blocked
(water, trees and rock around the player) and how events group (night replaces day). Besides the
format's arrays every shard stores per-step labels for `worldsim data info`: `moved` (the action
moved the player, so the view scrolled), `blocked` (a move into a wall), `enemies_visible` and
`coins_visible` (tiles showing an enemy / a coin in frame i).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from worldsim.data.format import EXTRA_DTYPES, ShardArrays, ShardLayout
from worldsim.data.policy import ExplorationPolicy, PolicyConfig

from . import events
from .batch import MOVES, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .terrain import TILE_CLASSES

WORLD = "explorer"  # the manifest's world: the game's name
PROGRESS_EVERY_STEPS = 32  # how often a rollout reports progress
# Limits that keep a typo from asking for terabytes: a shard's frames are held in memory at once.
MAX_SIZE = 512
MAX_SHARD_BYTES = 2 << 30
MAX_FRAMES = 10**9
MAX_ENVS_PER_SHARD = 4096
# Events in force after an Explorer reset (day, clear sky, summer, ordinary coins): switching to
# one of them from the start would change nothing, so the policy treats them as already in force.
BASE_EVENTS = ("day", "clear", "summer", "coins_normal")

# The policy that teaches every condition: mostly moves that scroll the view (held 1-8 frames,
# redrawn at walls), a few kept bumps into walls, short still stretches, an event switch every
# 8-56 frames (34 on average) in a group picked uniformly, and episodes cut after 200-1000 frames.
EXPLORER_POLICY = PolicyConfig(
    hold_frames=(1, 8), still_prob=0.15, still_frames=(1, 4), event_every=(8, 56),
    start_event_prob=0.5, episode_frames=(200, 1000), noop_in_moves=False, keep_blocked_prob=0.25,
)


@dataclass(frozen=True)
class GenerateConfig:
    """Settings that determine a generated dataset's content (worker count does not); a
    `worldsim.data.generate.GenerateSettings`."""

    world: ClassVar[str] = WORLD
    frames: int
    seed: int = 0
    size: int = 64  # frames are size x size RGB
    shard_frames: int = 8192
    envs_per_shard: int = 8  # a shard holds envs_per_shard trajectories of shard_frames/envs frames
    policy: PolicyConfig = EXPLORER_POLICY
    compress: bool = True

    def __post_init__(self) -> None:
        limits = {"frames": MAX_FRAMES, "size": MAX_SIZE, "shard_frames": MAX_FRAMES,
                  "envs_per_shard": MAX_ENVS_PER_SHARD}
        for name, limit in limits.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int, got {value!r}")
            if not 1 <= value <= limit:
                raise ValueError(f"{name} must be in [1, {limit}], got {value}")
        shard_bytes = min(self.shard_frames, self.frames) * self.size**2 * 3
        if shard_bytes > MAX_SHARD_BYTES:
            raise ValueError(
                f"a shard of {min(self.shard_frames, self.frames)} frames of {self.size}x{self.size} "
                f"would hold {shard_bytes / 2**30:.1f} GiB (limit {MAX_SHARD_BYTES / 2**30:.0f} GiB); "
                "lower shard_frames or size")

    @property
    def num_shards(self) -> int:
        return -(-self.frames // self.shard_frames)

    def shard_length(self, index: int) -> int:
        return min(self.shard_frames, self.frames - index * self.shard_frames)

    def settings(self) -> dict[str, Any]:
        """The manifest's record of these settings; a resumed run must match it exactly."""
        return {"kind": "generate", "frames": self.frames, "seed": self.seed, "size": self.size,
                "shard_frames": self.shard_frames, "envs_per_shard": self.envs_per_shard,
                "policy": self.policy.to_dict(), "compress": self.compress}

    def layout(self) -> ShardLayout:
        return explorer_layout(self)

    def event_texts(self) -> tuple[str, ...]:
        return explorer_event_table().texts

    def rollout_shard(self, index: int, on_frames: Callable[[int], None] | None = None) -> ShardArrays:
        return rollout_shard(self, index, on_frames)


@dataclass(frozen=True)
class EventTable:
    texts: tuple[str, ...]  # the manifest's event text table: canonical + training paraphrases
    texts_by_type: tuple[tuple[int, ...], ...]  # text ids per event type
    types: tuple[Any, ...]  # explorer EventType per type index
    groups: tuple[int, ...]  # group index per type
    base_types: tuple[int, ...]  # types in force after a reset


@functools.lru_cache(maxsize=1)
def explorer_event_table() -> EventTable:
    """Training texts of every Explorer event; the held-out eval paraphrases never enter data."""
    texts: list[str] = []
    texts_by_type = []
    for event_type in events.EVENT_TYPES:
        phrasings = dict.fromkeys((event_type.canonical, *event_type.train))
        texts_by_type.append(tuple(_index_of(texts, text) for text in phrasings))
    leaked = set(texts) & set(events.eval_texts())
    if leaked:
        raise RuntimeError(f"explorer training and eval paraphrases overlap: {sorted(leaked)}")
    groups = tuple(events.GROUPS.index(event_type.group) for event_type in events.EVENT_TYPES)
    base_types = tuple(events.EVENT_NAMES.index(name) for name in BASE_EVENTS)
    return EventTable(tuple(texts), tuple(texts_by_type), tuple(events.EVENT_TYPES), groups,
                      base_types)


def _index_of(texts: list[str], text: str) -> int:
    if text not in texts:
        texts.append(text)
    return texts.index(text)


def explorer_layout(config: GenerateConfig) -> ShardLayout:
    """The shard layout of `config`; a frame size the Explorer cannot render raises ValueError."""
    ExplorerConfig(size=config.size)
    return ShardLayout((config.size, config.size, 3), NUM_ACTIONS, len(explorer_event_table().texts))


def rollout_shard(
    config: GenerateConfig, index: int, on_frames: Callable[[int], None] | None = None
) -> ShardArrays:
    """Generate shard `index`: envs_per_shard envs stepped together, stored env after env."""
    length = config.shard_length(index)
    num_envs = min(config.envs_per_shard, length)
    steps = -(-length // num_envs)
    policy_rng, env_rng = shard_rngs(config, index)
    table = explorer_event_table()
    policy = ExplorationPolicy(num_envs, NUM_ACTIONS, table.texts_by_type, config.policy, policy_rng,
                               event_groups=table.groups, base_types=table.base_types)
    sim = ExplorerBatch(num_envs, ExplorerConfig(size=config.size))
    sim.reset(new_episode_seeds(env_rng, num_envs))
    buffers = _TrajectoryBuffers(num_envs, steps, (config.size, config.size, 3))
    progress = _ProgressReporter(on_frames, num_envs, length)
    for t in range(steps):
        blocked = blocked_moves(sim.tile_classes())  # events never change which tiles block
        decided = policy.step(blocked)
        if decided.switched.any():
            sim.apply_events([table.types[k] if switch else None
                              for switch, k in zip(decided.switched, decided.event_types)])
        frames = sim.render()
        shown = visible_counts(sim.tile_classes())
        rewards, terminated = sim.step(decided.actions)
        tried_blocked = blocked[np.arange(num_envs), decided.actions]
        buffers.put(t, frames, decided.actions, decided.events, rewards, terminated)
        buffers.put_labels(t, moved=is_move(decided.actions) & ~tried_blocked,
                           blocked=tried_blocked, **shown)
        done = terminated | decided.truncate
        if done.any():  # the next frame of these envs starts a new episode
            sim.reset(new_episode_seeds(env_rng, num_envs), mask=done)
            policy.start_episodes(done)
            buffers.mark_episode_starts(t + 1, done)
        progress.after_step(t + 1)
    progress.finish()
    return buffers.shard(length, first_episode=index * config.shard_frames)


def blocked_moves(tile_classes: np.ndarray) -> np.ndarray:
    """bool [B, NUM_ACTIONS]: the moves whose target tile (water, tree, rock) stops the player.

    `tile_classes` [B, view, view] is the view with the player on its centre tile; coins, enemies
    and lava only ever lie on walkable ground, so the class shown decides passability.
    """
    centre = tile_classes.shape[1] // 2
    walls = np.isin(tile_classes, [TILE_CLASSES.index(name) for name in ("water", "tree", "rock")])
    targets = walls[:, centre + MOVES[:, 1], centre + MOVES[:, 0]]  # [B, actions]
    return targets & is_move(np.arange(len(MOVES)))


def is_move(actions: np.ndarray) -> np.ndarray:
    """bool: the Explorer actions that try to move the player (all but noop)."""
    return (MOVES[actions] != 0).any(axis=-1)


def visible_counts(tile_classes: np.ndarray) -> dict[str, np.ndarray]:
    """Tiles showing an enemy and a coin per env (uint8 [B] each) in the view `tile_classes`."""
    def count(name: str) -> np.ndarray:
        tiles = (tile_classes == TILE_CLASSES.index(name)).sum(axis=(1, 2))
        return np.minimum(tiles, 255).astype(np.uint8)

    return {"enemies_visible": count("enemy"), "coins_visible": count("coin")}


def shard_rngs(config: GenerateConfig, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent random streams of shard `index`: (policy decisions, episode map seeds)."""
    policy_seed, env_seed = np.random.SeedSequence([config.seed, index]).spawn(2)
    return np.random.default_rng(policy_seed), np.random.default_rng(env_seed)


def new_episode_seeds(rng: np.random.Generator, num_envs: int) -> np.ndarray:
    """One fresh map seed per env (only the rows being reset use theirs)."""
    return rng.integers(0, 2**31 - 1, size=num_envs, dtype=np.int64)


class _ProgressReporter:
    """Calls `callback(new_frames)` every few steps; the calls add up to the shard length."""

    def __init__(self, callback: Callable[[int], None] | None, num_envs: int, length: int) -> None:
        self._callback, self._num_envs, self._length, self._reported = callback, num_envs, length, 0

    def after_step(self, steps_done: int) -> None:
        if steps_done % PROGRESS_EVERY_STEPS == 0:
            self._report(min(steps_done * self._num_envs, self._length))

    def finish(self) -> None:
        self._report(self._length)

    def _report(self, frames_done: int) -> None:
        if self._callback is not None and frames_done > self._reported:
            self._callback(frames_done - self._reported)
            self._reported = frames_done


class _TrajectoryBuffers:
    """Per-env trajectories [B, T, ...] filled step by step, flattened env after env at the end."""

    def __init__(self, num_envs: int, steps: int, frame_shape: tuple[int, int, int]) -> None:
        shape = (num_envs, steps)
        self.frames = np.empty((*shape, *frame_shape), dtype=np.uint8)
        self.actions = np.empty(shape, dtype=np.int64)
        self.events = np.empty(shape, dtype=np.int32)
        self.rewards = np.empty(shape, dtype=np.float32)
        self.terminated = np.empty(shape, dtype=np.bool_)
        self.episode_starts = np.zeros(shape, dtype=np.bool_)
        self.episode_starts[:, 0] = True  # every trajectory opens a new episode
        self.labels = {name: np.empty(shape, dtype=dtype) for name, dtype in EXTRA_DTYPES.items()}

    def put(self, t: int, frames: np.ndarray, actions: np.ndarray, events: np.ndarray,
            rewards: np.ndarray, terminated: np.ndarray) -> None:
        self.frames[:, t] = frames
        self.actions[:, t] = actions
        self.events[:, t] = events
        self.rewards[:, t] = rewards
        self.terminated[:, t] = terminated

    def put_labels(self, t: int, **labels: np.ndarray) -> None:
        for name, values in labels.items():
            self.labels[name][:, t] = values

    def mark_episode_starts(self, t: int, mask: np.ndarray) -> None:
        if t < self.episode_starts.shape[1]:
            self.episode_starts[mask, t] = True

    def shard(self, length: int, first_episode: int) -> ShardArrays:
        """The first `length` frames, env after env; episode ids count up from `first_episode`."""
        def flat(array: np.ndarray) -> np.ndarray:
            return array.reshape(-1, *array.shape[2:])[:length]

        arrays = {name: flat(getattr(self, name))
                  for name in ("frames", "actions", "events", "rewards", "terminated")}
        episode = first_episode + np.cumsum(flat(self.episode_starts), dtype=np.int64) - 1
        extras = {name: flat(values) for name, values in self.labels.items()}
        return ShardArrays(**arrays, episode=episode, extras=extras)
