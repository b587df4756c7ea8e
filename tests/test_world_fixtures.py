"""Shared builders for the sampling / world / hub / rollout / bench tests (no tests in here).

Freshly created worlds are AdaLN-zero: the transformer predicts zero velocity whatever it is
given, so actions and events would not matter. `make_world` therefore nudges every weight with
seeded noise (more for the transformer's blocks, so that conditions visibly steer the frames, less
for its conv local path and the other networks, whose outputs would otherwise saturate or grow).
"""
from __future__ import annotations

import torch

from worldsim.model import WorldConfig
from worldsim.world import WorldModel

EVENT_TEXTS = ["a sunny meadow", "night falls", "it starts snowing", "enemies appear"]

# Smaller than the tiny preset (16x16 frames, 4 tokens per frame, one block, a 1+2 frame cache):
# for the long rollouts, where per-step cost decides the test's wall time.
MICRO = {
    "image_size": 16,
    "autoencoder.image_size": 16,
    "autoencoder.channels": [4, 4, 4],
    "transformer.latent_size": 4,
    "reward.latent_size": 4,
    "transformer.depth": 1,
    "transformer.window_frames": 2,
}


def activate(world: WorldModel, seed: int = 0, scale: float = 0.05, transformer_scale: float = 0.15) -> WorldModel:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, network in world.networks.items():
            for key, parameter in network.named_parameters():
                noise = torch.randn(parameter.shape, generator=generator)
                # The transformer's conv local path gets the small scale: it feeds each frame's
                # latents into the next, and a large random gain there would grow them without bound.
                steered = name == "transformer" and not key.startswith("local.")
                parameter.add_(noise * (transformer_scale if steered else scale))
    world.event_cache.clear()
    return world


def make_world(seed: int = 0, overrides: dict | None = None, context_frames=None) -> WorldModel:
    config = WorldConfig.preset("tiny").with_overrides(overrides or {})
    world = WorldModel.create(config, EVENT_TEXTS, seed=seed, context_frames=context_frames)
    return activate(world, seed)
