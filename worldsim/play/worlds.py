"""World backends for play: the neural Simulator, or a game's true simulator (its
`GameSpec.play_world`), behind one small interface.

Both take one action and optionally a new event per frame and hand back a numpy frame, so the
session, the renderer and the recorder never care which kind of world they drive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from worldsim.games import GameSpec, game_for_world

if TYPE_CHECKING:
    from worldsim.world import WorldModel


@dataclass(frozen=True)
class StepResult:
    frame: np.ndarray  # uint8 [H, W, 3]
    reward: float
    terminated: bool


@dataclass(frozen=True)
class Understanding:
    """How a world reads an event text: the known event it stands for and how close it is."""

    event: str | None  # canonical text of the known event, None when the text is not understood
    similarity: float | None = None  # cosine similarity (neural worlds); None where texts are read exactly


class World(Protocol):
    name: str                        # shown above the world's panel and in messages
    num_actions: int
    action_names: tuple[str, ...]    # one per action (keys and help overlay); action 0 is the idle one
    frame_shape: tuple[int, int, int]
    example_events: tuple[str, ...]  # offered on the number keys
    event_vocabulary: tuple[str, ...]  # the event table a recording of this world starts with
    is_ground_truth: bool            # a ground-truth world's first frame seeds the others
    dataset_world: str               # the `world` of a dataset recorded from it

    def check_event(self, text: str) -> str | None:
        """Why `text` cannot be used as an event here, or None when it can."""

    def event_label(self, text: str) -> str:
        """The text a recording stores for accepted event `text` (e.g. a paraphrase's canonical text)."""

    def understand(self, text: str) -> Understanding:
        """Which known event the (non-blank) event text `text` is understood as."""

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        """Start an episode under `event` ("" = none), optionally from `context` [H,W,3]."""

    def step(self, action: int, event: str | None) -> StepResult:
        """One frame; `event` switches the event (None keeps it). Bad input: ValueError, no change."""


class NeuralWorld:
    """A `worldsim` world model's Simulator (batch 1) as a play world."""

    name = "neural world"
    is_ground_truth = False

    def __init__(self, world_model: "WorldModel", checkpoint: str, seed: int = 0,
                 steps: int | None = None) -> None:
        self._world_model = world_model
        self._simulator = world_model.simulator(batch_size=1, seed=seed, steps=steps)
        size = world_model.config.image_size
        self.num_actions = world_model.config.num_actions
        game = game_for_world(world_model)
        self.action_names = game.action_names
        self.frame_shape = (size, size, 3)
        self.example_events = example_events_for(world_model.event_texts, game)
        self.event_vocabulary = tuple(dict.fromkeys(text for text in world_model.event_texts if text))
        self.dataset_world = f"neural:{checkpoint}"

    def check_event(self, text: str) -> str | None:
        # The Simulator's own validation (string, length, token count), without stepping.
        from worldsim.sampling.inputs import check_event_text

        tokenizer = self._world_model.tokenizer
        try:
            check_event_text(text, "event", tokenizer.num_tokens, tokenizer.max_tokens)
        except ValueError as error:
            return str(error)
        return None

    def event_label(self, text: str) -> str:
        return text

    def understand(self, text: str) -> Understanding:
        understood = self._world_model.understand_event(text)
        return Understanding(understood.event, understood.similarity)

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        frames = self._simulator.reset(event=event, context=context, seed=seed)
        return frames[0].cpu().numpy()

    def step(self, action: int, event: str | None) -> StepResult:
        frames, rewards, terminated = self._simulator.step([action], None if event is None else [event])
        return StepResult(frames[0].cpu().numpy(), float(rewards[0]), bool(terminated[0]))


def example_events_for(event_texts: Sequence[str], game: GameSpec) -> tuple[str, ...]:
    """Number-key events of a neural world of `game`: the game's canonical event texts it knows, in
    the game's order; a world of a game without text events offers its own event texts instead."""
    known = set(event_texts)
    canonical = () if game.events is None else tuple(
        event.canonical for event in game.events.EVENT_TYPES if event.canonical in known)
    return canonical or tuple(dict.fromkeys(text for text in event_texts if text))
