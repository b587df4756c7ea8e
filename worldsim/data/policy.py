"""The exploration policy that drives data generation and recording (DESIGN §4), vectorised.

Per env it holds a uniformly random action for a random number of frames, sometimes stands still
for a stretch, switches the event text at random times (a random event type other than the current
one, phrased by a random training paraphrase), starts some episodes with an event already in force
and ends episodes after a random length. Pure numpy:
every random choice comes from the generator passed in, so a run is reproducible from its seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from worldsim.data.format import NO_EVENT

Range = tuple[int, int]  # inclusive [low, high]


@dataclass(frozen=True)
class PolicyConfig:
    hold_frames: Range = (1, 16)  # how long a chosen action is held
    still_prob: float = 0.1  # chance that the next choice is standing still
    still_frames: Range = (4, 30)  # how long a stretch of standing still lasts
    event_every: Range | None = (30, 300)  # frames between event switches; None = no events
    start_event_prob: float = 0.5  # chance that an episode starts with an event in force
    episode_frames: Range | None = (300, 1500)  # episodes are cut (reset) after this; None = never
    noop_action: int = 0  # the "stand still" action

    def __post_init__(self) -> None:
        for name in ("hold_frames", "still_frames", "event_every", "episode_frames"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and 1 <= value[0] <= value[1]):
                raise ValueError(
                    f"PolicyConfig.{name} must be (low, high) with 1 <= low <= high, got {value}")
        for name in ("still_prob", "start_event_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PolicyConfig.{name} must be in [0, 1], got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PolicyConfig key(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


# Uniformly random actions every frame: the plain "random" recording policy.
RANDOM_POLICY = PolicyConfig(hold_frames=(1, 1), still_prob=0.0, event_every=None,
                             start_event_prob=0.0, episode_frames=None)


@dataclass
class PolicyStep:
    """What the policy decided for the current frame of every env."""

    actions: np.ndarray  # int64 [B], action taken after this frame
    events: np.ndarray  # int32 [B], event text id in force at this frame (-1 = none)
    switched: np.ndarray  # bool [B], the event changed at this frame (apply it before rendering)
    event_types: np.ndarray  # int64 [B], type index of the event in force (-1 = none)
    truncate: np.ndarray  # bool [B], the episode ends after this frame (reset the env)


class ExplorationPolicy:
    """Sticky random exploration with event switches for `num_envs` envs at once.

    `event_texts_by_type[k]` lists the event-text ids (into the dataset's text table) that may
    phrase event type k; pass an empty list for a world without events.
    """

    def __init__(
        self, num_envs: int, num_actions: int, event_texts_by_type: Sequence[Sequence[int]],
        config: PolicyConfig, rng: np.random.Generator,
    ) -> None:
        if num_actions < 1 or not 0 <= config.noop_action < num_actions:
            raise ValueError(f"need num_actions >= 1 with noop_action inside, got {num_actions}")
        if any(len(texts) == 0 for texts in event_texts_by_type):
            raise ValueError("every event type needs at least one text")
        self.num_envs, self.num_actions, self.config, self._rng = num_envs, num_actions, config, rng
        self._type_sizes = np.array([len(t) for t in event_texts_by_type], dtype=np.int64)
        self._type_offsets = np.cumsum(self._type_sizes) - self._type_sizes
        self._text_ids = np.array([i for t in event_texts_by_type for i in t], dtype=np.int64)
        self._action = np.zeros(num_envs, dtype=np.int64)
        self._hold_left = np.zeros(num_envs, dtype=np.int64)
        self._event = np.full(num_envs, NO_EVENT, dtype=np.int32)
        self._event_type = np.full(num_envs, -1, dtype=np.int64)
        self._event_left = np.zeros(num_envs, dtype=np.int64)
        self._episode_left = np.zeros(num_envs, dtype=np.int64)
        self.start_episodes(np.ones(num_envs, dtype=bool))

    @property
    def has_events(self) -> bool:
        return self.config.event_every is not None and len(self._type_sizes) > 0

    def start_episodes(self, mask: np.ndarray) -> None:
        """Envs in `mask` begin a new episode: fresh timers, no event or one from the first frame."""
        count = int(mask.sum())
        self._hold_left[mask] = 0
        self._event[mask] = NO_EVENT
        self._event_type[mask] = -1
        if self.has_events:
            at_start = self._rng.random(count) < self.config.start_event_prob
            self._event_left[mask] = np.where(at_start, 0, self._draw(self.config.event_every, count))
        if self.config.episode_frames is not None:
            self._episode_left[mask] = self._draw(self.config.episode_frames, count)

    def step(self) -> PolicyStep:
        """Decide this frame's event and the action taken after it, for every env."""
        switched = self._switch_events()
        self._choose_actions()
        self._hold_left -= 1
        truncate = np.zeros(self.num_envs, dtype=bool)
        if self.config.episode_frames is not None:
            self._episode_left -= 1
            truncate = self._episode_left <= 0
        return PolicyStep(self._action.copy(), self._event.copy(), switched,
                          self._event_type.copy(), truncate)

    def _switch_events(self) -> np.ndarray:
        switched = np.zeros(self.num_envs, dtype=bool)
        if not self.has_events:
            return switched
        switched = self._event_left <= 0
        count = int(switched.sum())
        if count:
            new_types = self._other_types(self._event_type[switched])
            paraphrase = self._rng.integers(0, self._type_sizes[new_types])
            self._event[switched] = self._text_ids[self._type_offsets[new_types] + paraphrase]
            self._event_type[switched] = new_types
            self._event_left[switched] = self._draw(self.config.event_every, count)
        self._event_left -= 1
        return switched

    def _other_types(self, current: np.ndarray) -> np.ndarray:
        """A uniformly random event type per env, different from its current one when possible."""
        num_types = len(self._type_sizes)
        if num_types == 1:
            return np.zeros(len(current), dtype=np.int64)
        has_current = current >= 0
        draws = self._rng.integers(0, np.where(has_current, num_types - 1, num_types))
        return np.where(has_current & (draws >= current), draws + 1, draws)

    def _choose_actions(self) -> None:
        expired = self._hold_left <= 0
        count = int(expired.sum())
        if not count:
            return
        still = self._rng.random(count) < self.config.still_prob
        moves = self._rng.integers(0, self.num_actions, count)
        self._action[expired] = np.where(still, self.config.noop_action, moves)
        hold = np.where(still, self._draw(self.config.still_frames, count),
                        self._draw(self.config.hold_frames, count))
        self._hold_left[expired] = hold

    def _draw(self, bounds: Range, count: int) -> np.ndarray:
        return self._rng.integers(bounds[0], bounds[1] + 1, size=count)
