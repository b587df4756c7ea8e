"""Deterministic convolutional frame autoencoder.

pixels ``[N, 3, H, W]`` in [-1, 1] → latents ``[N, C, H/d, W/d]`` → pixels, with the spatial
downsampling ``d = patch_size * 2 ** (levels - 1)``. Residual blocks have no normalisation layers:
the decoder runs on every generated frame, and plain conv + SiLU is the cheapest thing that
reconstructs tile graphics well.

Two layouts, chosen by `patch_size`:
- ``patch_size == 1``: a pixel-level conv stem, then levels that halve the resolution with strided
  convs (the decoder mirrors it with sub-pixel upsampling).
- ``patch_size == p > 1``: a `p x p` stride-`p` conv turns each `p x p` patch into one cell, and the
  decoder ends with a 1x1 conv to the patch's `3 p^2` values (sub-pixel "unpatchify"). With `p`
  equal to the game's tile size, one latent cell is exactly one tile, no layer works at pixel
  resolution, and the decoder is both cheaper and quicker to train than the levelled one.

`latent_scale` (a buffer, saved with the weights) holds the per-channel standard deviation of
the raw encoder output; `encode` divides by it and `decode` multiplies, so the transformer sees
latents of roughly unit variance. Training sets it with `fit_latent_scale`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from worldsim.model.config import AutoencoderConfig


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _encoder(config: AutoencoderConfig) -> nn.Sequential:
    widths, patch = config.channels, config.patch_size
    stem = nn.Conv2d(3, widths[0], 3, padding=1) if patch == 1 else nn.Conv2d(3, widths[0], patch, stride=patch)
    layers: list[nn.Module] = [stem]
    for level, width in enumerate(widths):
        layers += [ResidualBlock(width) for _ in range(config.blocks_per_level)]
        if level + 1 < len(widths):
            layers.append(nn.Conv2d(width, widths[level + 1], 3, stride=2, padding=1))
    layers += [nn.SiLU(), nn.Conv2d(widths[-1], config.latent_channels, 3, padding=1)]
    return nn.Sequential(*layers)


def _decoder(config: AutoencoderConfig) -> nn.Sequential:
    widths, patch = config.channels[::-1], config.patch_size
    layers: list[nn.Module] = [nn.Conv2d(config.latent_channels, widths[0], 3, padding=1)]
    for level, width in enumerate(widths):
        layers += [ResidualBlock(width) for _ in range(config.blocks_per_level)]
        if level + 1 < len(widths):
            # Sub-pixel upsampling: same FLOPs as upsample + conv, but cheaper on CPU.
            layers += [nn.Conv2d(width, 4 * widths[level + 1], 3, padding=1), nn.PixelShuffle(2)]
    layers.append(nn.SiLU())
    if patch == 1:
        layers.append(nn.Conv2d(widths[-1], 3, 3, padding=1))
    else:
        layers += [nn.Conv2d(widths[-1], 3 * patch * patch, 1), nn.PixelShuffle(patch)]
    return nn.Sequential(*layers)


class FrameAutoencoder(nn.Module):
    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = _encoder(config)
        self.decoder = _decoder(config)
        self.register_buffer("latent_scale", torch.ones(config.latent_channels))

    def encode(self, pixels: Tensor) -> Tensor:
        """``[N, 3, H, W]`` in [-1, 1] → scaled latents ``[N, C, h, w]``."""
        self._check(pixels, "pixels", (3, self.config.image_size))
        return self.encoder(pixels) / self._scale(pixels)

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents ``[N, C, h, w]`` → pixels ``[N, 3, H, W]`` (nominally [-1, 1])."""
        self._check(latents, "latents", (self.config.latent_channels, self.config.latent_size))
        return self.decoder(latents * self._scale(latents))

    @torch.no_grad()
    def fit_latent_scale(self, pixels: Tensor) -> Tensor:
        """Set `latent_scale` to the per-channel std of the raw latents of `pixels`; returns it."""
        self._check(pixels, "pixels", (3, self.config.image_size))
        raw = self.encoder(pixels).float()
        self.latent_scale.copy_(raw.std(dim=(0, 2, 3)).clamp(min=1e-6))
        return self.latent_scale.clone()

    def _scale(self, like: Tensor) -> Tensor:
        return self.latent_scale.to(like.dtype)[:, None, None]

    @staticmethod
    def _check(x: Tensor, name: str, channels_and_size: tuple[int, int]) -> None:
        channels, size = channels_and_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (channels, size, size):
            raise ValueError(f"{name} must be [N, {channels}, {size}, {size}], "
                             f"got {tuple(x.shape)}")
