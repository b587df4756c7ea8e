"""GameSession rules (pure logic, no pygame), driven by a small deterministic fake world.

`FakeWorld` is imported by the other play tests too.
"""
from __future__ import annotations

import numpy as np
import pytest

from worldsim.play.session import GameSession
from worldsim.play.worlds import StepResult, Understanding


class FakeWorld:
    """A 1-D walk drawn into an 8x8 frame: action 4 (right) earns +1, reaching x=5 ends the episode.

    Events containing "bad" are refused by check_event, events containing "late" only at step time.
    Events containing "night" are understood as "night falls" (similarity 0.9); others are not understood.
    """

    name = "fake"
    num_actions = 5
    action_names = ("noop", "up", "down", "left", "right")
    frame_shape = (8, 8, 3)
    example_events = ("night falls", "it starts snowing")
    event_vocabulary = example_events
    is_ground_truth = False
    dataset_world = "fake"

    def __init__(self, is_ground_truth: bool = False) -> None:
        self.is_ground_truth = is_ground_truth
        self.x = 0
        self.event = ""
        self.resets: list[tuple[str, int, np.ndarray | None]] = []
        self.steps: list[tuple[int, str | None]] = []
        self.understood: list[str] = []  # texts `understand` was asked about

    def check_event(self, text: str) -> str | None:
        return "bad events are refused" if "bad" in text else None

    def event_label(self, text: str) -> str:
        return text.lower()

    def understand(self, text: str) -> Understanding:
        self.understood.append(text)
        return Understanding("night falls", 0.9) if "night" in text else Understanding(None, 0.2)

    def reset(self, event: str, seed: int, context: np.ndarray | None) -> np.ndarray:
        self.x, self.event = seed % 3, event
        self.resets.append((event, seed, context))
        return self.frame()

    def step(self, action: int, event: str | None) -> StepResult:
        if event is not None and "late" in event:
            raise ValueError("late events are refused at step time")
        self.steps.append((action, event))
        if event is not None:
            self.event = event
        moved = action == 4
        self.x += int(moved)
        return StepResult(self.frame(), float(moved), self.x >= 5)

    def frame(self) -> np.ndarray:
        frame = np.zeros(self.frame_shape, np.uint8)
        frame[0, self.x % 8] = 255
        frame[1, :, 0] = len(self.event)
        return frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_session(*worlds: FakeWorld, **kwargs) -> tuple[GameSession, FakeClock]:
    clock = FakeClock()
    session = GameSession(list(worlds) or [FakeWorld()], clock=clock, **kwargs)
    session.reset()
    return session, clock


def test_held_keys_pick_the_latest_and_release_falls_back():
    session, _ = make_session()
    assert session.current_action() == 0
    session.press_action(1)
    session.press_action(4)
    assert session.current_action() == 4
    session.release_action(4)
    assert session.current_action() == 1
    session.press_action(9)  # outside the world's actions: ignored
    assert session.current_action() == 1
    session.release_all_actions()
    assert session.current_action() == 0


def test_tick_steps_world_and_accumulates_return():
    world = FakeWorld()
    session, _ = make_session(world)
    session.press_action(4)
    assert session.tick() and session.tick()
    assert world.steps == [(4, None), (4, None)]
    hud = session.hud()
    assert (hud.step, hud.returns) == (2, (2.0,))
    assert (session.frames[0][0, 2] == 255).all()


def test_pause_and_help_stop_the_world():
    world = FakeWorld()
    session, _ = make_session(world)
    session.toggle_pause()
    assert not session.tick()
    assert session.hud().paused
    session.toggle_pause()
    session.toggle_help()
    assert not session.tick()
    session.toggle_help()
    assert session.tick()
    assert len(world.steps) == 1


def test_typed_event_applies_on_next_frame():
    world = FakeWorld()
    session, _ = make_session(world)
    session.open_text_box()
    for character in "night\x00 falls":  # the control character is dropped
        session.type_text(character)
    session.backspace()
    session.type_text("s")
    assert session.hud().text_box == "night falls"
    session.submit_text_box()
    hud = session.hud()
    assert hud.text_box is None and hud.pending_event == "night falls" and hud.event == ""
    session.tick()
    assert world.steps[-1] == (0, "night falls")
    assert session.hud().event == "night falls" and session.hud().pending_event is None
    session.tick()
    assert world.steps[-1] == (0, None)  # an event is sent once, then stays in force


def test_cancelled_and_empty_text_change_nothing():
    world = FakeWorld()
    session, _ = make_session(world)
    session.open_text_box()
    session.type_text("snow")
    session.cancel_text_box()
    session.open_text_box()
    session.type_text("   ")
    session.submit_text_box()
    session.tick()
    assert world.steps == [(0, None)]
    assert session.hud().message == ""


def test_rejected_event_shows_message_and_game_continues():
    world = FakeWorld()
    session, clock = make_session(world, event="dawn")
    assert not session.request_event("a bad idea")
    assert "bad events are refused" in session.hud().message
    assert session.request_event("too late")
    assert session.tick()  # refused at step time: the frame is made without it
    assert world.steps == [(0, None)]
    assert session.hud().event == "dawn"
    assert "late events are refused" in session.hud().message
    clock.now += 10
    assert session.hud().message == ""


def test_number_keys_trigger_example_events():
    world = FakeWorld()
    session, _ = make_session(world)
    session.trigger_example(1)
    session.trigger_example(7)  # no 8th example: nothing happens
    session.tick()
    assert world.steps == [(0, "it starts snowing")]


def test_termination_restarts_after_the_final_frame():
    world = FakeWorld()
    session, _ = make_session(world, seed=0)
    for _ in range(5):
        session.tick(action=4)
    assert session.episode == 0 and session.hud().returns == (5.0,)
    assert "episode over" in session.hud().message
    session.tick(action=4)  # shows the new episode's first frame
    assert session.episode == 1 and session.hud().returns == (0.0,) and session.hud().step == 0
    assert world.resets[-1][1] == 1  # episode k uses seed + k


def test_ground_truth_world_seeds_the_other_as_context():
    neural, real = FakeWorld(), FakeWorld(is_ground_truth=True)
    session, _ = make_session(neural, real, event="fog")
    assert real.resets[0][2] is None
    np.testing.assert_array_equal(neural.resets[0][2], session.frames[1])
    session.request_event("night falls")
    session.tick(action=4)
    assert neural.steps == real.steps == [(4, "night falls")]
    assert session.hud().returns == (1.0, 1.0)


def test_worlds_must_share_a_frame_shape():
    other = FakeWorld()
    other.frame_shape = (16, 16, 3)
    with pytest.raises(ValueError, match="frame shape"):
        GameSession([FakeWorld(), other])


def test_frame_rate_and_model_time_come_from_the_clock():
    session, clock = make_session()
    for _ in range(11):
        clock.now += 0.1
        session.tick()
    assert session.hud().fps == pytest.approx(10.0)
    clock.now += 5  # stalled: the HUD does not claim the old rate
    assert session.hud().fps == 0.0


def test_hud_says_how_the_primary_world_understands_the_event_once_per_event():
    primary, other = FakeWorld(), FakeWorld()
    session, _ = make_session(primary, other)
    assert session.hud().understood is None  # no event in force
    session.request_event("the night comes")
    session.tick()
    session.tick()
    assert session.hud().understood == Understanding("night falls", 0.9)
    assert primary.understood == ["the night comes"] and other.understood == []  # asked once, primary only
    session.request_event("purple elephants")
    session.tick()
    assert session.hud().understood == Understanding(None, 0.2)  # shown as "not understood"


def test_reset_understands_the_start_event():
    world = FakeWorld()
    session, _ = make_session(world, event="a dark night")
    assert session.hud().understood == Understanding("night falls", 0.9) and world.understood == ["a dark night"]
