"""Stage `reward`: the reward/termination model, supervised on real latents (and on the world's own).

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

With `generated_clips`, a share of every batch are windows of the world's own frames labelled by
the real game (generated_windows.py): the model is then calibrated on the frames it reads inside
the world, not only on real ones. Half of those clips end at a rare step, half are drawn at random.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldsim.data import Dataset
from worldsim.data.clips import Clip, concatenate_clips, gather_clips
from worldsim.model import RewardModel, reward_to_class
from worldsim.model.config import REWARD_HEADS
from worldsim.training import losses
from worldsim.training.batches import ClipStream, encode_latents
from worldsim.training.common import StageConfig, freeze, load_world, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.generated_windows import GeneratedWindows, generate_windows
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = ["RewardStageConfig", "RewardStage", "rare_clips", "pad_episode_start", "prior_logit_shift"]


@dataclass
class RewardStageConfig(StageConfig):
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3  # a fresh cells head at 3e-4 ended 3 000 steps at 4x the loss it reaches at 1e-3
    rare_share: float = 0.25  # share of each batch drawn from the rare-event windows
    max_rare_windows: int = 4096  # rare-event windows kept in memory
    start_pad_prob: float = 0.1  # share of windows padded like an episode's first frames
    generated_clips: int = 0  # clips of recorded play the world re-generates for training (0: real frames only)
    generated_frames: int = 16  # frames the world generates along each of them
    generated_share: float = 0.5  # share of each batch drawn from those windows
    generation_batch: int = 64  # clips generated at once
    fresh_model: bool = False  # start from new weights instead of the init world's reward model
    head: str = "cells"  # with fresh_model: the new model's head ("cells" or "flatten", model/reward.py)
    # with fresh_model: the frames the new model reads (0: as many as the init world's). More frames
    # show more of an enemy's patrol, which decides whether it steps into the player.
    context_frames: int = 0

    def validate(self) -> None:
        super().validate()
        self.require_init("a world whose autoencoder is trained")
        if not 0.0 <= self.start_pad_prob <= 1.0 or not 0.0 <= self.rare_share < 1.0:
            raise ConfigError("start_pad_prob must be in [0, 1] and rare_share in [0, 1)")
        if self.head not in REWARD_HEADS:
            raise ConfigError(f"head must be one of {REWARD_HEADS}, got {self.head!r}")
        if self.context_frames < 0 or (self.context_frames and not self.fresh_model):
            raise ConfigError("context_frames must be >= 0, and set only with fresh_model=true (a trained "
                              "reward model reads the frames it was trained on)")
        if self.max_rare_windows < 1:
            raise ConfigError(f"max_rare_windows must be >= 1, got {self.max_rare_windows}")
        if self.generated_clips < 0 or self.generated_frames < 1 or self.generation_batch < 1:
            raise ConfigError("generated_clips must be >= 0, generated_frames and generation_batch >= 1")
        if self.generated_clips and not (0.0 < self.generated_share and self.rare_share + self.generated_share < 1.0):
            raise ConfigError("generated_share must be > 0 and rare_share + generated_share < 1")


def rare_clips(dataset: Dataset, num_frames: int, max_clips: int, seed: int) -> Clip | None:
    """Clips of `num_frames` frames (inside one episode) that end at a non-zero reward or a
    termination: the last step of each is the rare one. At most `max_clips`, a seeded choice;
    None when the dataset holds no such step."""
    candidates = []  # (shard position, clip start)
    for position in range(dataset.num_shards):
        labels = dataset.load_labels(position)
        rare = np.flatnonzero((labels["rewards"] != 0) | labels["terminated"])
        start = rare - num_frames + 1
        inside = (start >= 0) & (labels["episode"][np.maximum(start, 0)] == labels["episode"][rare])
        candidates += [(position, int(first)) for first in start[inside]]
    keep = np.random.default_rng(seed).permutation(len(candidates))[:max_clips]
    if len(keep) == 0:
        return None
    chosen = sorted(candidates[i] for i in keep)
    shards = {position: dataset.load_shard(position) for position in {position for position, _ in chosen}}
    return gather_clips([shards[position] for position, _ in chosen], [start for _, start in chosen], num_frames)


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
        if config.fresh_model:
            self._use_fresh_model()
        self.model = self.world.reward_model.train().requires_grad_(True)
        self.optimizer = make_adamw(self.model.parameters(), config)
        self.window = self.world.config.reward.context_frames
        self.rare = rare_clips(self.dataset, self.window, config.max_rare_windows, config.seed)
        self.num_rare = round(config.rare_share * config.batch_size) if self.rare is not None else 0
        self.generation_wall_time_s = 0.0  # generating the world's own windows, before the training loop
        self.generated = self._generated_windows() if config.generated_clips else None
        self.num_generated = round(config.generated_share * config.batch_size) if self.generated else 0
        self.clips = ClipStream(self.dataset, self.window, config.batch_size - self.num_rare - self.num_generated,
                                config.seed, context.rank, label_boost=config.label_boost)
        self.samples_per_step = config.batch_size

    def _use_fresh_model(self) -> None:
        """Give the world a new reward model (seeded weights) of the stage's design, its config with it."""
        world = self.world
        design = dataclasses.replace(world.config.reward, head=self.config.head,
                                     context_frames=self.config.context_frames or world.config.reward.context_frames)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            world.reward_model = RewardModel(design).to(world.device)
        world.config = dataclasses.replace(world.config, reward=design)

    def _generated_windows(self) -> GeneratedWindows:
        """The world re-generates `generated_clips` clips: half ending at a rare step, half at random."""
        config, num_frames = self.config, self.config.generated_frames + 1
        rare = rare_clips(self.dataset, num_frames, config.generated_clips // 2, config.seed + 1)
        num_rare = 0 if rare is None else len(rare.actions)
        ordinary = next(self.dataset.clips(num_frames, config.generated_clips - num_rare, seed=config.seed + 2))
        clips = ordinary if rare is None else concatenate_clips([ordinary, rare])
        start = time.perf_counter()
        windows = generate_windows(self.world, clips, self.dataset.event_texts, config.generation_batch, config.seed)
        self.generation_wall_time_s = round(time.perf_counter() - start, 3)
        return windows

    def modules(self):
        return {"reward_model": self.model}

    def optimizers(self):
        return {"reward_model": self.optimizer}

    def _real_batch(self, step: int) -> tuple[Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """Windows of real frames (random, then rare): (latents, actions, rewards, terminated)."""
        clip = self.clips.batch(step)
        if self.num_rare:
            pick = torch.randint(len(self.rare.actions), (self.num_rare,)).numpy()
            clip = concatenate_clips([clip, self.rare.take(pick)])
        device = self.context.device
        latents = encode_latents(self.world.autoencoder, torch.from_numpy(clip.frames))
        padded = torch.rand(latents.shape[0], device=device) < self.config.start_pad_prob
        keep = torch.where(padded, torch.randint(1, self.window + 1, padded.shape, device=device),
                           torch.full(padded.shape, self.window, device=device))
        return pad_episode_start(latents, keep), clip.actions[:, -1], clip.rewards[:, -1], clip.terminated[:, -1]

    def _batch(self, step: int) -> tuple[Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """The step's windows: real ones, then the world's own (with `generated_clips`)."""
        batch = self._real_batch(step)
        if not self.num_generated:
            return batch
        generated = self.generated.windows(torch.randint(self.generated.count, (self.num_generated,)).numpy())
        latents = torch.cat([batch[0], generated[0].to(batch[0])])
        return latents, *(np.concatenate([real, own]) for real, own in zip(batch[1:], generated[1:]))

    def train_step(self, step: int) -> dict[str, float]:
        latents, actions, rewards, terminated = self._batch(step)
        device = self.context.device
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
        all_done = np.concatenate([l["terminated"] for l in labels])
        rare_share, generated_share = (count / self.config.batch_size for count in (self.num_rare, self.num_generated))
        # (share of a batch, its rewards, its terminations) for random, rare and generated windows
        sources = [(1.0 - rare_share - generated_share, all_rewards, all_done)]
        if self.num_rare:
            sources.append((rare_share, self.rare.rewards[:, -1], self.rare.terminated[:, -1]))
        if self.num_generated:
            sources.append((generated_share, self.generated.rewards, self.generated.terminated))
        train_prior = sum(share * _class_prior(rewards.ravel()) for share, rewards, _ in sources)
        train_done = sum(share * float(done.mean()) for share, _, done in sources)
        return _class_prior(all_rewards), train_prior, float(all_done.mean()), train_done

    @torch.no_grad()
    def correct_priors(self) -> None:
        """Logit adjustment of the output layer's biases for the over-sampled rare windows."""
        true_prior, train_prior, true_done, train_done = self._priors()
        bias = self.model.output_bias  # 3 reward classes, then the termination logit
        bias[:3] += prior_logit_shift(true_prior, train_prior).to(bias)
        odds = lambda p: float(np.log(max(p, 1e-8) / max(1 - p, 1e-8)))  # noqa: E731
        bias[3] += odds(true_done) - odds(train_done)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.correct_priors()
        save_world(self.world, out_dir, summary, rare_windows=0 if self.rare is None else len(self.rare.actions),
                   rare_share=self.config.rare_share, generated_windows=self.generated.count if self.generated else 0,
                   generated_share=self.config.generated_share if self.generated else 0.0,
                   generation_wall_time_s=self.generation_wall_time_s)
