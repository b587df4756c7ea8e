"""Stage `autoencoder`: the frame autoencoder, trained first and then frozen.

Creates a new world of the chosen size for the dataset's frames, trains its autoencoder on
single frames with `reconstruction_loss` (L1 + L2 + an edge term that keeps tile borders sharp)
plus `worst_pixels_loss`, the squared error of each frame's worst pixels: sprites (player, enemy,
coin) cover a few dozen of a frame's 4096 pixels, so a frame-wide mean lets the decoder average
them away, while the worst pixels are exactly where they are. The learning rate follows a cosine
from `lr` down to `lr * final_lr_fraction`. Afterwards it sets `latent_scale` from the data so the
transformer sees unit-variance latents, and reports the reconstruction PSNR on frames drawn with a
separate seed (a quick check, not a held-out score: `python -m worldsim.eval.reconstruction`
measures per event and per tile class on held-out maps).
The rest of the world (transformer, event encoder, reward model) is freshly initialised here and
trained by the later stages; the event tokenizer is built from the training texts.
With `init` set, the stage fine-tunes that world's autoencoder instead (its size wins over
`size`), e.g. with `dark_pixels_loss` on, which weights errors up where the frame is dark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from worldsim.data import Dataset
from worldsim.model import to_pixels
from worldsim.training import losses
from worldsim.training.batches import ClipStream
from worldsim.training.common import StageConfig, load_world, save_world, world_config_for
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.event_conditioning import training_texts_for
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

if TYPE_CHECKING:
    from worldsim.world import WorldModel

__all__ = ["AutoencoderConfig", "AutoencoderStage", "worst_pixels_loss", "dark_pixels_loss", "cosine_lr_factor"]


@dataclass
class AutoencoderConfig(StageConfig):
    size: str = "small"  # world preset: tiny | compact | small | base
    steps: int = 10000
    # Small batches, many steps: at equal CPU time, 8 frames a step reconstruct far better than 32.
    batch_size: int = 8
    lr: float = 2e-3
    edge_weight: float = 0.5
    worst_pixels_weight: float = 1.0  # weight of worst_pixels_loss (0 = off)
    worst_pixels_fraction: float = 0.02  # share of each frame's pixels it covers (~5 sprite tiles at 64 px)
    dark_weight: float = 0.0  # weight of dark_pixels_loss (0 = off)
    dark_floor: float = 0.25  # brightness added before dividing: a black pixel weighs ((1 + f) / f)² as much as white
    final_lr_fraction: float = 0.02  # cosine decay from lr to lr * this at the last step (1 = constant)
    scale_frames: int = 512  # frames used to fit latent_scale
    eval_frames: int = 256  # frames for the reported PSNR

    def validate(self) -> None:
        super().validate()
        if self.scale_frames <= 1 or self.eval_frames <= 0:
            raise ConfigError("scale_frames must be > 1 and eval_frames positive")
        if self.worst_pixels_weight < 0 or not 0 < self.worst_pixels_fraction <= 1:
            raise ConfigError("worst_pixels_weight must be >= 0 and worst_pixels_fraction in (0, 1]")
        if self.dark_weight < 0 or self.dark_floor <= 0:
            raise ConfigError("dark_weight must be >= 0 and dark_floor positive")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ConfigError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}")


def worst_pixels_loss(recon: Tensor, target: Tensor, fraction: float) -> Tensor:
    """Mean squared error (over channels) of the worst `fraction` of each image's pixels, a scalar.

    Pixels are `[N, 3, H, W]`; at least one pixel per image counts.
    """
    if recon.shape != target.shape or recon.ndim != 4:
        raise ValueError(f"recon {tuple(recon.shape)} and target {tuple(target.shape)} must be equal [N, 3, H, W]")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    errors = (recon - target).pow(2).mean(dim=1).flatten(1)
    count = max(1, int(fraction * errors.shape[1]))
    return errors.topk(count, dim=1).values.mean()


def dark_pixels_loss(recon: Tensor, target: Tensor, floor: float) -> Tensor:
    """Squared error weighted up where the target is dark, a scalar: weight `((1 + f) / (b + f))²`
    with `b` the target pixel's brightness in [0, 1] (1 on white, `((1 + f) / f)²` on black).

    At night far from the lantern, tiles that differ in daylight differ by a few levels only, so
    an error that is small in absolute terms already makes them read as another tile.
    """
    if recon.shape != target.shape or recon.ndim != 4:
        raise ValueError(f"recon {tuple(recon.shape)} and target {tuple(target.shape)} must be equal [N, 3, H, W]")
    brightness = (target.mean(dim=1, keepdim=True) + 1) / 2
    weight = ((1 + floor) / (brightness + floor)).pow(2)
    return (weight * (recon - target).pow(2)).mean()


def cosine_lr_factor(step: int, total_steps: int, final_fraction: float) -> float:
    """Learning-rate multiplier at `step` of `total_steps`: 1 at the start, `final_fraction` at the last step."""
    progress = min(1.0, step / max(1, total_steps - 1))
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


class AutoencoderStage:
    name = "autoencoder"

    def __init__(self, config: AutoencoderConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        height, width, _ = self.dataset.frame_shape
        if height != width:
            raise ConfigError(f"{config.data}: frames must be square, got {height}x{width}")
        if config.init:  # fine-tune an existing world's autoencoder (its size, not `size`)
            self.world = load_world(config.init, context.device)
            if self.world.config.image_size != height:
                raise ConfigError(f"{config.init}: the world's frames are {self.world.config.image_size} px, "
                                  f"the dataset's {height} px")
        else:
            self.world = self._new_world(config, height, context)
        self.world.metadata["data"] = {"path": str(config.data), "world": self.dataset.world,
                                       "frames": len(self.dataset)}
        self.autoencoder = self.world.autoencoder.train()
        self.optimizer = make_adamw(self.autoencoder.parameters(), config)
        self.frames = ClipStream(self.dataset, 1, config.batch_size, config.seed, context.rank,
                                 label_boost=config.label_boost)
        self.samples_per_step = config.batch_size

    def _new_world(self, config: AutoencoderConfig, image_size: int, context: DistributedContext) -> "WorldModel":
        from worldsim.world import WorldModel

        world_config = world_config_for(config.size, image_size)
        if world_config.num_actions != self.dataset.num_actions:
            world_config = world_config.with_overrides({
                "num_actions": self.dataset.num_actions,
                "transformer.num_actions": self.dataset.num_actions,
                "reward.num_actions": self.dataset.num_actions,
            })
        texts = training_texts_for(self.dataset.event_texts, self.dataset.world)
        return WorldModel.create(world_config, event_texts=texts, seed=config.seed, device=str(context.device))

    def modules(self):
        return {"autoencoder": self.autoencoder}

    def optimizers(self):
        return {"autoencoder": self.optimizer}

    def _pixels(self, clip) -> torch.Tensor:
        return to_pixels(clip.frames, device=self.context.device)

    def train_step(self, step: int) -> dict[str, float]:
        # The trainer has just set each group's rate (warm-up included); decay it on top.
        decay = cosine_lr_factor(step, self.config.steps, self.config.final_lr_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] *= decay
        pixels = self._pixels(self.frames.batch(step))
        recon = self.autoencoder.decode(self.autoencoder.encode(pixels))
        loss = losses.reconstruction_loss(recon, pixels, self.config.edge_weight)
        if self.config.worst_pixels_weight:
            loss = loss + self.config.worst_pixels_weight * worst_pixels_loss(
                recon, pixels, self.config.worst_pixels_fraction)
        if self.config.dark_weight:
            loss = loss + self.config.dark_weight * dark_pixels_loss(recon, pixels, self.config.dark_floor)
        optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        return {"loss": loss.item(), "psnr": losses.psnr(recon.detach().clamp(-1, 1), pixels).mean().item()}

    def _sample_pixels(self, count: int, seed: int) -> torch.Tensor:
        clips = self.dataset.clips(1, count, seed=seed)
        return self._pixels(next(clips))

    @torch.no_grad()
    def evaluate_psnr(self, pixels: torch.Tensor) -> float:
        self.autoencoder.eval()
        values = [losses.psnr(self.autoencoder.decode(self.autoencoder.encode(part)).clamp(-1, 1), part)
                  for part in pixels.split(64)]
        return torch.cat(values).mean().item()

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.autoencoder.eval()
        # separate seeds from the training order's (but the same dataset)
        scale = self.autoencoder.fit_latent_scale(self._sample_pixels(self.config.scale_frames, 10**9 + 7))
        psnr = self.evaluate_psnr(self._sample_pixels(self.config.eval_frames, 10**9 + 9))
        self.world.metadata["autoencoder_psnr_db"] = round(psnr, 3)
        save_world(self.world, out_dir, summary, psnr_db=round(psnr, 3),
                   latent_scale=[round(v, 5) for v in scale.tolist()])
