"""Probe training on real Explorer frames: labels, a tiny run that learns, files, bundled accuracies."""
import json

import numpy as np
import pytest
import torch

from worldsim.envs.explorer import TILE_CLASSES
from worldsim.eval import probes as probe_module
from worldsim.eval.probe_nets import FrameParser, frames_to_input
from worldsim.eval.probes import ProbeError, Probes, ProbeTrainingConfig, train_probes
from worldsim.eval.true_frames import EventClasses, StreamConfig, TrueFrameStream


@pytest.fixture(scope="module")
def event_classes():
    return EventClasses.from_world()


@pytest.fixture(scope="module")
def tiny_probes(tmp_path_factory):
    config = ProbeTrainingConfig(parser_steps=40, classifier_steps=2, inverse_dynamics_steps=2, batch_worlds=16,
                                 width=8, eval_batches=4, learning_rate=1e-2, warmup_steps=5)
    folder = tmp_path_factory.mktemp("probes")
    trained, metadata = train_probes(config, out=folder, progress=False)
    return trained, metadata, folder


def test_event_classes_merge_states_that_look_alike(event_classes):
    assert event_classes.groups["time"] == ("day", "dusk", "night")
    assert event_classes.groups["weather"][0] == "clear"
    # Ordinary enemies look like neither "many" nor "none": the untouched state is its own class.
    assert event_classes.groups["enemies"] == ("base", "enemies_appear", "enemies_vanish")
    assert event_classes.class_of("time", None) == event_classes.class_of("time", "day") == 0
    labels = event_classes.labels([{g: None for g in event_classes.groups}, {**{g: None for g in event_classes.groups},
                                                                             "time": "night"}])
    assert labels["time"].tolist() == [0, 2]


def test_frame_stream_batches_are_consistent(event_classes):
    stream = TrueFrameStream(StreamConfig(num_worlds=8), seed=0, event_classes=event_classes)
    batch = stream.next_batch()
    assert batch.frames.shape == batch.next_frames.shape == (8, 64, 64, 3)
    assert batch.tiles.shape == (8, 16, 16) and batch.tiles.max() < len(TILE_CLASSES)
    assert not (batch.moved & (batch.actions == 0)).any()  # noop never moves the player
    assert set(batch.events) == set(event_classes.groups)


def test_held_out_stream_plays_other_maps(event_classes):
    config = StreamConfig(num_worlds=8)
    train = TrueFrameStream(config, seed=0, event_classes=event_classes)
    held_out = TrueFrameStream(config, seed=0, event_classes=event_classes, held_out=True)
    train_seeds = {train._world.state(i)["seed"] for i in range(8)}
    held_out_seeds = {held_out._world.state(i)["seed"] for i in range(8)}
    assert all(s % 2 == 0 for s in train_seeds) and all(s % 2 == 1 for s in held_out_seeds)


def test_tiny_training_learns_tiles_above_the_majority_class(tiny_probes, event_classes):
    trained, metadata, _ = tiny_probes
    held_out = metadata["held_out"]
    stream = TrueFrameStream(StreamConfig(num_worlds=16), seed=5, event_classes=event_classes, held_out=True)
    tiles = np.concatenate([stream.next_batch().tiles for _ in range(4)])
    majority_share = np.bincount(tiles.ravel()).max() / tiles.size
    assert held_out["parser_tile_accuracy"] > majority_share + 0.15
    assert set(metadata["targets"]) == set(probe_module.TARGETS)
    assert metadata["targets"]["parser_tile_accuracy"]["met"] is False  # 40 steps are not enough


def test_saved_probes_load_to_the_same_predictions(tiny_probes):
    trained, _, folder = tiny_probes
    loaded = Probes.load(folder)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.parse_tiles(frames), trained.parse_tiles(frames))
    np.testing.assert_allclose(loaded.features(frames), trained.features(frames), rtol=1e-5, atol=1e-5)
    assert loaded.features(frames).shape == (3, 4 * 8 * 2)
    assert json.loads((folder / "probes.json").read_text())["held_out"]["frames"] == 64


def test_loading_rejects_missing_files_and_tampered_tensors(tiny_probes, tmp_path):
    from safetensors.torch import load_file, save_file

    _, _, folder = tiny_probes
    with pytest.raises(ProbeError, match="no probes"):
        Probes.load(tmp_path)
    (tmp_path / "probes.json").write_text((folder / "probes.json").read_text())
    tensors = load_file(folder / "probes.safetensors")
    name = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != name}, tmp_path / "probes.safetensors")
    with pytest.raises(ProbeError, match=name):
        Probes.load(tmp_path)
    save_file({**tensors, name: torch.zeros(3, 3, dtype=torch.float16)}, tmp_path / "probes.safetensors")
    with pytest.raises(ProbeError, match="shape"):
        Probes.load(tmp_path)


def test_probe_inputs_are_checked_and_size_agnostic():
    parser = FrameParser(num_tile_classes=4, width=8)
    assert parser(frames_to_input(np.zeros((2, 32, 48, 3), np.uint8))).shape == (2, 4, 8, 12)
    with pytest.raises(ValueError, match="uint8"):
        frames_to_input(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="multiples of 4"):
        frames_to_input(np.zeros((1, 30, 32, 3), np.uint8))


def test_bundled_probes_report_their_held_out_accuracy():
    metadata = probe_module.read_metadata()
    assert metadata["held_out"]["frames"] >= 1000
    for key, target in probe_module.TARGETS.items():
        gap = metadata["targets"][key]
        assert gap["target"] == target and gap["measured"] == metadata["held_out"][key]
    assert (probe_module.BUNDLED_PROBES / "probes.safetensors").stat().st_size < 1 << 20
