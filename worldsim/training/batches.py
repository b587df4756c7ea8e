"""Training batches: a resumable clip stream and the conversion of clips into model inputs.

`ClipStream.batch(step)` returns the clip batch of a step. The stream is the dataset's seeded
`ClipSampler`; its position is the step, so resuming at step s re-creates the sampler and fast-
forwards it by s batches — the batches after a resume are exactly those of an uninterrupted run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldsim.data import Clip, Dataset
from worldsim.model import FrameAutoencoder, to_pixels
from worldsim.training.losses import pixel_cells, sprite_cells, weight_on_cells

__all__ = ["ClipStream", "ModelBatch", "clip_sprite_cells", "condition_actions", "encode_latents", "sprite_cell_weight",
           "to_model_batch"]


class ClipStream:
    """The clip batch of every training step, drawn from `dataset` in a seeded order.

    Each rank reads its own order (`seed` and `rank` both feed the sampler's seed).
    """

    def __init__(self, dataset: Dataset, num_frames: int, batch_size: int, seed: int, rank: int = 0,
                 label_boost: dict[str, float] | None = None):
        self.dataset, self.num_frames, self.batch_size = dataset, num_frames, batch_size
        self.label_boost = label_boost
        self.seed = seed * 1_000 + rank
        self._sampler = None
        self._position = 0  # the step whose batch the sampler returns next

    def batch(self, step: int) -> Clip:
        if self._sampler is None or step < self._position:
            self._sampler = self.dataset.clips(self.num_frames, self.batch_size, seed=self.seed,
                                               label_boost=self.label_boost)
            self._position = 0
        while self._position < step:  # fast-forward after a resume
            next(self._sampler)
            self._position += 1
        self._position += 1
        return next(self._sampler)


@dataclass
class ModelBatch:
    """A clip batch as model inputs on one device."""

    latents: Tensor  # float [B, F, C, h, w]
    actions: Tensor  # long [B, F]: the action that led to each frame (NO_ACTION for the first)
    event_ids: Tensor  # long [B, F]: index into the dataset's event texts, -1 = none
    rewards: Tensor  # float [B, F]: reward of the step after each frame
    terminated: Tensor  # bool [B, F]


def condition_actions(actions_after: Tensor, no_action: int) -> Tensor:
    """Dataset actions (taken *after* frame f) → model conditions (the action that *led to* f).

    A clip's first frame has no known predecessor inside the clip, so it gets `no_action`, the
    same condition as an episode's first frame at inference.
    """
    led_to = torch.roll(actions_after, shifts=1, dims=1)
    led_to[:, 0] = no_action
    return led_to


@torch.no_grad()
def encode_latents(autoencoder: FrameAutoencoder, frames: Tensor, chunk: int = 256) -> Tensor:
    """uint8 frames `[B, F, H, W, 3]` → latents `[B, F, C, h, w]` with the frozen autoencoder."""
    batch, num_frames = frames.shape[:2]
    device = autoencoder.latent_scale.device
    pixels = to_pixels(frames, device=device)
    latents = torch.cat([autoencoder.encode(part) for part in pixels.split(chunk)])
    return latents.view(batch, num_frames, *latents.shape[1:])


def to_model_batch(clip: Clip, autoencoder: FrameAutoencoder, no_action: int) -> ModelBatch:
    device = autoencoder.latent_scale.device
    actions = torch.from_numpy(clip.actions).to(device)
    return ModelBatch(
        latents=encode_latents(autoencoder, torch.from_numpy(clip.frames)),
        actions=condition_actions(actions, no_action),
        event_ids=torch.from_numpy(clip.events).to(device),
        rewards=torch.from_numpy(clip.rewards).to(device),
        terminated=torch.from_numpy(clip.terminated).to(device),
    )


def clip_sprite_cells(frames: Tensor, grid: int, hold_frames: int) -> Tensor:
    """bool `[B, F, grid, grid]`: `losses.sprite_cells` of uint8 clip frames `[B, F, H, W, 3]` on a
    latent grid of `grid`×`grid` cells, read from the pixels (exact, where latents of a repeated
    ground tile are not)."""
    batch, num_frames, height, width = frames.shape[:4]
    return pixel_sprite_cells(to_pixels(frames).view(batch, num_frames, 3, height, width), grid, hold_frames)


def sprite_cell_weight(clip: Clip, latents: Tensor, strength: float, hold_frames: int) -> Tensor:
    """Per-cell loss weight `[B, F, 1, h, w]` on `latents` (the clip's, `[B, F, C, h, w]`): 1 + `strength`
    on the cells where the clip's pixels show a sprite arrive, hold or leave (`clip_sprite_cells`)."""
    cells = clip_sprite_cells(torch.from_numpy(clip.frames), latents.shape[-1], hold_frames)
    return weight_on_cells(cells.to(latents.device), strength)


def pixel_sprite_cells(pixels: Tensor, grid: int, hold_frames: int) -> Tensor:
    """bool `[B, F, grid, grid]`: `losses.sprite_cells` of float frames `[B, F, 3, H, W]` (a clip's,
    or a decoded rollout's) on a latent grid of `grid`×`grid` cells."""
    return sprite_cells(pixel_cells(pixels, pixels.shape[-1] // grid), hold_frames)
