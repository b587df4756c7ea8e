"""Flow-matching maths and frame conversions: what each pure function means."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsim.model import flow, to_frames, to_pixels


def _sample(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(2, 3, 4, 5, 5, generator=gen, dtype=torch.float64)
    noise = torch.randn(2, 3, 4, 5, 5, generator=gen, dtype=torch.float64)
    sigma = torch.rand(2, 3, generator=gen, dtype=torch.float64)
    return x0, noise, sigma


def test_add_noise_endpoints_and_per_frame_broadcast():
    x0, noise, sigma = _sample()
    assert torch.equal(flow.add_noise(x0, noise, 0.0), x0)
    assert torch.equal(flow.add_noise(x0, noise, 1.0), noise)
    noisy = flow.add_noise(x0, noise, sigma)
    frame = (1 - sigma[1, 2]) * x0[1, 2] + sigma[1, 2] * noise[1, 2]
    assert torch.allclose(noisy[1, 2], frame)


def test_true_velocity_recovers_clean_sample_and_noise():
    x0, noise, sigma = _sample()
    noisy = flow.add_noise(x0, noise, sigma)
    velocity = flow.velocity_target(x0, noise)
    assert torch.allclose(flow.x0_from_velocity(noisy, sigma, velocity), x0)
    assert torch.allclose(flow.noise_from_velocity(noisy, sigma, velocity), noise)


def test_euler_step_with_true_velocity_lands_on_the_path():
    x0, noise, sigma = _sample()
    sigma_next = sigma * 0.3
    stepped = flow.euler_step(flow.add_noise(x0, noise, sigma), flow.velocity_target(x0, noise),
                              sigma, sigma_next)
    assert torch.allclose(stepped, flow.add_noise(x0, noise, sigma_next))


def test_shift_fixes_endpoints_is_monotone_and_pushes_up():
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    shifted = flow.shift_sigma(grid, 3.0)
    assert shifted[0] == 0 and shifted[-1] == 1
    assert (shifted.diff() > 0).all()
    assert (shifted[1:-1] > grid[1:-1]).all()
    assert torch.allclose(flow.shift_sigma(grid, 1.0), grid)


def test_sigma_grid():
    grid = flow.sigma_grid(4, shift=1.0)
    assert torch.allclose(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    shifted = flow.sigma_grid(2, shift=3.0)
    assert shifted.tolist() == pytest.approx([1.0, 0.75, 0.0])
    with pytest.raises(ValueError, match="num_steps"):
        flow.sigma_grid(0)


def test_sigma_shape_must_prefix_sample_shape():
    x0, noise, _ = _sample()
    with pytest.raises(ValueError, match="prefix"):
        flow.add_noise(x0, noise, torch.rand(3, 2))


def test_frames_pixels_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    pixels = to_pixels(frames)
    assert pixels.shape == (6, 3, 8, 8) and pixels.dtype == torch.float32
    assert pixels.min() >= -1 and pixels.max() <= 1
    assert np.array_equal(to_frames(pixels).numpy(), frames.reshape(6, 8, 8, 3))


def test_to_frames_rounds_and_clamps():
    pixels = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert to_frames(pixels)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_frame_conversion_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        to_pixels(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        to_pixels(np.zeros((2, 8, 8, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="N, 3, H, W"):
        to_frames(torch.zeros(2, 8, 8, 3))
