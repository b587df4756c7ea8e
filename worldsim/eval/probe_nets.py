"""The probe networks: small convolutional nets trained on real frames of the suite's game.

- `FrameParser`: frame → tile class per 4×4 cell (fully convolutional, works at any size that is a
  multiple of 4). Its pooled penultimate features are half of the Fréchet feature space.
- `EventClassifier`: frame → one set of logits per event group (time of day, weather, ...). Its
  pooled features are the other half of the Fréchet feature space.
- `InverseDynamics`: frame pair (t, t+1) → the action taken between them.

All take `uint8 [N, H, W, 3]` frames (numpy or torch) through `frames_to_input`; none holds state.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

TILE_PIXELS = 4  # one tile = 4x4 pixels = one latent cell of the autoencoder


def frames_to_input(frames: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """`uint8 [N, H, W, 3]` → `float [N, 3, H, W]` in [-1, 1] on `device`."""
    frames = torch.as_tensor(frames, device=device)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"probes expect uint8 frames [N, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[1] % TILE_PIXELS or frames.shape[2] % TILE_PIXELS:
        raise ValueError(f"probes need frame sizes that are multiples of {TILE_PIXELS}, got {tuple(frames.shape[1:3])}")
    return frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm: the same computation in training and inference, and no running statistics.
    return nn.GroupNorm(8, channels)


def _conv(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    convolution = nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2)
    return nn.Sequential(convolution, _norm(out_channels), nn.GELU())


def _tile_embedding(in_channels: int, out_channels: int) -> nn.Sequential:
    """Each 4×4 tile's pixels → one vector (a patchify conv and a per-tile MLP layer).

    Working at tile resolution from the start keeps the probes cheap enough to train on CPU.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, TILE_PIXELS, stride=TILE_PIXELS), _norm(out_channels), nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 1), _norm(out_channels), nn.GELU(),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), _norm(channels), nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x + self.body(x))


def _pool(features: torch.Tensor) -> torch.Tensor:
    """Mean and max over space: small sprites (enemies, coins) survive the max."""
    return torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)


class FrameParser(nn.Module):
    """Pixels → one vector per tile → neighbourhood context → tile classes.

    The context blocks see neighbouring tiles, which helps under fog or rain where a single tile's
    pixels are ambiguous.
    """

    def __init__(self, num_tile_classes: int, width: int = 32) -> None:
        super().__init__()
        self.to_tiles = _tile_embedding(3, 2 * width)
        self.context = nn.Sequential(_Residual(2 * width), _Residual(2 * width))
        self.head = nn.Conv2d(2 * width, num_tile_classes, 1)

    def tile_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.context(self.to_tiles(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tile logits `[N, num_tile_classes, H/4, W/4]`."""
        return self.head(self.tile_features(pixels))

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features `[N, 4·width]`."""
        return _pool(self.tile_features(pixels))


class EventClassifier(nn.Module):
    """A downsampling conv stack, mean+max pooled, with one linear head per event group."""

    def __init__(self, group_sizes: dict[str, int], width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _tile_embedding(3, 2 * width),
            _conv(2 * width, 2 * width),
            _conv(2 * width, 2 * width, stride=2),
            _conv(2 * width, 2 * width),
        )
        self.heads = nn.ModuleDict({group: nn.Linear(4 * width, size) for group, size in group_sizes.items()})

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features `[N, 4·width]`."""
        return _pool(self.body(pixels))

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per group: `{group: [N, classes_in_group]}`."""
        features = self.features(pixels)
        return {group: head(features) for group, head in self.heads.items()}


class InverseDynamics(nn.Module):
    """Two frames stacked on channels → action logits. Moving shifts the view by one tile, so the
    tile-level 3×3 convolutions compare each cell with its neighbours in the other frame."""

    def __init__(self, num_actions: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _tile_embedding(6, 2 * width),
            _conv(2 * width, 2 * width),
            _conv(2 * width, 2 * width),
            _conv(2 * width, 2 * width, stride=2),
        )
        self.head = nn.Linear(4 * width, num_actions)

    def forward(self, pixels_before: torch.Tensor, pixels_after: torch.Tensor) -> torch.Tensor:
        """Action logits `[N, num_actions]` for the step from `pixels_before` to `pixels_after`."""
        return self.head(_pool(self.body(torch.cat([pixels_before, pixels_after], dim=1))))
