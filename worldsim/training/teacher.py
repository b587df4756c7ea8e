"""Stage `teacher`: a bidirectional clip model trained by flow matching.

Every frame of a clip gets its own noise level (as diffusion forcing does), every frame sees the
whole clip, and actions and events condition each frame. The event encoder is trained jointly,
on random training paraphrases, with a share of rows dropped to "no event" for guidance. The
result is the real score of DMD and the initial critic. `FlowMatchingStage` is also the base of
the `ar-teacher` stage, which changes only the attention layout and the per-frame weight.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from worldsim.data import Clip, Dataset
from worldsim.model import flow
from worldsim.training import losses
from worldsim.training.batches import ClipStream, ModelBatch, sprite_cell_weight, to_model_batch
from worldsim.training.common import (StageConfig, WorldDiagnostics, ema_decay_at, freeze, load_grown_world,
                                      sample_sigma, save_world)
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.ema import ema_copy, ema_update
from worldsim.training.event_conditioning import EventVocabulary, encode_event_ids
from worldsim.training.trainer import TrainSummary, make_scaled_adamw, optimizer_step

__all__ = ["FlowMatchingConfig", "TeacherConfig", "FlowMatchingStage", "TeacherStage"]


@dataclass
class FlowMatchingConfig(StageConfig):
    clip_frames: int = 16
    steps: int = 20000
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 200
    event_drop: float = 0.1  # share of rows trained without their event (for guidance)
    train_events: bool = True  # train the event encoder jointly
    ema_decay: float = 0.999
    # Extra loss weight on latent cells that change from the previous frame (losses.change_weight):
    # moving sprites are a cell or two of an otherwise still frame. 0 = a plain mean.
    change_weight: float = 0.0
    # Extra loss weight on latent cells where a sprite arrived, held or left, the scroll taken out
    # (batches.clip_sprite_cells, losses.sprite_cells): an enemy's patrol step is one cell of 256. 0 = none.
    sprite_weight: float = 0.0
    sprite_hold_frames: int = 2  # frames a sprite cell stays weighted after a change (an Explorer enemy holds 2)
    # Extra loss weight on the frame where the event switches (losses.switch_weight): the restyle
    # happens in that one frame (later frames copy it from their context). 0 = no extra weight.
    switch_weight: float = 0.0
    # Grow the init world's generator before training, keeping its weights: transformer config
    # changes that only add parameters, e.g. ["local_positions=true"], or lengthen the local path's
    # history, e.g. ["local_frames=6"] (common.with_grown_transformer).
    transformer_changes: list[str] = field(default_factory=list)
    # Learning-rate multipliers of transformer parameters by name prefix, e.g. {"event_change_proj":
    # 10}: weights grown from zero that only a rare frame trains (an event switch is one frame in
    # hundreds) move too little at the rate that fine-tunes the trained ones.
    lr_scales: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        self.require_init("the autoencoder stage's final world")
        if self.clip_frames < 1:
            raise ConfigError(f"clip_frames must be >= 1, got {self.clip_frames}")
        if not 0.0 <= self.event_drop < 1.0:
            raise ConfigError(f"event_drop must be in [0, 1), got {self.event_drop}")
        if self.change_weight < 0:
            raise ConfigError(f"change_weight must be >= 0, got {self.change_weight}")
        if self.sprite_weight < 0:
            raise ConfigError(f"sprite_weight must be >= 0, got {self.sprite_weight}")
        if self.sprite_hold_frames < 0:
            raise ConfigError(f"sprite_hold_frames must be >= 0, got {self.sprite_hold_frames}")
        if self.switch_weight < 0:
            raise ConfigError(f"switch_weight must be >= 0, got {self.switch_weight}")


TeacherConfig = FlowMatchingConfig


class FlowMatchingStage:
    """Flow matching of the world's transformer (and event encoder) on real clips."""

    name = "teacher"
    role = "bidirectional teacher (the real score of DMD; not a causal generator)"

    def __init__(self, config: FlowMatchingConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        self.world = load_grown_world(config.init, config.transformer_changes, context.device)
        freeze(self.world.autoencoder)
        freeze(self.world.reward_model)
        self.transformer = self.world.transformer.train()
        self.event_encoder = self.world.event_encoder.train(config.train_events)
        self.event_encoder.requires_grad_(config.train_events)
        trained = [self.transformer] + ([self.event_encoder] if config.train_events else [])
        named = [(f"{index}.{name}", parameter) for index, module in enumerate(trained)
                 for name, parameter in module.named_parameters()]  # "0." the transformer, "1." the event encoder
        self.optimizer = make_scaled_adamw(named, {f"0.{prefix}": scale for prefix, scale in config.lr_scales.items()},
                                           config)
        self.ema = {f"ema_{i}": ema_copy(module) for i, module in enumerate(trained)} if config.ema_decay else {}
        self._trained = trained
        self.vocabulary = EventVocabulary(self.dataset.event_texts, self.dataset.world)
        self.clips = ClipStream(self.dataset, config.clip_frames, config.batch_size, config.seed, context.rank,
                                label_boost=config.label_boost)
        self.samples_per_step = config.batch_size
        self._diagnose = WorldDiagnostics(self.dataset.world, self.world.config.image_size)

    def diagnostics(self) -> dict[str, float]:
        """The action-branch test and collision probe of the network as it is now."""
        return self._diagnose(self.world)

    def modules(self):
        return {"transformer": self.transformer, "event_encoder": self.event_encoder, **self.ema}

    def optimizers(self):
        return {"model": self.optimizer}

    # the two things the AR teacher changes
    def velocity(self, batch: ModelBatch, noisy: Tensor, sigma: Tensor, events: Tensor) -> Tensor:
        return self.transformer(noisy, sigma, batch.actions, events, mode="bidirectional")

    def bell_weight(self) -> bool:
        """Whether the loss weighs noise levels by the bell (`losses.logit_normal_weight`)."""
        return False

    def _loss_weight(self, batch: ModelBatch, sigma: Tensor) -> Tensor | None:
        """Per-frame weight `[B, F]`: the stage's weight over noise levels times the switch weight."""
        return losses.frame_weight(sigma, self.bell_weight(), batch.event_ids, self.config.switch_weight)

    def _cell_weight(self, clip: Clip, latents: Tensor) -> Tensor | None:
        """Per-cell loss weight `[B, F, 1, h, w]` (changed cells, sprite cells, both or neither)."""
        weight = losses.change_weight(latents, self.config.change_weight) if self.config.change_weight else None
        if not self.config.sprite_weight:
            return weight
        sprites = sprite_cell_weight(clip, latents, self.config.sprite_weight, self.config.sprite_hold_frames)
        return sprites if weight is None else weight * sprites

    def train_step(self, step: int) -> dict[str, float]:
        clip = self.clips.batch(step)
        batch = to_model_batch(clip, self.world.autoencoder, self.world.config.no_action)
        events = encode_event_ids(batch.event_ids, self.vocabulary, self.world.tokenizer, self.event_encoder,
                                  self.config.event_drop)
        sigma = sample_sigma(tuple(batch.latents.shape[:2]), self.world.config.sampling.sigma_shift,
                             batch.latents.device)
        noise = torch.randn_like(batch.latents)
        noisy = flow.add_noise(batch.latents, noise, sigma)
        velocity = self.velocity(batch, noisy, sigma, events)
        loss = losses.flow_matching_loss(velocity, batch.latents, noise, self._loss_weight(batch, sigma),
                                         self._cell_weight(clip, batch.latents))
        grad_norm = optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        for ema, module in zip(self.ema.values(), self._trained):
            ema_update(ema, module, ema_decay_at(self.config.ema_decay, step))
        return {"loss": loss.item(), "grad_norm": grad_norm}

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        for ema, module in zip(self.ema.values(), self._trained):
            module.load_state_dict(ema.state_dict())  # the world ships the averaged weights
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, clip_frames=self.config.clip_frames)


class TeacherStage(FlowMatchingStage):
    name = "teacher"
