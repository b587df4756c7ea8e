"""The Explorer as the engine sees it: its `GameSpec` (worldsim.games)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worldsim.games import GameSpec

from . import events
from .batch import ACTIONS, ExplorerBatch

if TYPE_CHECKING:
    from worldsim.data.reader import Dataset

NAME = "explorer"


def make_dataset(out: Path, frames: int, size: int, seed: int, progress: bool) -> "Dataset":
    """Explorer data as `worldsim data generate` makes it (exploration policy, event switches)."""
    from worldsim.data.explorer_rollout import GenerateConfig
    from worldsim.data.generate import generate

    config = GenerateConfig(frames=frames, seed=seed, size=size, shard_frames=min(8192, frames))
    return generate(out, config, progress=progress)


GAME = GameSpec(name=NAME, title="Explorer", action_names=tuple(ACTIONS), frame_shape=(64, 64, 3), events=events,
                make_dataset=make_dataset, ground_truth=ExplorerBatch)
