"""Training logs the stage's diagnostics (the action-branch test) every `diagnose_every` steps."""
from __future__ import annotations

import math

import pytest

from worldsim.model import WorldConfig
from worldsim.training.config import ConfigError
from worldsim.training.metrics_log import read_metrics
from worldsim.training.trainer import train
from worldsim.world import WorldModel

from test_trainer import ToyConfig, ToyStage


class DiagnosedStage(ToyStage):
    def diagnostics(self):
        self.calls = getattr(self, "calls", 0) + 1
        return {"branch/calls": float(self.calls)}


def test_diagnostics_are_logged_every_n_steps_and_at_the_end(tmp_path):
    config = ToyConfig(steps=5, diagnose_every=2, log_every=1, progress=False)
    train(DiagnosedStage(config), config, tmp_path)
    rows = [row for row in read_metrics(tmp_path / "metrics.csv") if not math.isnan(row.get("branch/calls", math.nan))]
    assert [(row["step"], row["branch/calls"]) for row in rows] == [(2, 1), (4, 2), (5, 3)]


class SilentStage(ToyStage):
    def diagnostics(self):
        return {}  # a game without a ground truth: nothing to measure


def test_a_stage_with_nothing_to_diagnose_logs_no_empty_rows(tmp_path):
    config = ToyConfig(steps=4, diagnose_every=2, log_every=4, progress=False)
    train(SilentStage(config), config, tmp_path)
    assert [row["step"] for row in read_metrics(tmp_path / "metrics.csv")] == [4]


def test_no_diagnostics_unless_asked(tmp_path):
    config = ToyConfig(steps=3, log_every=1, progress=False)
    train(DiagnosedStage(config), config, tmp_path)
    assert all("branch/calls" not in row for row in read_metrics(tmp_path / "metrics.csv"))
    with pytest.raises(ConfigError, match="diagnose_every"):
        ToyConfig(diagnose_every=-1).validate()


def test_explorer_worlds_get_the_action_branch_test_and_other_games_nothing():
    from worldsim.eval.training_probe import training_diagnostics

    assert training_diagnostics("pong", 64) is None
    assert training_diagnostics("explorer", 32) is None  # the probes read 64 px frames
    diagnose = training_diagnostics("explorer", 64)
    world = WorldModel.create(WorldConfig.preset("tiny"), ["night falls"], seed=0)
    found = diagnose(world)
    assert {"branch/move_spread_mse", "branch/seed_spread_mse", "branch/wrong_minus_true_psnr_db"} <= set(found)
    # A fresh world predicts zero velocity whatever the move: its moves do not spread at all.
    assert found["branch/move_spread_mse"] == 0.0
    assert all(math.isfinite(value) for key, value in found.items() if "idm" not in key)
    # ... nor does any event change its frames: the event branch reads 0 for every group.
    assert found["events/effect_ratio"] == 0.0
    assert {f"events/{group}_effect_ratio" for group in ("time", "weather", "season", "coins", "enemies", "lava")} <= set(found)
    # ... and keeps none of the true enemies in its teacher-forced next frames.
    assert found["sprites/enemies_kept_holding"] == 0.0 and found["sprites/enemies_kept_stepping"] == 0.0


def test_the_enemy_probe_reads_every_enemy_kept_when_the_next_frame_is_the_truth(monkeypatch):
    from worldsim.eval import training_probe

    def true_next_frames(world, frames, actions, texts, seed):
        return frames[:, 1:]

    monkeypatch.setattr(training_probe, "teacher_forced_frames", true_next_frames)
    probes = training_probe.Probes.load()
    found = training_probe._enemies_kept(probes, 64, seed=0)(world=None)
    assert found == {"sprites/enemies_kept_holding": 1.0, "sprites/enemies_kept_stepping": 1.0,
                     "sprites/stepping_held": 0.0, "sprites/stepping_wrong_way": 0.0, "sprites/stepping_missing": 0.0}


def test_the_reader_probe_scores_the_history_readers_guess_decoded(monkeypatch):
    """`reader_guessed_frames` decodes the reader's guess of frames 1..T from the true past (a fresh
    reader guesses the newest frame again), and `reader_diagnostics` runs the enemy probe on it."""
    import numpy as np
    import torch

    from worldsim.eval import training_probe
    from worldsim.eval.replay import reader_guessed_frames
    from worldsim.model.frames import to_frames, to_pixels
    from worldsim.training.common import with_grown_transformer

    assert training_probe.reader_diagnostics("pong", 64) is None
    world = with_grown_transformer(WorldModel.create(WorldConfig.preset("tiny"), ["night falls"], seed=0),
                                   ["local_reader_channels=8", "local_reader_blocks=1"])
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 64, 64, 3), dtype=np.uint8)
    guessed = reader_guessed_frames(world, frames, np.zeros((2, 3), dtype=np.int64), [], seed=0)
    with torch.no_grad():
        again = to_frames(world.autoencoder.decode(world.autoencoder.encode(to_pixels(torch.as_tensor(frames[:, :3].reshape(-1, 64, 64, 3))))))
    assert guessed.shape == (2, 3, 64, 64, 3) and np.array_equal(guessed, again.numpy().reshape(2, 3, 64, 64, 3))

    monkeypatch.setattr(training_probe, "reader_guessed_frames", lambda world, frames, *rest: frames[:, 1:])
    found = training_probe.reader_diagnostics("explorer", 64)(world=None)
    assert found["reader/enemies_kept_holding"] == 1.0 and found["reader/stepping_wrong_way"] == 0.0
