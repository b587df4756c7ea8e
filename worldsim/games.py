"""The boundary between the engine and the games it learns: `GameSpec`.

Training, data, evaluation, play and the envs describe a game through this one object and never by
its name. A spec holds
  - `name`: the `world` a dataset of the game stores in its manifest (`title`: how text names it),
  - `action_names`: one per action index (keys and the HUD show them; their count is the action space),
  - `frame_shape`: the game's own frames, uint8 [H, W, 3] (None where only its datasets know it),
  - `events`: its event vocabulary with paraphrases (`parse_event(text)`, `training_texts()`), or
    None for a game without text events,
  - `make_dataset(out, frames, size, seed, progress)`: how to roll it out into a dataset,
  - `fps`: the pace it runs at, frames per second (its datasets and worlds share it),
  - `ground_truth(num_worlds, size, seed)`: the true game as a batched simulator (`GroundTruth`) for
    evaluation, None for a recorded game; `tile_classes` names the classes of its `tile_classes()`,
  - `play_world(size)`: the true game as a play world (`worldsim.play.worlds.World`), None for none,
  - `generate_settings(**options)`: the settings `worldsim data generate` rolls it out with (a
    `worldsim.data.generate.GenerateSettings`), None for a game that is not generated that way.

Where a spec comes from:
  - a game shipped in `worldsim.envs` exposes `GAME` in the module `worldsim.envs.<name>.game`;
  - any other name is a recorded Gymnasium env: its action names travel in the dataset's manifest
    (`generator["action_names"]`) and in a trained world's metadata (`metadata["game"]`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from worldsim.data.reader import Dataset
    from worldsim.world import WorldModel

__all__ = ["DEFAULT_GAME", "GameSpec", "GroundTruth", "shipped_game", "shipped_games", "game_for_name",
           "game_for_dataset", "game_for_world", "game_for_metadata", "default_action_names", "dataset_maker", "METADATA_KEY"]

# The game worldsim ships (its default world, the recipe's data when no dataset is given). Worlds
# that do not record their game (no metadata["game"] nor metadata["data"]["world"], e.g. those of
# WorldModel.create or saved before games were recorded) are read as worlds of this game.
DEFAULT_GAME = "explorer"
METADATA_KEY = "game"  # a trained world's metadata entry: {"name": ..., "action_names": [...]}
# (out, frames, size, seed, progress) -> the dataset written to out
DatasetMaker = Callable[[Path, int, int, int, bool], "Dataset"]


class GroundTruth(Protocol):
    """A game's true simulator, `num_worlds` worlds stepped as one batch (what the ground-truth
    measures replay scenarios in and label real frames with)."""

    terminated: np.ndarray  # bool [B]: the worlds whose episode has ended

    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Start the worlds in `mask` (all: None) on the maps of `seeds` (int64 [B])."""

    def apply_events(self, event_types: Sequence[Any]) -> None:
        """Put one event (of the game's `events`) in force per world; None leaves a world as it is."""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step of every world: (rewards float32 [B], terminated bool [B])."""

    def render(self) -> np.ndarray:
        """uint8 [B, H, W, 3]: the frame every world shows."""

    def tile_classes(self) -> np.ndarray:
        """uint8 [B, rows, cols]: the true class (index into `GameSpec.tile_classes`) of every visible tile."""

    def state(self, i: int) -> dict[str, Any]:
        """World `i`'s state: at least its player's "position" and the "events" in force per group."""


@dataclass(frozen=True)
class GameSpec:
    """What the engine may know about one game (see the module docstring)."""

    name: str
    action_names: tuple[str, ...]
    title: str = ""  # how text names the game (default: its name)
    frame_shape: tuple[int, int, int] | None = None
    events: ModuleType | None = None
    make_dataset: DatasetMaker | None = None
    fps: float | None = None
    ground_truth: Callable[[int, int, int], GroundTruth] | None = None  # (num_worlds, size, seed)
    tile_classes: tuple[str, ...] = ()
    play_world: Callable[[int], Any] | None = None  # size -> worldsim.play.worlds.World
    generate_settings: Callable[..., Any] | None = None  # options -> worldsim.data.generate.GenerateSettings

    def __post_init__(self) -> None:
        if not self.action_names:
            raise ValueError(f"game {self.name!r}: needs at least one action name")
        if len(set(self.action_names)) != len(self.action_names):
            raise ValueError(f"game {self.name!r}: action names must be distinct, got {self.action_names}")

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    @property
    def display_name(self) -> str:
        return self.title or self.name

    def to_metadata(self) -> dict[str, Any]:
        """What a trained world stores about its game (`metadata["game"]`)."""
        return {"name": self.name, "action_names": list(self.action_names)}


def default_action_names(num_actions: int) -> tuple[str, ...]:
    """Names for a game that does not name its actions: "action 0" .. "action n-1"."""
    return tuple(f"action {index}" for index in range(num_actions))


def shipped_game(name: str) -> GameSpec | None:
    """`worldsim.envs.<name>.game.GAME` when worldsim ships that game, else None."""
    if not name.isidentifier():
        return None
    module_name = f"worldsim.envs.{name}.game"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name in (f"worldsim.envs.{name}", module_name):
            return None
        raise  # the game exists but one of its own imports is missing
    return module.GAME


def shipped_games() -> list[GameSpec]:
    """Every game shipped in `worldsim.envs` (a package there with a `game` module), by name."""
    import pkgutil

    import worldsim.envs

    names = sorted(module.name for module in pkgutil.iter_modules(worldsim.envs.__path__) if module.ispkg)
    return [game for game in map(shipped_game, names) if game is not None]


def game_for_name(name: str, action_names: Sequence[str] | None = None, num_actions: int | None = None,
                  frame_shape: Sequence[int] | None = None) -> GameSpec:
    """The shipped game `name`, else a recorded game with these action names (or numbered ones)."""
    shipped = shipped_game(name)
    if shipped is not None:
        return shipped
    if action_names is None:
        if num_actions is None:
            raise ValueError(f"game {name!r} is not shipped with worldsim; its action names or count are needed")
        action_names = default_action_names(num_actions)
    from worldsim.data.record import recorded_dataset_maker

    return GameSpec(name=name, action_names=tuple(action_names),
                    frame_shape=None if frame_shape is None else tuple(frame_shape),  # type: ignore[arg-type]
                    make_dataset=recorded_dataset_maker(name))


def dataset_maker(name: str) -> DatasetMaker:
    """How to roll game `name` out into a dataset: the shipped game's own way, else recording the
    Gymnasium env of that id with the sticky-random policy."""
    shipped = shipped_game(name)
    if shipped is not None and shipped.make_dataset is not None:
        return shipped.make_dataset
    from worldsim.data.record import recorded_dataset_maker

    return recorded_dataset_maker(name)


def game_for_dataset(dataset: "Dataset") -> GameSpec:
    """The game a dataset was made from (its manifest's `world`, action names and frame size)."""
    names = dataset.manifest["generator"].get("action_names")
    game = game_for_name(dataset.world, names, dataset.num_actions, dataset.frame_shape)
    if game.num_actions != dataset.num_actions:
        raise ValueError(f"dataset of {dataset.world!r} has {dataset.num_actions} actions but the game has "
                         f"{game.num_actions} ({', '.join(game.action_names)})")
    return game


def game_for_world(world: "WorldModel") -> GameSpec:
    """The game a trained world plays (see `game_for_metadata`)."""
    return game_for_metadata(world.metadata, world.config.num_actions)


def game_for_metadata(metadata: Mapping[str, Any], num_actions: int) -> GameSpec:
    """A world's game from its metadata: `game`, else its dataset's `world`, else numbered actions."""
    entry = metadata.get(METADATA_KEY)
    if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
        names = entry.get("action_names")
        game = game_for_name(entry["name"], names if isinstance(names, list) else None, num_actions)
    else:
        data = metadata.get("data")
        name = data.get("world") if isinstance(data, Mapping) else None
        game = game_for_name(name if isinstance(name, str) else DEFAULT_GAME, num_actions=num_actions)
    if game.num_actions != num_actions:
        game = GameSpec(name="unknown", action_names=default_action_names(num_actions))
    return game

