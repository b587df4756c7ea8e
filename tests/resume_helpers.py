"""A stage run straight and the same run killed after a checkpoint, then resumed (no tests in here)."""
from __future__ import annotations

from pathlib import Path

import pytest

from worldsim.training import stages
from worldsim.training.distributed import DistributedContext
from worldsim.training.trainer import TrainSummary, seed_everything, train


def straight_and_resumed(stage: str, config, out: Path, kill_at_step: int) -> tuple[TrainSummary, TrainSummary]:
    """Summaries of `stage` run straight into `out/straight` and run into `out/killed` with a
    KeyboardInterrupt at step `kill_at_step` (after a checkpoint), then resumed to the end."""
    straight = stages.run_stage(stage, config, out / "straight")
    seed_everything(config.seed)
    _, stage_class = stages.stage_classes(stage)
    crashing = stage_class(config, DistributedContext())
    original = crashing.train_step

    def train_step(step):
        if step == kill_at_step:
            raise KeyboardInterrupt("killed")
        return original(step)

    crashing.train_step = train_step
    with pytest.raises(KeyboardInterrupt):
        train(crashing, config, out / "killed")
    return straight, stages.run_stage(stage, config, out / "killed", resume=True)
