"""Stage `reward` (DESIGN §6.5): the reward/termination model, supervised on real latents.

Alignment with the dataset (DESIGN §5): `rewards[i]` and `terminated[i]` describe the step taken
*after* frame i with `actions[i]`, and a terminal step's successor frame belongs to the next
episode. So the model sees the latents of frames i−K+1 … i and the action `actions[i]` and
predicts the outcome of that step; at inference this is the action being applied to the latest
frames. At an episode's start (fewer than K frames) the simulator repeats the first frame; a share
of training windows is padded the same way so the model knows that case.
Non-zero rewards and terminations are rare, so the classes are weighted by inverse square-root
frequency measured over the whole dataset.

Note: `worldsim.sampling.simulator` (as of this writing) calls the model on the latents *ending
with the newly generated frame*; with the dataset convention above a terminal step's successor
frame is never stored, so that alignment cannot learn termination. The model trained here expects
the K latents ending with the frame the action is taken from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldsim.model import reward_to_class
from worldsim.training import losses
from worldsim.training.batches import ClipStream, encode_latents
from worldsim.training.common import StageConfig, freeze, load_world, open_dataset, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = ["RewardStageConfig", "RewardStage", "reward_class_weights", "termination_weight", "pad_episode_start"]


@dataclass
class RewardStageConfig(StageConfig):
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-4
    start_pad_prob: float = 0.1  # share of windows padded like an episode's first frames

    def validate(self) -> None:
        super().validate()
        self.require_init("a world whose autoencoder is trained")
        if not 0.0 <= self.start_pad_prob <= 1.0:
            raise ConfigError(f"start_pad_prob must be in [0, 1], got {self.start_pad_prob}")


def reward_class_weights(rewards: np.ndarray) -> torch.Tensor:
    """Inverse square-root class frequency over (−1, 0, +1), normalised to mean 1 over the data."""
    classes = reward_to_class(torch.from_numpy(rewards.astype(np.float32)))
    counts = torch.bincount(classes, minlength=3).double().clamp_min(1)
    weights = counts.rsqrt()
    weights = weights / (weights * counts).sum() * counts.sum()
    return weights.float()


def termination_weight(terminated: np.ndarray) -> torch.Tensor:
    """BCE positive weight `sqrt(negatives / positives)` for the termination logit."""
    positives = max(int(terminated.sum()), 1)
    negatives = max(int(terminated.size) - positives, 1)
    return torch.tensor((negatives / positives) ** 0.5)


def pad_episode_start(latents: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Replace the first `K − keep[b]` frames of each window by its first kept frame `[B, K, ...]`."""
    num_frames = latents.shape[1]
    frame = torch.arange(num_frames, device=latents.device)
    first_kept = (num_frames - keep).clamp(0, num_frames - 1)
    source = torch.maximum(frame[None, :], first_kept[:, None])  # [B, K]
    index = source.view(*source.shape, *([1] * (latents.dim() - 2))).expand_as(latents)
    return latents.gather(1, index)


class RewardStage:
    name = "reward"

    def __init__(self, config: RewardStageConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = open_dataset(config.data)
        self.world = load_world(config.init, context.device)
        for module in (self.world.autoencoder, self.world.transformer, self.world.event_encoder):
            freeze(module)
        self.model = self.world.reward_model.train()
        self.model.requires_grad_(True)
        self.optimizer = make_adamw(self.model.parameters(), config)
        labels = [self.dataset.load_labels(i) for i in range(self.dataset.num_shards)]
        self.class_weights = reward_class_weights(np.concatenate([l["rewards"] for l in labels])).to(context.device)
        self.done_weight = termination_weight(np.concatenate([l["terminated"] for l in labels])).to(context.device)
        self.window = self.world.config.reward.context_frames
        self.clips = ClipStream(self.dataset, self.window, config.batch_size, config.seed, context.rank)
        self.samples_per_step = config.batch_size

    def modules(self):
        return {"reward_model": self.model}

    def optimizers(self):
        return {"reward_model": self.optimizer}

    def train_step(self, step: int) -> dict[str, float]:
        clip = self.clips.batch(step)
        device = self.context.device
        latents = encode_latents(self.world.autoencoder, torch.from_numpy(clip.frames))
        padded = torch.rand(latents.shape[0], device=device) < self.config.start_pad_prob
        keep = torch.where(padded, torch.randint(1, self.window + 1, padded.shape, device=device),
                           torch.full_like(padded, self.window, dtype=torch.long))
        latents = pad_episode_start(latents, keep)
        actions = torch.from_numpy(clip.actions[:, -1]).to(device)
        reward_class = reward_to_class(torch.from_numpy(clip.rewards[:, -1])).to(device)
        done = torch.from_numpy(clip.terminated[:, -1]).to(device)
        reward_logits, done_logit = self.model(latents, actions)
        loss = losses.reward_loss(reward_logits, done_logit, reward_class, done, self.class_weights, self.done_weight)
        optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        return {
            "loss": loss.item(),
            "reward_accuracy": (reward_logits.argmax(1) == reward_class).float().mean().item(),
            "done_accuracy": ((done_logit > 0) == done).float().mean().item(),
        }

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        save_world(self.world, out_dir, summary)
