"""Labelled real frames of the suite's game (`worldsim.eval.truth`), generated on the fly, for
training and testing the probes.

Event labels are *visual states* per event group. A group that no event has touched since a reset
is in its base state; where an event renders exactly like that base state (day, clear weather,
summer, ordinary coins) the two are one class, otherwise the base state is a class of its own
(ordinary enemies, small hot lava pools), so that every class looks different in principle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from worldsim.eval.truth import TRUTH, events

BASE_CLASS = "base"  # name of a group's untouched state when no event looks like it
_BASE_CHECK_WORLDS = 64  # worlds rendered to decide whether an event looks like the base state


def _renders_like_base(event: Any, size: int) -> bool:
    """Whether putting `event` in force right after a reset changes no frame and no tile."""
    world = TRUTH.ground_truth(_BASE_CHECK_WORLDS, size, 7919)
    base_frames, base_tiles = world.render(), world.tile_classes()
    world.apply_events([event] * _BASE_CHECK_WORLDS)
    return bool(np.array_equal(world.render(), base_frames) and np.array_equal(world.tile_classes(), base_tiles))


@dataclass(frozen=True)
class EventClasses:
    """Per event group, the class names the event classifier predicts (class 0 = base state)."""

    groups: dict[str, tuple[str, ...]]

    @classmethod
    def from_world(cls, size: int = 64) -> "EventClasses":
        groups = {}
        for group in events.GROUPS:
            members = events.events_in_group(group)
            base_like = [event.name for event in members if _renders_like_base(event, size)]
            others = [event.name for event in members if event.name not in base_like]
            groups[group] = (base_like[0] if base_like else BASE_CLASS, *others)
        return cls(groups)

    def class_of(self, group: str, active_event: str | None) -> int:
        """Class index of `active_event` (an event name, or None for the untouched state)."""
        names = self.groups[group]
        if active_event is None or active_event not in names:
            return 0  # untouched, or an event that renders like the untouched state
        return names.index(active_event)

    def labels(self, active_by_world: list[dict[str, str | None]]) -> dict[str, np.ndarray]:
        """`{group: int64 [B]}` from each world's `state(i)["events"]`."""
        return {
            group: np.array([self.class_of(group, active[group]) for active in active_by_world], dtype=np.int64)
            for group in self.groups
        }


@dataclass
class LabelledBatch:
    """One frame per world with everything a probe can be trained or tested on."""

    frames: np.ndarray  # uint8 [B, H, W, 3]
    next_frames: np.ndarray  # uint8 [B, H, W, 3], the frame after `actions`
    tiles: np.ndarray  # uint8 [B, H/4, W/4], true tile classes of `frames`
    events: dict[str, np.ndarray]  # group -> int64 [B] event class of `frames`
    actions: np.ndarray  # int64 [B], action taken between `frames` and `next_frames`
    moved: np.ndarray  # bool [B], the player's position changed with that action


@dataclass(frozen=True)
class StreamConfig:
    num_worlds: int = 64
    size: int = 64
    skip_steps: tuple[int, int] = (1, 6)  # random steps between samples, so consecutive batches differ
    switch_prob: float = 0.05  # per world and step: put a random event in force
    episode_steps: tuple[int, int] = (40, 400)  # worlds restart on a new map after this many steps
    start_event_prob: float = 0.7  # per group at a restart: start with a random event of that group


class TrueFrameStream:
    """Endless labelled batches from `num_worlds` true worlds under random actions and events.

    Map seeds are drawn from the stream's own generator and split by parity (`held_out` streams use
    odd map seeds, training streams even ones), so training and held-out maps never coincide.
    """

    def __init__(self, config: StreamConfig, seed: int, event_classes: EventClasses, held_out: bool = False) -> None:
        self.config, self.event_classes = config, event_classes
        self._rng = np.random.default_rng(seed)
        self._parity = int(held_out)
        self._world = TRUTH.ground_truth(config.num_worlds, config.size, 0)
        self._steps_left = np.zeros(config.num_worlds, dtype=np.int64)
        self._restart(np.ones(config.num_worlds, dtype=bool))

    def _restart(self, mask: np.ndarray) -> None:
        if not mask.any():
            return
        seeds = 2 * self._rng.integers(0, 2**30, self.config.num_worlds) + self._parity
        self._world.reset(seeds, mask)
        for group in events.GROUPS:
            members = events.events_in_group(group)
            chosen = self._rng.integers(0, len(members), self.config.num_worlds)
            applies = mask & (self._rng.random(self.config.num_worlds) < self.config.start_event_prob)
            self._world.apply_events([members[c] if a else None for c, a in zip(chosen, applies)])
        self._steps_left[mask] = self._rng.integers(*self.config.episode_steps, size=int(mask.sum()))

    def _random_step(self) -> None:
        switching = self._rng.random(self.config.num_worlds) < self.config.switch_prob
        chosen = self._rng.integers(0, len(events.EVENT_TYPES), self.config.num_worlds)
        self._world.apply_events([events.EVENT_TYPES[c] if s else None for c, s in zip(chosen, switching)])
        self._world.step(self._rng.integers(0, TRUTH.num_actions, self.config.num_worlds))
        self._steps_left -= 1

    def _positions(self) -> np.ndarray:
        return np.array([self._world.state(i)["position"] for i in range(self.config.num_worlds)])

    def next_batch(self) -> LabelledBatch:
        # Restarting costs a map computation per group event, so it happens once per batch;
        # a world that died meanwhile just stands still until then.
        self._restart(self._world.terminated | (self._steps_left <= 0))
        for _ in range(int(self._rng.integers(self.config.skip_steps[0], self.config.skip_steps[1] + 1))):
            self._random_step()
        frames, tiles, before = self._world.render(), self._world.tile_classes(), self._positions()
        labels = self.event_classes.labels([self._world.state(i)["events"] for i in range(self.config.num_worlds)])
        actions = self._rng.integers(0, TRUTH.num_actions, self.config.num_worlds)
        self._world.step(actions)
        self._steps_left -= 1
        moved = np.any(self._positions() != before, axis=1)
        return LabelledBatch(frames, self._world.render(), tiles, labels, actions, moved)
