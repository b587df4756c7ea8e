"""The real Explorer in `worldsim play` (a `worldsim.play.worlds.World`): `--world real` and the
right-hand panel of `--compare`."""
from __future__ import annotations

import numpy as np

from worldsim.play.worlds import StepResult, Understanding

from . import events
from .batch import ACTIONS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .dataset import WORLD


class RealExplorer:
    """The ground-truth Explorer game as a play world (its `GameSpec.play_world`)."""

    name = "real Explorer"
    is_ground_truth = True
    dataset_world = WORLD

    def __init__(self, size: int = 64) -> None:
        self._events = events
        self._game = ExplorerBatch(1, ExplorerConfig(size=size), seed=0)
        self.num_actions = NUM_ACTIONS
        self.action_names = ACTIONS
        self.frame_shape = (size, size, 3)
        self.example_events = tuple(event_type.canonical for event_type in events.EVENT_TYPES)
        self.event_vocabulary = self.example_events  # recordings store canonical texts (event_label)

    def check_event(self, text: str) -> str | None:
        try:
            self._events.parse_event(text)
        except ValueError as error:
            return str(error)
        return None

    def event_label(self, text: str) -> str:
        return self._events.parse_event(text).canonical

    def understand(self, text: str) -> Understanding:
        try:
            return Understanding(self._events.parse_event(text).canonical)
        except ValueError:
            return Understanding(None)

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        self._game.reset(np.array([seed], dtype=np.int64))
        if event:
            self._game.apply_events([self._events.parse_event(event)])
        return self._game.render()[0]

    def step(self, action: int, event: str | None) -> StepResult:
        if not 0 <= action < self.num_actions:
            raise ValueError(f"action {action} is outside 0..{self.num_actions - 1}")
        if event is not None:
            self._game.apply_events([self._events.parse_event(event)])
        rewards, terminated = self._game.step(np.array([action], dtype=np.int64))
        return StepResult(self._game.render()[0], float(rewards[0]), bool(terminated[0]))
