"""`--record`: a played session becomes a standard dataset that `Dataset` loads."""
from __future__ import annotations

import numpy as np
import pytest

from test_play_session import FakeWorld
from worldsim.data import NO_EVENT, Dataset, DatasetError
from worldsim.play.recording import SessionRecorder
from worldsim.play.session import GameSession


def record(tmp_path, world: FakeWorld, warnings: list[str]) -> tuple[GameSession, SessionRecorder]:
    recorder = SessionRecorder(tmp_path / "rec", world=world.dataset_world, frame_shape=world.frame_shape,
                               num_actions=world.num_actions, event_texts=world.example_events,
                               label=world.event_label, warn=warnings.append)
    return GameSession([world], event="Night Falls", listeners=[recorder]), recorder


def test_recording_aligns_frames_actions_rewards_events_and_episodes(tmp_path):
    world, warnings = FakeWorld(), []
    session, recorder = record(tmp_path, world, warnings)
    session.reset()
    frames = [session.frames[0]]
    for action in (4, 0, 4, 4, 4, 4):  # x: 0 -> 5 ends the episode on the sixth step
        session.tick(action)
        frames.append(session.frames[0])
    session.tick()  # new episode (seed 1 -> x = 1); the terminal frame is not a dataset row
    frames_second = [session.frames[0]]
    session.request_event("it starts snowing")
    session.tick(3)
    session.request_event("something new")
    session.tick(1)
    session.tick(2)  # last frame of the session has no action after it
    recorder.close()

    dataset = Dataset(tmp_path / "rec", verify=True)
    assert dataset.complete and dataset.world == "fake" and dataset.num_actions == 5
    assert dataset.event_texts == ["night falls", "it starts snowing"]
    shard = dataset.load_shard(0)
    assert len(dataset) == 6 + 3
    np.testing.assert_array_equal(shard.frames[:6], np.stack(frames[:6]))
    np.testing.assert_array_equal(shard.frames[6], frames_second[0])
    np.testing.assert_array_equal(shard.actions, [4, 0, 4, 4, 4, 4, 3, 1, 2])
    np.testing.assert_array_equal(shard.rewards, [1, 0, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(shard.terminated, [0, 0, 0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(shard.episode, [0] * 6 + [1] * 3)
    # "Night Falls" is stored under its label; an event applies from the frame after it was sent.
    np.testing.assert_array_equal(shard.events, [0] * 6 + [0, 1, NO_EVENT])
    assert warnings == ["recording: event 'something new' is not in the dataset's event table; "
                        "stored as no event"]


def test_manual_reset_starts_a_new_episode(tmp_path):
    world, warnings = FakeWorld(), []
    session, recorder = record(tmp_path, world, warnings)
    session.reset()
    session.tick(0)
    session.tick(0)
    session.reset()
    session.tick(4)
    recorder.close()
    shard = Dataset(tmp_path / "rec").load_shard(0)
    np.testing.assert_array_equal(shard.episode, [0, 0, 1])  # the frame before R has no action: dropped
    np.testing.assert_array_equal(shard.actions, [0, 0, 4])


def test_recording_refuses_an_existing_dataset(tmp_path):
    world = FakeWorld()
    _, recorder = record(tmp_path, world, [])
    recorder.close()
    with pytest.raises(DatasetError, match="already holds a dataset"):
        record(tmp_path, world, [])
