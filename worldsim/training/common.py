"""What the stage modules share: the stage config base, world and dataset I/O, small helpers.

Every stage reads a world folder (`init`, the previous stage's `final/`) and writes one
(`<out>/final`, via `WorldModel.save_pretrained`), so any stage's result loads with
`worldsim.load(path)` and the chain can be evaluated stage by stage. The training history (one
record per stage: steps, wall time, throughput, first and last loss) travels in the world's
metadata under `"training"`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from worldsim.model import WorldConfig
from worldsim.training.config import ConfigError, TrainConfig

if TYPE_CHECKING:
    from worldsim.training.trainer import TrainSummary
    from worldsim.world import WorldModel

__all__ = [
    "StageConfig",
    "load_world",
    "save_world",
    "world_config_for",
    "with_new_transformer",
    "freeze",
    "ema_decay_at",
    "sample_sigma",
]


@dataclass
class StageConfig(TrainConfig):
    """Fields of every stage that trains on a dataset and a world."""

    data: str = ""  # dataset folder
    init: str = ""  # world folder to start from (the previous stage's <out>/final)
    ema_decay: float = 0.0  # > 0 keeps an EMA of the trained network and saves it

    def validate(self) -> None:
        super().validate()
        if not self.data:
            raise ConfigError("data: set the dataset folder (--data DIR or --set data=DIR)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def require_init(self, what: str) -> None:
        if not self.init:
            raise ConfigError(f"init: set the world folder to start from ({what})")


def load_world(path: str, device: torch.device) -> "WorldModel":
    """A world folder (or any name `worldsim.load` resolves) on `device`, in training mode."""
    from worldsim.world import WorldModel

    return WorldModel.from_pretrained(path, device=str(device))


def with_new_transformer(world: "WorldModel", overrides: dict[str, Any], seed: int = 0) -> "WorldModel":
    """`world` with a freshly initialised transformer of its config plus `overrides` (dotted
    ``transformer.*`` keys), sharing every other network: a new generator design on a trained
    autoencoder and event encoder."""
    from worldsim.model import CausalTransformer
    from worldsim.world import WorldModel

    foreign = sorted(key for key in overrides if not key.startswith("transformer."))
    if foreign:
        raise ConfigError(f"{foreign[0]}: only transformer.* keys may change here")
    config = world.config.with_overrides(overrides)
    torch.manual_seed(seed)
    transformer = CausalTransformer(config.transformer).to(world.device)
    return WorldModel(config, world.autoencoder, transformer, world.tokenizer, world.event_encoder,
                      world.reward_model, world.context_frames, world.event_texts, dict(world.metadata))


def save_world(world: "WorldModel", out_dir: Path, summary: "TrainSummary", **metadata: Any) -> None:
    """Save `world` with this stage's record appended to its training history."""
    history = list(world.metadata.get("training", []))
    history.append({
        "stage": summary.stage, "steps": summary.steps, "wall_time_s": summary.wall_time_s,
        "samples_per_s": summary.samples_per_s, "first_loss": summary.first_loss,
        "last_loss": summary.last_loss, **metadata,
    })
    world.metadata["training"] = history
    world.save_pretrained(out_dir)


def world_config_for(size: str, image_size: int) -> WorldConfig:
    """The `size` preset, resized to the dataset's frames (latents stay image_size / downsample)."""
    config = WorldConfig.preset(size)
    if config.image_size == image_size:
        return config
    downsample = config.autoencoder.downsample
    if image_size % downsample:
        raise ConfigError(f"frames of {image_size} px are not divisible by the autoencoder's {downsample}x downsampling")
    latent = image_size // downsample
    return config.with_overrides({
        "image_size": image_size, "autoencoder.image_size": image_size,
        "transformer.latent_size": latent, "reward.latent_size": latent,
    })


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode, no gradients: a network that is only read (teacher, autoencoder)."""
    module.eval()
    module.requires_grad_(False)
    return module


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with warm-up: `min(decay, (1 + step) / (10 + step))`, so short runs still move it."""
    return min(decay, (1 + step) / (10 + step))


def sample_sigma(shape: tuple[int, ...], shift: float, device: torch.device,
                 low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Noise levels uniform in [low, high] before the schedule's shift (the levels sampling uses).

    Stratified over the batch: row b of B draws from the b-th of B equal slices of [0, 1), so every
    batch covers the whole schedule. Each level is still uniform, and the loss of a small batch
    varies far less from step to step.
    """
    from worldsim.model import flow

    batch = shape[0]
    offset = torch.arange(batch, device=device, dtype=torch.float32).view(batch, *([1] * (len(shape) - 1)))
    uniform = (offset + torch.rand(shape, device=device)) / batch
    return flow.shift_sigma(low + (high - low) * uniform, shift)
