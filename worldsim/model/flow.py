"""Flow-matching maths as pure tensor functions.

Conventions: ``x_sigma = (1 - sigma) * x0 + sigma * noise`` with sigma in [0, 1] (0 = clean,
1 = pure noise); the network predicts the velocity ``v = noise - x0``, so ``x0 = x_sigma - sigma * v``.
`sigma` may be a Python float or a tensor whose shape is a prefix of the sample's shape
(typically ``[B, F]`` against latents ``[B, F, C, h, w]``); it is broadcast over the rest.
"""
from __future__ import annotations

import torch
from torch import Tensor


def expand_sigma(sigma: Tensor | float, like: Tensor) -> Tensor | float:
    """Append singleton dims so that `sigma` ([B, F], say) broadcasts against `like`."""
    if not isinstance(sigma, Tensor):
        return sigma
    if sigma.shape != like.shape[: sigma.ndim]:
        raise ValueError(f"sigma shape {tuple(sigma.shape)} is not a prefix of {tuple(like.shape)}")
    return sigma.reshape(*sigma.shape, *([1] * (like.ndim - sigma.ndim)))


def add_noise(x0: Tensor, noise: Tensor, sigma: Tensor | float) -> Tensor:
    """The point at noise level sigma on the straight path from x0 to noise."""
    s = expand_sigma(sigma, x0)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """The velocity the network is trained to predict: d x_sigma / d sigma = noise - x0."""
    return noise - x0


def x0_from_velocity(x_sigma: Tensor, sigma: Tensor | float, velocity: Tensor) -> Tensor:
    """The clean sample implied by a velocity prediction at noise level sigma."""
    return x_sigma - expand_sigma(sigma, x_sigma) * velocity


def noise_from_velocity(x_sigma: Tensor, sigma: Tensor | float, velocity: Tensor) -> Tensor:
    """The noise implied by a velocity prediction: x_sigma + (1 - sigma) * v."""
    return x_sigma + (1 - expand_sigma(sigma, x_sigma)) * velocity


def euler_step(x: Tensor, velocity: Tensor, sigma: Tensor | float,
               sigma_next: Tensor | float) -> Tensor:
    """One Euler step of the flow ODE from sigma to sigma_next (exact for a true velocity)."""
    return x + (expand_sigma(sigma_next, x) - expand_sigma(sigma, x)) * velocity


def shift_sigma(sigma: Tensor | float, shift: float) -> Tensor | float:
    """Resolution shift sigma' = s*sigma / (1 + (s-1)*sigma): monotone, fixes 0 and 1."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def sigma_grid(num_steps: int, shift: float = 1.0) -> Tensor:
    """`num_steps + 1` descending float32 levels from 1 to 0, evenly spaced before the shift."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return shift_sigma(torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64), shift).float()
