"""Stage `reward`: the reward/termination model, supervised on real latents.

Alignment with the dataset: `rewards[i]` and `terminated[i]` describe the step taken
*after* frame i with `actions[i]`, and a terminal step's successor frame belongs to the next
episode, so it is never stored. The model therefore sees the latents of frames i−K+1 … i and the
action `actions[i]`, and predicts the outcome of that step. At an episode's start (fewer than K
frames) the simulator repeats the first frame; a share of training windows is padded the same way.

Non-zero rewards and terminations are rare (about one frame in a hundred), so a batch mixes
ordinary windows with a fixed share of *rare-event windows* (every window ending at a non-zero
reward or a termination, gathered once). A constant mix keeps the loss smooth, where class
weights make it jump whenever a rare frame happens to be drawn. The over-sampling shifts the
model's priors; `finish` removes the shift by adding log(true prior / training prior) to the
output biases (logit adjustment), so predictions follow the real frequencies.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldsim.data import Dataset
from worldsim.model import reward_to_class
from worldsim.training import losses
from worldsim.training.batches import ClipStream, encode_latents
from worldsim.training.common import StageConfig, freeze, load_world, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = ["RewardStageConfig", "RewardStage", "RareWindows", "pad_episode_start", "prior_logit_shift"]


@dataclass
class RewardStageConfig(StageConfig):
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-4
    rare_share: float = 0.25  # share of each batch drawn from the rare-event windows
    max_rare_windows: int = 4096  # rare-event windows kept in memory
    start_pad_prob: float = 0.1  # share of windows padded like an episode's first frames

    def validate(self) -> None:
        super().validate()
        self.require_init("a world whose autoencoder is trained")
        if not 0.0 <= self.start_pad_prob <= 1.0 or not 0.0 <= self.rare_share < 1.0:
            raise ConfigError("start_pad_prob must be in [0, 1] and rare_share in [0, 1)")
        if self.max_rare_windows < 1:
            raise ConfigError(f"max_rare_windows must be >= 1, got {self.max_rare_windows}")


class RareWindows:
    """Every K-frame window (inside one episode) that ends at a non-zero reward or a termination."""

    def __init__(self, dataset: Dataset, window: int, max_windows: int, seed: int):
        frames, actions, rewards, terminated = [], [], [], []
        for position in range(dataset.num_shards):
            labels = dataset.load_labels(position)
            rare = np.flatnonzero((labels["rewards"] != 0) | labels["terminated"])
            start = rare - window + 1
            inside = (start >= 0) & (labels["episode"][np.maximum(start, 0)] == labels["episode"][rare])
            rare = rare[inside]
            if len(rare) == 0:
                continue
            shard = dataset.load_shard(position)
            frames.append(np.stack([shard.frames[i - window + 1:i + 1] for i in rare]))
            actions.append(shard.actions[rare])
            rewards.append(shard.rewards[rare])
            terminated.append(shard.terminated[rare])
        self.count = sum(len(a) for a in actions)
        if self.count == 0:
            self.frames = np.zeros((0, window, *dataset.frame_shape), np.uint8)
            self.actions, self.rewards, self.terminated = (np.zeros(0, dt) for dt in (np.int64, np.float32, bool))
            return
        keep = np.random.default_rng(seed).permutation(self.count)[:max_windows]
        self.frames = np.concatenate(frames)[keep]
        self.actions, self.rewards, self.terminated = (np.concatenate(v)[keep] for v in (actions, rewards, terminated))
        self.count = len(keep)


def pad_episode_start(latents: Tensor, keep: Tensor) -> Tensor:
    """Replace the first `K − keep[b]` frames of each window by its first kept frame `[B, K, ...]`."""
    num_frames = latents.shape[1]
    frame = torch.arange(num_frames, device=latents.device)
    first_kept = (num_frames - keep).clamp(0, num_frames - 1)
    source = torch.maximum(frame[None, :], first_kept[:, None])  # [B, K]
    index = source.view(*source.shape, *([1] * (latents.dim() - 2))).expand_as(latents)
    return latents.gather(1, index)


def prior_logit_shift(true_prior: Tensor, train_prior: Tensor) -> Tensor:
    """Logit adjustment `log(true / train)` that turns a classifier trained under `train_prior`
    into one for `true_prior` (classes on the last dimension)."""
    return torch.log(true_prior.clamp_min(1e-8)) - torch.log(train_prior.clamp_min(1e-8))


def _class_prior(rewards: np.ndarray) -> Tensor:
    counts = torch.bincount(reward_to_class(torch.from_numpy(rewards.astype(np.float32))), minlength=3).double()
    return (counts / counts.sum().clamp_min(1)).float()


class RewardStage:
    name = "reward"

    def __init__(self, config: RewardStageConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        self.world = load_world(config.init, context.device)
        for module in (self.world.autoencoder, self.world.transformer, self.world.event_encoder):
            freeze(module)
        self.model = self.world.reward_model.train().requires_grad_(True)
        self.optimizer = make_adamw(self.model.parameters(), config)
        self.window = self.world.config.reward.context_frames
        self.rare = RareWindows(self.dataset, self.window, config.max_rare_windows, config.seed)
        self.num_rare = round(config.rare_share * config.batch_size) if self.rare.count else 0
        self.clips = ClipStream(self.dataset, self.window, config.batch_size - self.num_rare, config.seed,
                                context.rank, label_boost=config.label_boost)
        self.samples_per_step = config.batch_size

    def modules(self):
        return {"reward_model": self.model}

    def optimizers(self):
        return {"reward_model": self.optimizer}

    def _batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        clip = self.clips.batch(step)
        frames, actions = clip.frames, clip.actions[:, -1]
        rewards, terminated = clip.rewards[:, -1], clip.terminated[:, -1]
        if self.num_rare:
            pick = torch.randint(self.rare.count, (self.num_rare,)).numpy()
            frames = np.concatenate([frames, self.rare.frames[pick]])
            actions = np.concatenate([actions, self.rare.actions[pick]])
            rewards = np.concatenate([rewards, self.rare.rewards[pick]])
            terminated = np.concatenate([terminated, self.rare.terminated[pick]])
        return frames, actions, rewards, terminated

    def train_step(self, step: int) -> dict[str, float]:
        frames, actions, rewards, terminated = self._batch(step)
        device = self.context.device
        latents = encode_latents(self.world.autoencoder, torch.from_numpy(frames))
        padded = torch.rand(latents.shape[0], device=device) < self.config.start_pad_prob
        keep = torch.where(padded, torch.randint(1, self.window + 1, padded.shape, device=device),
                           torch.full(padded.shape, self.window, device=device))
        latents = pad_episode_start(latents, keep)
        reward_class = reward_to_class(torch.from_numpy(rewards)).to(device)
        done = torch.from_numpy(terminated).to(device)
        reward_logits, done_logit = self.model(latents, torch.from_numpy(actions).to(device))
        loss = losses.reward_loss(reward_logits, done_logit, reward_class, done)
        optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        return {
            "loss": loss.item(),
            "reward_accuracy": (reward_logits.argmax(1) == reward_class).float().mean().item(),
            "done_accuracy": ((done_logit > 0) == done).float().mean().item(),
        }

    def _priors(self) -> tuple[Tensor, Tensor, float, float]:
        """(true, training) reward-class priors and termination rates."""
        labels = [self.dataset.load_labels(i) for i in range(self.dataset.num_shards)]
        all_rewards = np.concatenate([l["rewards"] for l in labels])
        true_done = float(np.concatenate([l["terminated"] for l in labels]).mean())
        share = self.num_rare / self.config.batch_size
        rare_prior = _class_prior(self.rare.rewards) if self.rare.count else torch.zeros(3)
        rare_done = float(self.rare.terminated.mean()) if self.rare.count else 0.0
        true_prior = _class_prior(all_rewards)
        train_prior = (1 - share) * true_prior + share * rare_prior
        return true_prior, train_prior, true_done, (1 - share) * true_done + share * rare_done

    @torch.no_grad()
    def correct_priors(self) -> None:
        """Logit adjustment of the output layer's biases for the over-sampled rare windows."""
        true_prior, train_prior, true_done, train_done = self._priors()
        output = self.model.head[-1]  # Linear(hidden, 3 reward classes + 1 termination logit)
        output.bias[:3] += prior_logit_shift(true_prior, train_prior).to(output.bias)
        odds = lambda p: float(np.log(max(p, 1e-8) / max(1 - p, 1e-8)))  # noqa: E731
        output.bias[3] += odds(true_done) - odds(train_done)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.correct_priors()
        save_world(self.world, out_dir, summary, rare_windows=self.rare.count, rare_share=self.config.rare_share)
