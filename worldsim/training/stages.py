"""The registry of training stages and `run_stage`, the one way every stage is started."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldsim.training.config import load_config

if TYPE_CHECKING:
    from worldsim.training.trainer import TrainSummary

__all__ = ["STAGES", "GENERATOR_STAGES", "stage_classes", "build_config", "run_stage"]

# stage name -> (module, config class, stage class), in the order the recipe runs them
STAGES: dict[str, tuple[str, str, str]] = {
    "autoencoder": ("worldsim.training.autoencoder", "AutoencoderConfig", "AutoencoderStage"),
    "teacher": ("worldsim.training.teacher", "TeacherConfig", "TeacherStage"),
    "reader": ("worldsim.training.history_reader", "ReaderConfig", "ReaderStage"),
    "ar-teacher": ("worldsim.training.ar_teacher", "ARTeacherConfig", "ARTeacherStage"),
    "causal-cd": ("worldsim.training.causal_cd", "CausalCDConfig", "CausalCDStage"),
    "dmd": ("worldsim.training.dmd", "DMDConfig", "DMDStage"),
    "stream": ("worldsim.training.stream", "StreamConfig", "StreamStage"),
    "delta": ("worldsim.training.delta", "DeltaConfig", "DeltaStage"),
    "rolling": ("worldsim.training.rolling", "RollingConfig", "RollingStage"),
    "reward": ("worldsim.training.reward", "RewardStageConfig", "RewardStage"),
    "events": ("worldsim.training.events", "EventsConfig", "EventsStage"),
}


# the stages that train a world's generator (the transformer that makes the frames)
GENERATOR_STAGES = ("ar-teacher", "causal-cd", "dmd", "stream", "delta", "rolling")


def stage_classes(name: str) -> tuple[type, type]:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    module_name, config_name, stage_name = STAGES[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, stage_name)


def build_config(name: str, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The stage's config: dataclass defaults, then the file, then `key=value` overrides."""
    config_class, _ = stage_classes(name)
    return load_config(config_class, path, overrides)


def run_stage(name: str, config: Any, out_dir: str | Path, resume: bool = False) -> "TrainSummary":
    """Seed, build and train one stage into `out_dir` (its result is `out_dir/final`)."""
    # imported here so that `worldsim --help` (which lists STAGES) does not import torch
    from worldsim.training.distributed import init_distributed
    from worldsim.training.trainer import seed_everything, train

    _, stage_class = stage_classes(name)
    context = init_distributed(config.device)
    seed_everything(config.seed, context.rank)
    stage = stage_class(config, context)
    return train(stage, config, Path(out_dir), context, resume=resume)
