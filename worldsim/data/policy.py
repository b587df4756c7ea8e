"""The exploration policy that drives data generation and recording, vectorised.

Per env it holds a random move for a random number of frames, sometimes stands still for a
stretch, switches the event text at random times (phrased by a random training paraphrase),
starts some episodes with an event already in force and ends episodes after a random length.

The policy knows nothing about a particular game. Two optional inputs let a caller teach it
what it cannot see:
- a per-step "blocked moves" mask (which actions would not move the player): a held move that
  is blocked is usually redrawn among the open moves, and kept with `keep_blocked_prob`, so a
  dataset holds some bumps into walls without long stretches of pushing against them;
- event groups (event types of one group replace each other, as "night falls" replaces "day
  breaks") and the types in force when an episode starts: a switch then always changes the
  world, picking a group uniformly and one of its types not already in force.

Pure numpy: every random choice comes from the generator passed in, so a run is reproducible
from its seed.
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
    noop_in_moves: bool = True  # a drawn move may be the noop action too (else only real moves)
    keep_blocked_prob: float = 1.0  # per frame, chance to keep pushing a blocked move (needs a mask)

    def __post_init__(self) -> None:
        for name in ("hold_frames", "still_frames", "event_every", "episode_frames"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and 1 <= value[0] <= value[1]):
                raise ValueError(
                    f"PolicyConfig.{name} must be (low, high) with 1 <= low <= high, got {value}")
        for name in ("still_prob", "start_event_prob", "keep_blocked_prob"):
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
    event_types: np.ndarray  # int64 [B], type index of the latest event switched to (-1 = none)
    truncate: np.ndarray  # bool [B], the episode ends after this frame (reset the env)


class ExplorationPolicy:
    """Sticky random exploration with event switches for `num_envs` envs at once.

    `event_texts_by_type[k]` lists the event-text ids (into the dataset's text table) that may
    phrase event type k; pass an empty list for a world without events. `event_groups[k]` is the
    group of type k (None: all types form one group, so a switch only avoids the latest event);
    `base_types` are the types in force when an episode starts (at most one per group).
    """

    def __init__(
        self, num_envs: int, num_actions: int, event_texts_by_type: Sequence[Sequence[int]],
        config: PolicyConfig, rng: np.random.Generator,
        event_groups: Sequence[int] | None = None, base_types: Sequence[int] = (),
    ) -> None:
        if num_actions < 1 or not 0 <= config.noop_action < num_actions:
            raise ValueError(f"need num_actions >= 1 with noop_action inside, got {num_actions}")
        if any(len(texts) == 0 for texts in event_texts_by_type):
            raise ValueError("every event type needs at least one text")
        self.num_envs, self.num_actions, self.config, self._rng = num_envs, num_actions, config, rng
        self._type_sizes = np.array([len(t) for t in event_texts_by_type], dtype=np.int64)
        self._type_offsets = np.cumsum(self._type_sizes) - self._type_sizes
        self._text_ids = np.array([i for t in event_texts_by_type for i in t], dtype=np.int64)
        self._type_group, self._base_in_force = _group_tables(
            len(event_texts_by_type), event_groups, base_types)
        self._moves = np.array([a for a in range(num_actions)
                                if config.noop_in_moves or a != config.noop_action], dtype=np.int64)
        self._action = np.zeros(num_envs, dtype=np.int64)
        self._hold_left = np.zeros(num_envs, dtype=np.int64)
        self._event = np.full(num_envs, NO_EVENT, dtype=np.int32)
        self._event_type = np.full(num_envs, -1, dtype=np.int64)
        self._in_force = np.empty((num_envs, len(self._base_in_force)), dtype=np.int64)
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
        self._in_force[mask] = self._base_in_force
        if self.has_events:
            at_start = self._rng.random(count) < self.config.start_event_prob
            self._event_left[mask] = np.where(at_start, 0, self._draw(self.config.event_every, count))
        if self.config.episode_frames is not None:
            self._episode_left[mask] = self._draw(self.config.episode_frames, count)

    def step(self, blocked: np.ndarray | None = None) -> PolicyStep:
        """Decide this frame's event and the action taken after it, for every env.

        `blocked` (bool [B, num_actions], optional) marks the actions that would not move the
        player from this frame (moves into walls); the noop column is ignored.
        """
        blocked = self._checked_blocked(blocked)
        switched = self._switch_events()
        self._choose_actions()
        if blocked is not None:
            self._redraw_blocked(blocked)
        self._hold_left -= 1
        truncate = np.zeros(self.num_envs, dtype=bool)
        if self.config.episode_frames is not None:
            self._episode_left -= 1
            truncate = self._episode_left <= 0
        return PolicyStep(self._action.copy(), self._event.copy(), switched,
                          self._event_type.copy(), truncate)

    def _checked_blocked(self, blocked: np.ndarray | None) -> np.ndarray | None:
        if blocked is None:
            return None
        blocked = np.asarray(blocked)
        if blocked.dtype != np.bool_ or blocked.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"blocked must be bool [{self.num_envs}, {self.num_actions}], "
                             f"got {blocked.dtype} {blocked.shape}")
        return blocked

    def _switch_events(self) -> np.ndarray:
        switched = np.zeros(self.num_envs, dtype=bool)
        if not self.has_events:
            return switched
        switched = self._event_left <= 0
        count = int(switched.sum())
        if count:
            new_types = self._next_types(switched)
            paraphrase = self._rng.integers(0, self._type_sizes[new_types])
            self._event[switched] = self._text_ids[self._type_offsets[new_types] + paraphrase]
            self._event_type[switched] = new_types
            self._in_force[switched, self._type_group[new_types]] = new_types
            self._event_left[switched] = self._draw(self.config.event_every, count)
        self._event_left -= 1
        return switched

    def _next_types(self, envs: np.ndarray) -> np.ndarray:
        """Per env in `envs`: a uniform group, then a uniform type of it that is not in force."""
        type_ids = np.arange(len(self._type_group))
        open_types = self._in_force[envs][:, self._type_group] != type_ids  # [n, T]
        probs = open_types.astype(np.float64)
        group_open = np.zeros((len(probs), self._in_force.shape[1]))
        np.add.at(group_open.T, self._type_group, probs.T)  # open types per group
        probs /= np.maximum(group_open[:, self._type_group], 1)
        probs /= np.maximum((group_open > 0).sum(1, keepdims=True), 1)
        probs[~open_types.any(1)] = 1 / len(type_ids)  # nothing new to switch to: any type
        return _sample_rows(probs, self._rng)

    def _choose_actions(self) -> None:
        expired = self._hold_left <= 0
        count = int(expired.sum())
        if not count:
            return
        still = self._rng.random(count) < self.config.still_prob
        moves = self._moves[self._rng.integers(0, len(self._moves), count)]
        self._action[expired] = np.where(still, self.config.noop_action, moves)
        hold = np.where(still, self._draw(self.config.still_frames, count),
                        self._draw(self.config.hold_frames, count))
        self._hold_left[expired] = hold

    def _redraw_blocked(self, blocked: np.ndarray) -> None:
        """Blocked moves are redrawn among the open ones, unless kept (keep_blocked_prob)."""
        envs = np.arange(self.num_envs)
        pushing = blocked[envs, self._action] & (self._action != self.config.noop_action)
        open_moves = ~blocked[:, self._moves] & (self._moves != self.config.noop_action)
        redraw = (pushing & (self._rng.random(self.num_envs) >= self.config.keep_blocked_prob)
                  & open_moves.any(1))  # with nowhere to go, keep pushing
        count = int(redraw.sum())
        if not count:
            return
        choice = _sample_rows(open_moves[redraw].astype(np.float64), self._rng)
        self._action[redraw] = self._moves[choice]
        self._hold_left[redraw] = self._draw(self.config.hold_frames, count)

    def _draw(self, bounds: Range, count: int) -> np.ndarray:
        return self._rng.integers(bounds[0], bounds[1] + 1, size=count)


def _group_tables(
    num_types: int, event_groups: Sequence[int] | None, base_types: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """(group of each type [T], type in force per group at an episode start [G], -1 = none)."""
    groups = np.zeros(num_types, np.int64) if event_groups is None else np.asarray(event_groups)
    if groups.shape != (num_types,) or (num_types and groups.min() < 0):
        raise ValueError(f"event_groups must hold one group id >= 0 per event type ({num_types})")
    base_in_force = np.full(int(groups.max()) + 1 if num_types else 0, -1, dtype=np.int64)
    for base in base_types:
        if not 0 <= base < num_types or base_in_force[groups[base]] >= 0:
            raise ValueError(f"base_types must be distinct-group event types, got {list(base_types)}")
        base_in_force[groups[base]] = base
    return groups.astype(np.int64), base_in_force


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row of `probs` [n, K] (non-negative, not all zero), drawn by weight."""
    cumulative = np.cumsum(probs, axis=1)
    targets = rng.random(len(probs)) * cumulative[:, -1]
    return np.minimum((cumulative <= targets[:, None]).sum(1), probs.shape[1] - 1)
