"""Reconstruction measures: per-event PSNR, per-tile-class PSNR and parser agreement."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from worldsim.eval import reconstruction
from worldsim.eval.true_frames import EventClasses
from worldsim.model import FrameAutoencoder, WorldConfig


def test_parser_agreement_per_class():
    original = np.array([[[0, 0], [10, 9]]], dtype=np.uint8)  # grass, grass, player, enemy
    recon = np.array([[[0, 1], [10, 0]]], dtype=np.uint8)
    agreement = reconstruction.parser_agreement(recon, original)
    assert agreement["all"] == pytest.approx(0.5)
    assert agreement["grass"] == pytest.approx(0.5)
    assert agreement["player"] == 1.0 and agreement["enemy"] == 0.0
    assert "coin" not in agreement  # absent classes are not reported


def test_psnr_by_tile_class_looks_only_at_that_class_pixels():
    frames = np.zeros((1, 8, 8, 3), np.uint8)
    tiles = np.array([[[0, 0], [0, 10]]], dtype=np.uint8)  # the player in the bottom-right tile
    recon = frames.copy()
    recon[0, 4:, 4:] = 255 // 3 + 1  # error only on the player's pixels
    result = reconstruction.psnr_by_tile_class(recon, frames, tiles)
    assert result["grass"] == 100.0  # exact, capped
    assert result["player"] == pytest.approx(10 * np.log10(255**2 / 86**2))


def test_psnr_by_event_groups_frames_by_class():
    classes = EventClasses({"time": ("day", "night"), "weather": ("clear", "rain")})
    frame_psnr = np.array([30.0, 40.0, 50.0])
    events = {"time": np.array([0, 0, 1]), "weather": np.array([1, 1, 1])}
    result = reconstruction.psnr_by_event(frame_psnr, events, classes)
    assert result == {"time/day": 35.0, "time/night": 50.0, "weather/rain": 40.0}


def test_rejects_mismatched_shapes():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="do not match"):
        reconstruction.psnr_by_tile_class(frames[:1], frames, np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="num_frames"):
        reconstruction.held_out_frames(0)


class _ParserStub:
    """Reads a tile as 'player' when its mean brightness is high, else 'grass'."""

    def parse_tiles(self, frames: np.ndarray) -> np.ndarray:
        n, h, w, _ = frames.shape
        means = frames.reshape(n, h // 4, 4, w // 4, 4, 3).mean(axis=(2, 4, 5))
        return np.where(means > 127, 10, 0).astype(np.uint8)


def test_evaluate_reconstruction_on_a_tiny_model():
    torch.manual_seed(0)
    autoencoder = FrameAutoencoder(WorldConfig.preset("tiny").autoencoder).train()
    data = reconstruction.held_out_frames(8, seed=3, num_worlds=4)
    assert data.frames.shape == (8, 64, 64, 3) and data.tiles.shape == (8, 16, 16)
    report = reconstruction.evaluate_reconstruction(autoencoder, data, _ParserStub())
    assert autoencoder.training  # mode restored
    assert report["frames"] == 8
    # each group partitions the frames, so its worst class is at most the overall mean
    assert report["psnr_db_worst_event"] <= report["psnr_db"] + 1e-9
    assert set(report["psnr_db_by_event"]) >= {f"time/{data.event_classes.groups['time'][c]}"
                                                for c in np.unique(data.events["time"])}
    assert 0.0 <= report["parser_agreement"]["all"] <= 1.0
    # an untrained autoencoder is far from the frames; a perfect one would give the PSNR cap
    assert report["psnr_db"] < 30.0
    assert "player" in report["psnr_db_by_tile_class"]  # the player is always in view
