"""The boundary between the engine and the games it learns: `GameSpec`.

Training, data, evaluation, play and the envs describe a game through this one object and never by
its name. A spec holds
  - `name`: the `world` a dataset of the game stores in its manifest (`title`: how text names it),
  - `action_names`: one per action index (keys and the HUD show them; their count is the action space),
  - `frame_shape`: the game's own frames, uint8 [H, W, 3] (None where only its datasets know it),
  - `events`: its event vocabulary with paraphrases (`parse_event(text)`, `training_texts()`), or
    None for a game without text events,
  - `make_dataset(out, frames, size, seed, progress)`: how to roll it out into a dataset, and
  - `ground_truth`: a factory of the true game for evaluation, None for a recorded game.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worldsim.data.reader import Dataset
    from worldsim.world import WorldModel

__all__ = ["DEFAULT_GAME", "GameSpec", "shipped_game", "game_for_name", "game_for_dataset", "game_for_world",
           "game_for_metadata", "default_action_names", "dataset_maker", "METADATA_KEY"]

# The game worldsim ships (its default world, the recipe's data when no dataset is given). Worlds
# that do not record their game (no metadata["game"] nor metadata["data"]["world"], e.g. those of
# WorldModel.create or saved before games were recorded) are read as worlds of this game.
DEFAULT_GAME = "explorer"
METADATA_KEY = "game"  # a trained world's metadata entry: {"name": ..., "action_names": [...]}
# (out, frames, size, seed, progress) -> the dataset written to out
DatasetMaker = Callable[[Path, int, int, int, bool], "Dataset"]


@dataclass(frozen=True)
class GameSpec:
    """What the engine may know about one game (see the module docstring)."""

    name: str
    action_names: tuple[str, ...]
    title: str = ""  # how text names the game (default: its name)
    frame_shape: tuple[int, int, int] | None = None
    events: ModuleType | None = None
    make_dataset: DatasetMaker | None = None
    ground_truth: Callable[..., Any] | None = None

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

