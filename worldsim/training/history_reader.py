"""Stage `reader`: the local path's history reader, trained alone on its own regression.

The reader (model.local_path.HistoryReader) guesses the next latent from the local path's
predecessors and the action; the stem of the frame being denoised reads that guess as input. It
is trained here, apart from the rest of the network, because what it must learn is the part of
the past the flow-matching loss hardly teaches: an Explorer enemy's way is only in frames t-4 and
t-5, and a teacher trained for hundreds of steps still reads those frames with near-zero weights,
while this regression of the next latent learns the patrol in a few thousand cheap steps (no
transformer runs here). Then an `ar-teacher` run teaches the stem to use the guess.

    worldsim train reader --data data/explorer-walls --set init=WORLD --set steps=3000

A world without a reader gets one (`reader_channels`, `reader_blocks`) whose guess the stem starts
ignoring (zero weights), so the world's frames do not change until a later stage trains the stem.
Only the reader's weights train; everything else in the world is saved as it came.

The guess can also start the world's frames without any stem reading it (`reader_feeds_stem=false`,
`reader_start=0.8`: frames start from the guess noised to 0.8, `sampling.reader_start`), which
keeps the patrol's sprites that two steps from pure noise would average away:

    worldsim train reader --data data/explorer-walls --set init=explorer-64 \
        --set reader_feeds_stem=false --set reader_start=0.8
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from worldsim.data import Dataset
from worldsim.training import losses
from worldsim.training.batches import ClipStream, sprite_cell_weight, to_model_batch
from worldsim.training.common import StageConfig, freeze, load_world, save_world, with_grown_transformer
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.teacher_forcing_term import noised_context
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = ["ReaderConfig", "ReaderStage"]


@dataclass
class ReaderConfig(StageConfig):
    clip_frames: int = 8  # frames 1.. of each clip are predicted (frame 0 has no past)
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3  # a small conv net from scratch: the generator's rates would take hours
    warmup_steps: int = 50
    # Extra weight on latent cells where a sprite arrived, held or left (the scroll taken out):
    # the patrol is what the reader is for, and an enemy's step is one cell of 256.
    sprite_weight: float = 5.0
    sprite_hold_frames: int = 2
    # Noise on the predecessors (sigma uniform in [0, context_noise]): in play they are the world's
    # own frames, which a stage may also have trained at a little noise.
    context_noise: float = 0.0
    # The reader a world without one gets (transformer.local_reader_channels / _blocks).
    reader_channels: int = 64
    reader_blocks: int = 4
    # Whether the stem reads the reader's guess (false: the guess only starts the world's frames,
    # sampling.reader_start, and costs one reader pass a frame). None keeps the init world's
    # choice; a new reader is read by the stem.
    reader_feeds_stem: bool | None = None
    # The saved world's sampling.reader_start (frames start from the guess noised to this level;
    # 0 = off). None keeps the init world's.
    reader_start: float | None = None

    def validate(self) -> None:
        super().validate()
        self.require_init("a world with a local path")
        if self.clip_frames < 2:
            raise ConfigError(f"clip_frames must be >= 2 (frame 0 has no past to read), got {self.clip_frames}")
        if self.sprite_weight < 0:
            raise ConfigError(f"sprite_weight must be >= 0, got {self.sprite_weight}")
        if self.sprite_hold_frames < 0:
            raise ConfigError(f"sprite_hold_frames must be >= 0, got {self.sprite_hold_frames}")
        if not 0.0 <= self.context_noise < 1.0:
            raise ConfigError(f"context_noise must be in [0, 1), got {self.context_noise}")
        if self.reader_start is not None and not 0.0 <= self.reader_start < 1.0:
            raise ConfigError(f"reader_start must be in [0, 1), got {self.reader_start}")
        if self.reader_channels < 1 or self.reader_blocks < 0:
            raise ConfigError(f"reader_channels must be >= 1 and reader_blocks >= 0, got "
                              f"{self.reader_channels} and {self.reader_blocks}")


class ReaderStage:
    """Regression of the next latent by the history reader of the world's local path."""

    name = "reader"

    def __init__(self, config: ReaderConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        self.world = _with_reader(load_world(config.init, context.device), config)
        freeze(self.world.autoencoder)
        freeze(self.world.reward_model)
        freeze(self.world.event_encoder)
        self.transformer = freeze(self.world.transformer)
        self.reader = self.world.transformer.local.reader.train().requires_grad_(True)
        self.optimizer = make_adamw(list(self.reader.parameters()), config)
        self.clips = ClipStream(self.dataset, config.clip_frames, config.batch_size, config.seed, context.rank,
                                label_boost=config.label_boost)
        self.samples_per_step = config.batch_size
        self._diagnose = None

    def diagnostics(self) -> dict[str, float]:
        """The enemy probe on the reader's own guess (``reader/`` keys; empty for games without a
        ground truth)."""
        from worldsim.eval.training_probe import reader_diagnostics

        if self._diagnose is None:
            self._diagnose = reader_diagnostics(self.dataset.world, self.world.config.image_size) or (lambda world: {})
        found = self._diagnose(self.world)
        self.reader.train()
        return found

    def modules(self):
        return {"transformer": self.transformer}

    def optimizers(self):
        return {"model": self.optimizer}

    def train_step(self, step: int) -> dict[str, float]:
        clip = self.clips.batch(step)
        batch = to_model_batch(clip, self.world.autoencoder, self.world.config.no_action)
        context, context_sigma = noised_context(batch.latents, self.config.context_noise)
        if context_sigma is None:
            context_sigma = batch.latents.new_zeros(batch.latents.shape[:2])
        guess = self.transformer.read_next(context, context_sigma, batch.actions)
        loss = losses.next_latent_loss(guess, batch.latents, self._cell_weight(clip, batch.latents))
        grad_norm = optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        return {"loss": loss.item(), "grad_norm": grad_norm}

    def _cell_weight(self, clip, latents: torch.Tensor) -> torch.Tensor | None:
        if not self.config.sprite_weight:
            return None
        return sprite_cell_weight(clip, latents, self.config.sprite_weight, self.config.sprite_hold_frames)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        if self.config.reader_start is not None:
            self.world.config.sampling.reader_start = self.config.reader_start
        save_world(self.world, out_dir, summary, clip_frames=self.config.clip_frames)


def _with_reader(world, config: ReaderConfig):
    """`world`, grown by a history reader when it has none (the stem ignoring its guess at first)."""
    transformer = world.config.transformer
    if not transformer.local_channels or not transformer.local_frames:
        raise ConfigError("the history reader reads the local path's predecessors: the init world's generator "
                          "has no local path with past frames (transformer.local_channels, local_frames)")
    feeds_stem = [] if config.reader_feeds_stem is None else [
        f"local_reader_feeds_stem={json.dumps(config.reader_feeds_stem)}"]
    if transformer.local_reader_channels:
        return with_grown_transformer(world, feeds_stem) if feeds_stem else world
    return with_grown_transformer(world, [f"local_reader_channels={config.reader_channels}",
                                          f"local_reader_blocks={config.reader_blocks}", *feeds_stem])
