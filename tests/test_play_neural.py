"""Play a (tiny, randomly initialised) neural world: keys, typed events, --compare, loading errors."""
from __future__ import annotations

import pygame
import pytest

from test_play_app import press, release, type_text
from gif_reader import read_gif
from worldsim.data import Dataset
from worldsim.envs.explorer import events
from worldsim.model import WorldConfig
from worldsim.play.app import PlayApp
from worldsim.play.cli import build_parser, play
from worldsim.play.recording import SessionRecorder
from worldsim.play.session import GameSession
from worldsim.play.worlds import NeuralWorld
from worldsim.world import WorldModel

EVENT_TEXTS = [event.canonical for event in events.EVENT_TYPES[:4]] + ["it is night", "a sunny meadow"]


@pytest.fixture(scope="module")
def world_model():
    world_model = WorldModel.create(WorldConfig.preset("tiny"), event_texts=EVENT_TEXTS, seed=0)
    # An untrained cells reward head gives every outcome about 1 %: episodes do not end at once.
    assert world_model.config.reward.head == "cells"
    return world_model


@pytest.fixture(scope="module")
def checkpoint(world_model, tmp_path_factory):
    return str(world_model.save_pretrained(tmp_path_factory.mktemp("world") / "tiny"))


def run(argv: list[str]) -> int:
    return play(build_parser().parse_args(argv))


def test_keys_and_typed_events_drive_the_neural_world_and_record(world_model, tmp_path):
    world = NeuralWorld(world_model, "tiny", seed=0)
    assert world.example_events == tuple(EVENT_TEXTS[:4])  # canonical Explorer texts it knows
    assert world.event_vocabulary == tuple(EVENT_TEXTS)  # paraphrases too: recordings keep them
    recorder = SessionRecorder(tmp_path / "rec", world=world.dataset_world, frame_shape=world.frame_shape,
                               num_actions=world.num_actions, event_texts=world.event_vocabulary,
                               label=world.event_label)
    session = GameSession([world], event="a sunny meadow", listeners=[recorder])
    app = PlayApp(session, scale=2, headless=True)
    try:
        app.tick()
        press(pygame.K_w)
        app.tick()
        release(pygame.K_w)
        press(pygame.K_t, "t")
        type_text("it is night")
        press(pygame.K_RETURN, "\r")
        app.tick()
        press(pygame.K_RETURN, "\r")
        type_text("word " * 60)  # more tokens than the tokenizer takes
        press(pygame.K_RETURN, "\r")
        app.tick()
        hud = app.session.hud()
        assert "too long" in hud.message and hud.event == "it is night" and app.running
        assert hud.model_ms > 0 and session.frames[0].shape == (64, 64, 3)
    finally:
        app.close()
    recorder.close()
    dataset = Dataset(tmp_path / "rec", verify=True)
    assert dataset.world == "neural:tiny" and dataset.frame_shape == (64, 64, 3)
    shard = dataset.load_shard(0)
    assert shard.actions.tolist() == [1, 0, 0]
    assert [dataset.event_texts[i] for i in shard.events] == ["a sunny meadow", "a sunny meadow", "it is night"]
    assert not shard.terminated.any()


def test_cli_plays_a_checkpoint_folder_with_video(checkpoint, tmp_path, capsys):
    argv = ["--checkpoint", checkpoint, "--headless", "--frames", "4", "--scale", "1", "--actions", "random",
            "--events", "0:day breaks,2:night falls", "--steps", "1", "--video", str(tmp_path / "play.gif")]
    assert run(argv) == 0
    assert "played" in capsys.readouterr().out
    assert len(read_gif((tmp_path / "play.gif").read_bytes())[0]) == 4


def test_compare_shows_the_real_explorer_beside_the_neural_world(checkpoint, tmp_path):
    argv = ["--checkpoint", checkpoint, "--compare", "--headless", "--frames", "3", "--scale", "2",
            "--events", "0:night falls", "--video", str(tmp_path / "compare.gif")]
    assert run(argv) == 0
    frames, _, _ = read_gif((tmp_path / "compare.gif").read_bytes())
    assert frames[0].shape[1] >= 2 * 64 * 2  # two panels side by side


def test_unknown_checkpoint_names_what_was_tried(tmp_path, capsys):
    assert run(["--checkpoint", str(tmp_path / "missing"), "--headless", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "tried" in err and "--world real" in err and "Traceback" not in err


def test_missing_bundled_world_explains_and_auto_falls_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("worldsim.pretrained.PRETRAINED_DIR", tmp_path)  # as before training ships it
    assert run(["--headless", "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "explorer-64" in err and "--checkpoint DIR" in err and "--world real" in err
    assert run(["--world", "auto", "--headless", "--frames", "2"]) == 0
    assert "playing the real Explorer game instead" in capsys.readouterr().err
