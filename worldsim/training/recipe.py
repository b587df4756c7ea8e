"""`worldsim train recipe`: a chain of training stages, ending in a Hub-ready world folder.

    full:      autoencoder → events → teacher → ar-teacher → causal-cd → dmd → stream → delta → rolling → reward
    playable:  autoencoder → events → ar-teacher → reward

The playable chain is what the CPU-trained default world ships: its generator is the teacher-
forcing AR model, sampled frame by frame in 2 steps. The full chain distils it further (Causal
Forcing++, Self Forcing, streaming, Delta Forcing, Rolling Forcing). Each stage starts from the
previous one's `final/` world (the DMD family also reads the bidirectional teacher's) and writes
its own; the recipe's result `<out>/world` is the last one
with a few real start frames (context frames) and the training record for the model card: data,
per-stage steps, wall time, throughput and first/last loss, hardware and total wall time.

Presets `tiny` (CPU, minutes; 32 px frames), `compact` (the shipped default, trained on 2 CPU
cores), `small` (the default size on a GPU) and `base` set every
stage's length and batch; any key can still be changed (`--set teacher.steps=500`). Without
`--data`, the dataset is generated from the world into `<out>/data` first. With `--resume`,
finished stages are skipped and an interrupted one continues from its checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.games import DEFAULT_GAME
from worldsim.training.ar_teacher import ARTeacherConfig
from worldsim.training.autoencoder import AutoencoderConfig
from worldsim.training.causal_cd import CausalCDConfig
from worldsim.training.checkpoint import atomic_write_json
from worldsim.training.config import ConfigError, load_config
from worldsim.training.delta import DeltaConfig
from worldsim.training.distribution_matching import DMDSettings
from worldsim.training.dmd import DMDConfig
from worldsim.training.events import EventsConfig
from worldsim.training.reward import RewardStageConfig
from worldsim.training.rolling import RollingConfig
from worldsim.training.stages import GENERATOR_STAGES
from worldsim.training.stream import StreamConfig
from worldsim.training.teacher import TeacherConfig

__all__ = ["RecipeConfig", "RecipeResult", "RECIPE_STAGES", "recipe_preset", "build_recipe_config", "run_recipe"]

# (stage name, RecipeConfig field), in the order the full chain runs them
RECIPE_STAGES: tuple[tuple[str, str], ...] = (
    ("autoencoder", "autoencoder"), ("events", "events"), ("teacher", "teacher"), ("ar-teacher", "ar_teacher"),
    ("causal-cd", "causal_cd"), ("dmd", "dmd"), ("stream", "stream"), ("delta", "delta"),
    ("rolling", "rolling"), ("reward", "reward"),
)
# Each stage starts from the final world of the stage before it in its chain.
CHAINS: dict[str, tuple[str, ...]] = {
    "full": tuple(stage for stage, _ in RECIPE_STAGES),
    "playable": ("autoencoder", "events", "ar-teacher", "reward"),
}
USES_TEACHER = ("dmd", "stream", "delta", "rolling")
RECIPE_SIZES = ("tiny", "compact", "small", "base")


@dataclass
class RecipeConfig:
    """The chain's settings. The recipe sets each stage's data, init, teacher, size, seed, device,
    precision and progress itself; everything else is the stage's own config."""

    size: str = "tiny"  # tiny | compact | small | base
    chain: str = "full"  # full | playable (see the module docstring)
    world: str = DEFAULT_GAME  # game rolled out into <out>/data when `data` is empty (its GameSpec.make_dataset)
    data: str = ""  # an existing dataset folder (empty: generate one into <out>/data)
    data_frames: int = 4096
    image_size: int = 32
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    progress: bool = True
    context_frames: int = 8  # real start frames shipped with the world
    name: str = ""  # model card title (default: worldsim-<world>-<size>)
    # The generator stage whose transformer and event encoder the world ships (empty: the chain's
    # last one). Lets the evaluation pick the stage when a later one measured worse.
    ship_generator: str = ""
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    # A new world's event vectors are free: nothing has been trained on them yet.
    events: EventsConfig = field(default_factory=lambda: EventsConfig(targets="learned"))
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    ar_teacher: ARTeacherConfig = field(default_factory=ARTeacherConfig)
    causal_cd: CausalCDConfig = field(default_factory=CausalCDConfig)
    dmd: DMDConfig = field(default_factory=DMDConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    delta: DeltaConfig = field(default_factory=DeltaConfig)
    rolling: RollingConfig = field(default_factory=RollingConfig)
    reward: RewardStageConfig = field(default_factory=RewardStageConfig)

    def validate(self) -> None:
        if self.size not in RECIPE_SIZES:
            raise ConfigError(f"size must be one of {', '.join(RECIPE_SIZES)}, got {self.size!r}")
        if self.chain not in CHAINS:
            raise ConfigError(f"chain must be one of {', '.join(CHAINS)}, got {self.chain!r}")
        if not self.world and not self.data:
            raise ConfigError("set data (a dataset folder) or world (a game to roll out into <out>/data)")
        generators = self.generator_stages
        if self.ship_generator and self.ship_generator not in generators:
            raise ConfigError(f"ship_generator must be one of {', '.join(generators)} (the {self.chain} chain's "
                              f"generator stages), got {self.ship_generator!r}")
        if self.data_frames <= 0 or self.image_size <= 0 or self.context_frames < 0:
            raise ConfigError("data_frames and image_size must be positive, context_frames >= 0")


    @property
    def stages(self) -> tuple[str, ...]:
        return CHAINS[self.chain]

    def stages_for(self, has_events: bool) -> tuple[str, ...]:
        """The chain's stages for a dataset: without event texts there is no event encoder to train."""
        return self.stages if has_events else tuple(stage for stage in self.stages if stage != "events")

    @property
    def generator_stages(self) -> tuple[str, ...]:
        return tuple(stage for stage in self.stages if stage in GENERATOR_STAGES)


def _set(config: Any, **values: Any) -> Any:
    return dataclasses.replace(config, **values)


def recipe_preset(size: str) -> RecipeConfig:
    """Stage lengths and batches for a model size."""
    if size == "tiny":
        # minutes on 2 CPU cores: 32 px frames, a few dozen steps per stage. The distribution-
        # matching stages move the generator slowly and the critic fast, so the critic keeps up.
        critic = DMDSettings(critic_lr=1e-3, critic_steps=4)
        stream = dict(frames=2, chunks=3, overlap_frames=1, batch_size=4, steps=10, lr=1e-5, log_every=2, dmd=critic)
        return RecipeConfig(
            size="tiny", data_frames=2048, image_size=32, context_frames=4,
            autoencoder=AutoencoderConfig(steps=100, batch_size=32, lr=2e-3, log_every=10, scale_frames=256,
                                          eval_frames=128),
            events=EventsConfig(targets="learned", steps=30, batch_size=32, log_every=10),
            teacher=TeacherConfig(steps=60, batch_size=8, clip_frames=6, lr=1e-3, warmup_steps=10,
                                  ema_decay=0.9, log_every=5),
            ar_teacher=ARTeacherConfig(steps=40, batch_size=8, clip_frames=6, lr=1e-3, warmup_steps=0,
                                       ema_decay=0.9, log_every=5),
            causal_cd=CausalCDConfig(steps=30, batch_size=8, clip_frames=6, lr=3e-4, ema_decay=0.9, log_every=3),
            dmd=DMDConfig(steps=18, batch_size=8, frames=4, lr=1e-5, log_every=3, dmd=critic),
            stream=StreamConfig(**stream),
            delta=DeltaConfig(**stream),
            # rolling windows only: a 10-step run is too short for the critic to fit two rollout kinds
            rolling=RollingConfig(steps=10, batch_size=4, frames=6, window=3, overlap_frames=1, lr=1e-5,
                                  log_every=2, plain_prob=0.0, dmd=critic),
            reward=RewardStageConfig(steps=40, batch_size=32, lr=1e-3, log_every=5),
        )
    if size == "compact":
        # The shipped default world on 2 CPU cores: the playable chain, each stage as long as it was
        # measured to need (configs/autoencoder-compact.toml, configs/ar-teacher-compact.toml). With
        # chain=full, the DMD family runs only long enough to move the few-step student.
        critic = DMDSettings(critic_lr=2e-4, critic_steps=2)
        stream = dict(frames=4, chunks=6, overlap_frames=2, batch_size=2, steps=60, lr=1e-5, log_every=5, dmd=critic)
        return RecipeConfig(
            size="compact", chain="playable", data_frames=200_000, image_size=64, context_frames=8,
            autoencoder=AutoencoderConfig(size="compact", steps=10000, batch_size=8, lr=2e-3, warmup_steps=100,
                                          final_lr_fraction=0.02, log_every=50, checkpoint_every=500),
            events=EventsConfig(targets="learned", log_every=50),
            teacher=TeacherConfig(steps=2000, batch_size=8, clip_frames=8, lr=5e-4, warmup_steps=100,
                                  ema_decay=0.995, log_every=25),
            ar_teacher=ARTeacherConfig(steps=2500, batch_size=8, clip_frames=8, lr=2e-3, warmup_steps=100,
                                       ema_decay=0.995, context_noise=0.1, loss_weight="uniform",
                                       train_events=False, log_every=25, diagnose_every=250),
            causal_cd=CausalCDConfig(steps=300, batch_size=8, clip_frames=8, lr=1e-4, ema_decay=0.99, log_every=10),
            dmd=DMDConfig(steps=150, batch_size=4, frames=8, lr=1e-5, log_every=5, dmd=critic),
            stream=StreamConfig(**stream),
            delta=DeltaConfig(**stream),
            rolling=RollingConfig(steps=60, batch_size=2, frames=12, window=4, overlap_frames=2, lr=1e-5,
                                  log_every=5, dmd=critic),
            reward=RewardStageConfig(steps=600, batch_size=64, lr=1e-3, log_every=25),
        )
    if size == "small":
        return RecipeConfig(size="small", data_frames=200_000, image_size=64)
    if size == "base":
        config = RecipeConfig(size="base", data_frames=1_000_000, image_size=64)
        longer = {"teacher": 2, "ar_teacher": 2, "causal_cd": 2, "dmd": 2, "stream": 2, "delta": 2, "rolling": 2}
        for key, factor in longer.items():
            stage = getattr(config, key)
            setattr(config, key, _set(stage, steps=stage.steps * factor))
        return config
    raise ConfigError(f"size must be one of {', '.join(RECIPE_SIZES)}, got {size!r}")


def build_recipe_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RecipeConfig:
    """The preset named by `size` (default tiny), then the file, then `key=value` overrides."""
    sizes = [item.partition("=")[2] for item in overrides if item.partition("=")[0] == "size"]
    if path is not None and not sizes:
        sizes = [load_config(RecipeConfig, path).size]
    return load_config(RecipeConfig, path, overrides, base=recipe_preset(sizes[-1] if sizes else "tiny"))


@dataclass
class RecipeResult:
    world_dir: Path
    wall_time_s: float
    stages: list[dict[str, Any]]


def _machine() -> dict[str, Any]:
    """The model card's short hardware entry (`worldsim.data.machine.describe_machine` is the long one)."""
    from worldsim.data.machine import cpu_model

    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
               "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return machine


def _dataset(config: RecipeConfig, out: Path) -> str:
    if config.data:
        return config.data
    from worldsim.games import dataset_maker

    folder = out / "data"
    dataset_maker(config.world)(folder, config.data_frames, config.image_size, config.seed, config.progress)
    return str(folder)


def stage_config(config: RecipeConfig, stage: str, field_name: str, data: str, stages_dir: Path,
                 chain: tuple[str, ...] | None = None) -> Any:
    """A stage's config with the recipe's shared settings filled in, validated (`chain`: the stages
    this run trains, default the config's chain)."""
    chain = config.stages if chain is None else chain
    values: dict[str, Any] = dict(data=data, seed=config.seed, device=config.device, precision=config.precision,
                                  progress=config.progress)
    if stage == "autoencoder":
        values["size"] = config.size
    else:
        previous = chain[chain.index(stage) - 1]
        values["init"] = str(stages_dir / previous / "final")
    if stage in USES_TEACHER:
        values["teacher"] = str(stages_dir / "teacher" / "final")
    stage_cfg = _set(getattr(config, field_name), **values)
    stage_cfg.validate()
    return stage_cfg


def _context_frames(data: str, count: int) -> np.ndarray:
    """The first frames of the first `count` episodes: real start frames for `Simulator.reset`."""
    from worldsim.data import Dataset

    dataset = Dataset(data)
    frames: list[np.ndarray] = []
    for position in range(dataset.num_shards):
        shard = dataset.load_shard(position)
        starts = np.flatnonzero(np.r_[True, shard.episode[1:] != shard.episode[:-1]])
        frames += [shard.frames[i] for i in starts[: count - len(frames)]]
        if len(frames) >= count:
            break
    return np.stack(frames) if frames else np.zeros((0, *dataset.frame_shape), np.uint8)


def _title(game_name: str) -> str:
    """A game name as a model name part: "ALE/Breakout-v5" -> "ale-breakout-v5"."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in game_name.lower()).strip("-")


def _take_generator(world: Any, source: Any) -> None:
    """Put `source`'s transformer and event encoder into `world` (same config and tokenizer: one chain)."""
    if source.config.to_dict() != world.config.to_dict():
        raise ConfigError("the chosen generator stage's world has another config than the recipe's result")
    world.transformer.load_state_dict(source.transformer.state_dict())
    world.event_encoder.load_state_dict(source.event_encoder.state_dict())


def run_recipe(config: RecipeConfig, out_dir: str | Path, resume: bool = False) -> RecipeResult:
    """Run every stage into `<out>/stages/<stage>` and write the world to `<out>/world`."""
    from worldsim.training.stages import run_stage
    from worldsim.world import WorldModel

    out = Path(out_dir)
    stages_dir = out / "stages"
    if stages_dir.exists() and any(stages_dir.iterdir()) and not resume:
        raise ConfigError(f"{out} already holds a recipe run; pass --resume to continue it or choose another --out")
    started = time.perf_counter()
    data = _dataset(config, out)
    from worldsim.data import Dataset
    from worldsim.games import game_for_dataset

    dataset = Dataset(data)
    game = game_for_dataset(dataset)
    chain = config.stages_for(has_events=bool(dataset.event_texts))
    records = []
    fields = dict(RECIPE_STAGES)
    for stage in chain:
        field_name = fields[stage]
        stage_out = stages_dir / stage
        summary_file = stage_out / "summary.json"
        if not summary_file.is_file():
            run_stage(stage, stage_config(config, stage, field_name, data, stages_dir, chain), stage_out,
                      resume=resume)
        records.append(json.loads(summary_file.read_text()))
    world = WorldModel.from_pretrained(str(stages_dir / chain[-1] / "final"))
    generator_stage = config.ship_generator or config.generator_stages[-1]
    if config.ship_generator:
        _take_generator(world, WorldModel.from_pretrained(str(stages_dir / generator_stage / "final")))
    world.context_frames = torch.from_numpy(_context_frames(data, config.context_frames))
    # training time summed over stages (a resumed stage counts its time before the kill too)
    wall_time = round(sum(record["wall_time_s"] for record in records), 1)
    world.metadata.update({
        "name": config.name or f"worldsim-{_title(game.name)}-{config.size}",
        "game": game.to_metadata(),
        "recipe": {"size": config.size, "chain": config.chain, "stages": [r["stage"] for r in records],
                   "generator_stage": generator_stage,
                   "train_wall_time_s": wall_time,
                   "this_run_wall_time_s": round(time.perf_counter() - started, 1)},
        "data": {"world": dataset.world, "frames": len(dataset), "frame_shape": list(dataset.frame_shape),
                 "generated": not config.data},
        "hardware": _machine(),
    })
    world.metadata.pop("role", None)
    world_dir = world.save_pretrained(out / "world")
    atomic_write_json(out / "recipe.json", {"world": str(world_dir), "wall_time_s": wall_time, "stages": records,
                                            "machine": world.metadata["hardware"]})
    return RecipeResult(world_dir, wall_time, records)
