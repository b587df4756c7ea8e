"""Play the real Explorer headless: keys and typed events through the pygame queue, HUD, recording."""
from __future__ import annotations

import numpy as np
import pygame
import pytest

from test_play_app import press, release, type_text
from worldsim.data import Dataset
from worldsim.envs.explorer import events
from worldsim.envs.explorer.play import RealExplorer
from worldsim.play.app import PlayApp
from worldsim.play.recording import SessionRecorder
from worldsim.play.session import GameSession


@pytest.fixture
def recorded_game(tmp_path):
    world = RealExplorer()
    recorder = SessionRecorder(tmp_path / "rec", world=world.dataset_world, frame_shape=world.frame_shape,
                               num_actions=world.num_actions, event_texts=world.event_vocabulary,
                               label=world.event_label)
    session = GameSession([world], event="a sunny meadow", seed=3, listeners=[recorder])
    app = PlayApp(session, scale=2, headless=True)
    shown: list[np.ndarray] = []
    app.frame_sinks.append(lambda image: shown.append(session.frames[0].copy()))
    yield app, recorder, shown
    app.close()


def test_keys_and_typed_events_play_the_real_explorer_and_record_a_dataset(recorded_game, tmp_path):
    app, recorder, shown = recorded_game
    app.tick()
    assert shown[0].shape == (64, 64, 3) and shown[0].dtype == np.uint8
    press(pygame.K_RIGHT)
    app.tick()
    app.tick()
    release(pygame.K_RIGHT)
    press(pygame.K_t, "t")
    type_text("It starts snowing")
    press(pygame.K_RETURN, "\r")
    app.tick()
    hud = app.session.hud()
    assert hud.event == "It starts snowing" and hud.step == 3
    assert not np.array_equal(shown[-1], shown[-2])  # snow changes the picture

    press(pygame.K_RETURN, "\r")
    type_text("purple elephants dance")
    press(pygame.K_RETURN, "\r")
    press(pygame.K_3)  # the third example: night falls
    app.tick()
    hud = app.session.hud()
    assert "unknown Explorer event 'purple elephants dance'" in hud.message
    assert hud.event == "night falls" and hud.step == 4 and app.running
    app.tick()
    recorder.close()

    dataset = Dataset(tmp_path / "rec", verify=True)
    shard = dataset.load_shard(0)
    assert dataset.world == "explorer" and len(dataset) == 5
    np.testing.assert_array_equal(shard.frames, np.stack(shown[:5]))
    np.testing.assert_array_equal(shard.actions, [4, 4, 0, 0, 0])
    texts = [dataset.event_texts[i] for i in shard.events]
    day, snow, night = (events.parse_event(t).canonical for t in ("a sunny meadow", "snow", "night falls"))
    assert texts == [day, day, day, snow, night]
