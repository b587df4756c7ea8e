"""The Explorer as the engine sees it: its `GameSpec` (worldsim.games)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worldsim.games import GameSpec

from . import events
from .batch import ACTIONS, FPS, ExplorerBatch, ExplorerConfig
from .dataset import WORLD, GenerateConfig
from .terrain import TILE_CLASSES

if TYPE_CHECKING:
    from worldsim.data.reader import Dataset
    from worldsim.play.worlds import World

NAME = WORLD


def make_dataset(out: Path, frames: int, size: int, seed: int, progress: bool) -> "Dataset":
    """Explorer data as `worldsim data generate` makes it (exploration policy, event switches)."""
    from worldsim.data.generate import generate

    config = GenerateConfig(frames=frames, seed=seed, size=size, shard_frames=min(8192, frames))
    return generate(out, config, progress=progress)


def ground_truth(num_worlds: int, size: int = 64, seed: int = 0) -> ExplorerBatch:
    """`num_worlds` Explorer worlds of size x size frames, stepped as one batch."""
    return ExplorerBatch(num_worlds, ExplorerConfig(size=size), seed=seed)


def play_world(size: int = 64) -> "World":
    from .play import RealExplorer

    return RealExplorer(size=size)


GAME = GameSpec(name=NAME, title="Explorer", action_names=tuple(ACTIONS), frame_shape=(64, 64, 3), events=events,
                make_dataset=make_dataset, fps=float(FPS), ground_truth=ground_truth,
                tile_classes=tuple(TILE_CLASSES), play_world=play_world, generate_settings=GenerateConfig)
