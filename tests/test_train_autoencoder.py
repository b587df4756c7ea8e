"""Stage `autoencoder`: its loss terms, its learning-rate decay, and exact resume."""
from __future__ import annotations

import pytest
import torch

from resume_helpers import straight_and_resumed
from worldsim.training import stages
from worldsim.training.autoencoder import cosine_lr_factor, dark_pixels_loss, worst_pixels_loss
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.trainer import seed_everything, train


def test_worst_pixels_loss_sees_a_small_sprite_a_frame_mean_hides():
    target = torch.zeros(2, 3, 8, 8)
    recon = target.clone()
    recon[0, :, 0, 0] = 1.0  # one wrong pixel of 64 in the first image
    # the worst 1/64 of each image's pixels: that pixel (error 1) and, in the second image, zero
    assert worst_pixels_loss(recon, target, 1 / 64).item() == pytest.approx(0.5)
    assert torch.nn.functional.mse_loss(recon, target).item() == pytest.approx(1 / 128)
    assert worst_pixels_loss(recon, target, 1.0).item() == pytest.approx(1 / 128)


def test_worst_pixels_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="fraction"):
        worst_pixels_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 0.0)
    with pytest.raises(ValueError, match="must be equal"):
        worst_pixels_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 8), 0.5)


def test_dark_pixels_loss_weighs_an_error_on_black_more_than_on_white():
    black, white = -torch.ones(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    error = torch.full((1, 3, 2, 2), 0.1)
    on_white = dark_pixels_loss(white + error, white, floor=0.25)
    on_black = dark_pixels_loss(black + error, black, floor=0.25)
    assert on_white.item() == pytest.approx(0.01)  # plain squared error on white
    assert on_black.item() == pytest.approx(0.01 * 25)  # ((1 + 0.25) / 0.25)² on black
    with pytest.raises(ValueError, match="must be equal"):
        dark_pixels_loss(white, white[..., :1], 0.25)


def test_cosine_lr_factor_runs_from_one_to_the_final_fraction():
    assert cosine_lr_factor(0, 101, 0.1) == pytest.approx(1.0)
    assert cosine_lr_factor(50, 101, 0.1) == pytest.approx(0.55)
    assert cosine_lr_factor(100, 101, 0.1) == pytest.approx(0.1)
    assert cosine_lr_factor(7, 101, 1.0) == pytest.approx(1.0)  # a fraction of 1 keeps the rate


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from worldsim.data.generate import generate
    from worldsim.envs.explorer.dataset import GenerateConfig

    folder = tmp_path_factory.mktemp("data") / "explorer32"
    generate(folder, GenerateConfig(frames=256, seed=5, size=32, shard_frames=256), progress=False)
    return folder


def _config(tiny_data, *extra: str):
    overrides = [f"data={tiny_data}", "size=tiny", "steps=4", "batch_size=4", "checkpoint_every=2", "log_every=1",
                 "progress=false", "lr=2e-3", "scale_frames=8", "eval_frames=4", *extra]
    return stages.build_config("autoencoder", None, overrides)


def test_rejects_bad_loss_settings(tiny_data):
    with pytest.raises(ConfigError, match="worst_pixels"):
        _config(tiny_data, "worst_pixels_fraction=0").validate()
    with pytest.raises(ConfigError, match="final_lr_fraction"):
        _config(tiny_data, "final_lr_fraction=2").validate()
    with pytest.raises(ConfigError, match="dark_floor"):
        _config(tiny_data, "dark_floor=0").validate()


def test_init_fine_tunes_an_existing_world(tiny_data, tmp_path):
    """With `init`, the stage continues that world's autoencoder (and keeps its training history)."""
    first = _config(tiny_data, "steps=2")
    stages.run_stage("autoencoder", first, tmp_path / "first")
    tuned = _config(tiny_data, "steps=2", f"init={tmp_path / 'first' / 'final'}", "dark_weight=1.0")
    seed_everything(tuned.seed)
    _, stage_class = stages.stage_classes("autoencoder")
    stage = stage_class(tuned, DistributedContext())
    from safetensors.torch import load_file

    start = load_file(tmp_path / "first" / "final" / "autoencoder.safetensors")
    assert all(torch.equal(start[k], v) for k, v in stage.autoencoder.state_dict().items())
    train(stage, tuned, tmp_path / "tuned")
    history = [record["stage"] for record in stage.world.metadata["training"]]
    assert history == ["autoencoder", "autoencoder"]


def test_killed_stage_resumes_to_identical_weights(tiny_data, tmp_path):
    """The decayed learning rate and the worst-pixel term resume exactly with the trainer."""
    config = _config(tiny_data)
    straight, resumed = straight_and_resumed("autoencoder", config, tmp_path, kill_at_step=3)  # checkpoint at 2

    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "final" / "autoencoder.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "autoencoder.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.last_loss == straight.last_loss
