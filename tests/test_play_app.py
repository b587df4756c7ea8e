"""The pygame front end, headless (SDL dummy driver): real key events through the pygame queue."""
from __future__ import annotations

import numpy as np
import pygame
import pytest

from test_play_session import FakeWorld
from worldsim.play.app import NoDisplayError, PlayApp
from worldsim.play.controls import example_key_name
from worldsim.play.render import Layout
from worldsim.play.session import GameSession

SCALE = 4


@pytest.fixture
def game():
    world = FakeWorld()
    session = GameSession([world], event="dawn")
    app = PlayApp(session, scale=SCALE, headless=True)
    yield app, world
    app.close()


def press(key: int, unicode: str = "") -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, unicode=unicode, mod=0))


def release(key: int) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0))


def type_text(text: str) -> None:
    for character in text:
        press(pygame.key.key_code(character) if character != " " else pygame.K_SPACE, character)


def test_movement_keys_act_while_held(game):
    app, world = game
    app.tick()  # the first tick shows the reset frame
    press(pygame.K_d)
    app.tick()
    app.tick()
    release(pygame.K_d)
    press(pygame.K_UP)
    app.tick()
    release(pygame.K_UP)
    app.tick()
    assert [action for action, _ in world.steps] == [4, 4, 1, 0]
    hud = app.session.hud()
    assert hud.step == 4 and hud.returns == (2.0,)


def test_window_shows_the_frame_scaled_with_nearest_neighbour(game):
    app, world = game
    app.tick()
    image = app.window_image()
    layout = app.layout
    left, top = layout.panel_origins[0]
    panel = image[top:top + 8 * SCALE, left:left + 8 * SCALE]
    expected = np.repeat(np.repeat(world.frame(), SCALE, axis=0), SCALE, axis=1)
    np.testing.assert_array_equal(panel, expected)
    assert image.shape[:2] == (layout.window_size[1], layout.window_size[0])
    hud_strip = image[layout.hud_top:]
    assert len(np.unique(hud_strip.reshape(-1, 3), axis=0)) > 4  # text was drawn on the HUD


def test_typed_event_goes_through_the_text_box(game):
    app, world = game
    app.tick()
    press(pygame.K_t, "t")
    app.tick()
    assert app.session.text_box == ""  # the T that opened the box is not typed into it
    type_text("night fallz")
    press(pygame.K_BACKSPACE)
    press(pygame.K_s, "s")
    press(pygame.K_d, "d")  # a movement key types while the box is open
    press(pygame.K_BACKSPACE)
    app.tick()
    assert app.session.hud().text_box == "night falls"
    press(pygame.K_RETURN, "\r")
    app.tick()
    assert world.steps[-1] == (0, "night falls")
    assert app.session.hud().event == "night falls"


def test_escape_cancels_typing_and_bad_events_do_not_crash(game, capsys):
    app, world = game
    app.tick()
    press(pygame.K_RETURN, "\r")
    type_text("snow")
    press(pygame.K_ESCAPE)
    app.tick()
    assert app.session.text_box is None and world.steps[-1] == (0, None)
    press(pygame.K_t, "t")
    type_text("a bad event")
    press(pygame.K_KP_ENTER)
    app.tick()
    assert app.running and app.session.hud().event == "dawn"
    assert "bad events are refused" in app.session.hud().message
    assert "bad events are refused" in capsys.readouterr().out  # headless: messages are printed


def test_number_keys_help_pause_reset_and_quit(game):
    app, world = game
    app.tick()
    press(pygame.K_2)
    app.tick()
    assert world.steps[-1] == (0, "it starts snowing")
    press(pygame.K_h)
    app.tick()
    assert app.session.help_visible and len(world.steps) == 1  # help pauses the world
    press(pygame.K_ESCAPE)  # closes help rather than quitting
    press(pygame.K_p)
    app.tick()
    assert not app.session.help_visible and app.session.paused and len(world.steps) == 1
    assert app.frames_shown == 2  # the reset frame and one step; paused ticks show no new frame
    press(pygame.K_p)
    press(pygame.K_r)
    app.tick()
    assert app.session.episode == 1 and len(world.resets) == 2
    press(pygame.K_ESCAPE)
    assert not app.tick() and not app.running


def test_run_follows_schedule_and_scripted_actions_and_feeds_sinks(game):
    app, world = game
    images = []
    app.frame_sinks.append(images.append)
    app.run(frames=4, actions=iter([4, 2, 3]), schedule={0: "ignored here", 2: "night falls"})
    assert world.steps == [(4, None), (2, "night falls"), (3, None)]
    assert len(images) == 4 and images[0].shape == (*app.layout.window_size[::-1], 3)


def test_window_close_stops_run(game):
    app, world = game
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    app.run(frames=10)
    assert world.steps == [] and not app.running


@pytest.mark.parametrize("driver", ["no-such-video-driver", "offscreen"])
def test_missing_display_suggests_headless(monkeypatch, driver):
    # Without X or Wayland, SDL either fails or silently picks its invisible offscreen driver.
    monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    session = GameSession([FakeWorld()])
    with pytest.raises(NoDisplayError, match="--headless"):
        PlayApp(session, scale=SCALE, headless=False)


def test_layout_centres_narrow_panels_and_places_compare_panels_side_by_side():
    single = Layout.build((64, 64, 3), num_panels=1, scale=2)
    assert single.window_size[0] >= 480 and single.panel_origins[0][0] > 0
    double = Layout.build((64, 64, 3), num_panels=2, scale=8)
    (left_x, _), (right_x, _) = double.panel_origins
    assert right_x - left_x >= 512 and double.window_size[0] >= 1024
    with pytest.raises(ValueError, match="scale"):
        Layout.build((64, 64, 3), num_panels=1, scale=0)


def test_shift_number_keys_reach_the_second_ten_examples(game):
    app, world = game
    world.example_events = tuple(f"event {index}" for index in range(12))
    app.tick()
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_2, unicode="@", mod=pygame.KMOD_LSHIFT))
    app.tick()
    press(pygame.K_0)
    app.tick()
    assert [event for _, event in world.steps] == ["event 11", "event 9"]
    assert [example_key_name(index) for index in (0, 9, 10, 19)] == ["1", "0", "S+1", "S+0"]


def test_hud_line_reads_the_understood_event():
    from worldsim.play.render import understanding_line
    from worldsim.play.worlds import Understanding

    assert understanding_line(None) == ""
    assert understanding_line(Understanding("night falls", 0.93)) == "understood as: night falls  (similarity 0.93)"
    assert understanding_line(Understanding("night falls")) == "understood as: night falls"
    assert understanding_line(Understanding(None, 0.21)).startswith("not understood")


def test_compare_panel_labels_sit_above_the_game_views():
    """Each side-by-side panel shows its whole frame: the name/return label is drawn in a strip above."""
    worlds = [FakeWorld(), FakeWorld()]
    app = PlayApp(GameSession(worlds), scale=SCALE, headless=True)
    try:
        app.tick()
        image = app.window_image()
        expected = np.repeat(np.repeat(worlds[0].frame(), SCALE, axis=0), SCALE, axis=1)
        for left, top in app.layout.panel_origins:
            assert top > 0
            np.testing.assert_array_equal(image[top:top + 8 * SCALE, left:left + 8 * SCALE], expected)
            strip = image[:top, left:left + 8 * SCALE]
            assert len(np.unique(strip.reshape(-1, 3), axis=0)) > 2  # the label's text
        assert app.layout.hud_top == app.layout.panel_origins[0][1] + 8 * SCALE
    finally:
        app.close()
