"""World backends for play: the neural Simulator or the real Explorer behind one small interface.

Both take one action and optionally a new event per frame and hand back a numpy frame, so the
session, the renderer and the recorder never care which kind of world they drive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class StepResult:
    frame: np.ndarray  # uint8 [H, W, 3]
    reward: float
    terminated: bool


class World(Protocol):
    name: str                        # shown above the world's panel and in messages
    num_actions: int
    frame_shape: tuple[int, int, int]
    example_events: tuple[str, ...]  # offered on the number keys
    is_ground_truth: bool            # a ground-truth world's first frame seeds the others
    dataset_world: str               # the `world` of a dataset recorded from it

    def check_event(self, text: str) -> str | None:
        """Why `text` cannot be used as an event here, or None when it can."""

    def event_label(self, text: str) -> str:
        """The text a recording stores for accepted event `text` (e.g. a paraphrase's canonical text)."""

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        """Start an episode under `event` ("" = none), optionally from `context` [H,W,3]."""

    def step(self, action: int, event: str | None) -> StepResult:
        """One frame; `event` switches the event (None keeps it). Bad input: ValueError, no change."""


class RealExplorer:
    """The ground-truth Explorer game (`worldsim.envs.explorer`) as a play world."""

    name = "real Explorer"
    is_ground_truth = True
    dataset_world = "explorer"

    def __init__(self, size: int = 64) -> None:
        from worldsim.envs.explorer import NUM_ACTIONS, ExplorerBatch, ExplorerConfig, events

        self._events = events
        self._config = ExplorerConfig(size=size)
        self._batch_cls = ExplorerBatch
        self._game = ExplorerBatch(1, self._config, seed=0)
        self.num_actions = NUM_ACTIONS
        self.frame_shape = (size, size, 3)
        self.example_events = tuple(event_type.canonical for event_type in events.EVENT_TYPES)

    def check_event(self, text: str) -> str | None:
        try:
            self._events.parse_event(text)
        except ValueError as error:
            return str(error)
        return None

    def event_label(self, text: str) -> str:
        return self._events.parse_event(text).canonical

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


class NeuralWorld:
    """A `worldsim` world model's Simulator (batch 1) as a play world."""

    name = "neural world"
    is_ground_truth = False

    def __init__(self, world_model, seed: int = 0, steps: int | None = None) -> None:
        import torch

        self._torch = torch
        self._world_model = world_model
        self._simulator = world_model.simulator(batch_size=1, seed=seed, steps=steps)
        self.num_actions = int(world_model.config.num_actions)
        self.frame_shape = tuple(world_model.config.frame_shape)
        self.example_events = tuple(world_model.event_examples)

    def check_event(self, text: str) -> str | None:
        # The simulator validates at step time and changes nothing on a bad event.
        return None

    def event_label(self, text: str) -> str:
        return text

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        frames = self._simulator.reset(event=event, context=None if context is None else context[None])
        return frames[0].cpu().numpy()

    def step(self, action: int, event: str | None) -> StepResult:
        actions = self._torch.tensor([action], dtype=self._torch.long, device=self._world_model.device)
        frames, rewards, terminated = self._simulator.step(actions, None if event is None else [event])
        return StepResult(frames[0].cpu().numpy(), float(rewards[0]), bool(terminated[0]))
