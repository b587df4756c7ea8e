"""Frame autoencoder: shapes, latent scaling, determinism, and that it can learn."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from worldsim.model import FrameAutoencoder, WorldConfig
from worldsim.model.config import ConfigError


def _autoencoder() -> FrameAutoencoder:
    torch.manual_seed(0)
    return FrameAutoencoder(WorldConfig.preset("tiny").autoencoder)


def test_shapes_and_determinism():
    ae = _autoencoder()
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    latents = ae.encode(pixels)
    assert latents.shape == (2, 4, 16, 16)
    assert torch.equal(latents, ae.encode(pixels))
    assert ae.decode(latents).shape == pixels.shape


def test_latent_scale_normalises_and_is_saved():
    ae = _autoencoder()
    pixels = torch.rand(8, 3, 64, 64) * 2 - 1
    raw = ae.encode(pixels)  # scale starts at one
    scale = ae.fit_latent_scale(pixels)
    assert torch.allclose(scale, raw.std(dim=(0, 2, 3)))
    scaled = ae.encode(pixels)
    assert torch.allclose(scaled.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4)
    assert torch.allclose(ae.decode(scaled), ae.decoder(raw), atol=1e-5)
    assert "latent_scale" in ae.state_dict()


def test_learns_to_reconstruct_tile_images():
    """A few Adam steps on blocky 4x4-tile images cut the error well below the start."""
    config = dataclasses.replace(WorldConfig.preset("tiny").autoencoder, image_size=16)
    torch.manual_seed(0)
    ae = FrameAutoencoder(config)
    gen = torch.Generator().manual_seed(0)
    tiles = torch.rand(4, 3, 4, 4, generator=gen) * 2 - 1
    pixels = tiles.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    optimiser = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = (ae.decode(ae.encode(pixels)) - pixels).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_rejects_wrong_shapes():
    ae = _autoencoder()
    with pytest.raises(ValueError, match="pixels"):
        ae.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="latents"):
        ae.decode(torch.zeros(1, 8, 16, 16))


def test_patch_stem_maps_each_tile_to_one_cell():
    """patch_size 4: one level, 16x16 latents for 64x64 frames, and a decoder with no pixel-level conv."""
    config = dataclasses.replace(WorldConfig.preset("tiny").autoencoder, channels=(16,), patch_size=4,
                                 blocks_per_level=2)
    assert config.downsample == 4 and config.latent_size == 16
    torch.manual_seed(0)
    ae = FrameAutoencoder(config)
    pixels = torch.rand(2, 3, 64, 64) * 2 - 1
    latents = ae.encode(pixels)
    assert latents.shape == (2, config.latent_channels, 16, 16)
    assert ae.decode(latents).shape == pixels.shape
    # the decoder's convs all run on the 16x16 grid; only the final pixel shuffle reaches 64x64
    sizes = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
             for m in ae.decoder if isinstance(m, torch.nn.Conv2d)]
    ae.decode(latents)
    for hook in hooks:
        hook.remove()
    assert set(sizes) == {16}


def test_patch_size_must_divide_the_frame():
    config = dataclasses.replace(WorldConfig.preset("tiny").autoencoder, channels=(16, 32), patch_size=3)
    with pytest.raises(ConfigError, match="image_size"):
        config.validate()
    with pytest.raises(ConfigError, match="patch_size"):
        dataclasses.replace(config, patch_size=0).validate()
