"""A world of a real third-party game, when ale-py (extra "atari") is installed: Atari Breakout
recorded → tiny recipe → `worldsim.load` → Neural-v0 with the game's own Discrete(4) → headless play
driven by the game's action names. Skipped without ale-py; the suite's own image game
(tests/test_own_game.py) covers the same path for every install.
"""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import worldsim
from worldsim.data import Dataset
from worldsim.data.record import RecordConfig, record
from worldsim.games import game_for_dataset, game_for_world
from tests.test_own_game import SHORT_RECIPE

pytest.importorskip("ale_py")

ENV_ID = "ALE/Breakout-v5"
ACTION_NAMES = ("NOOP", "FIRE", "RIGHT", "LEFT")
SIZE = 32  # the shipped Breakout world is 64 px; 32 keeps the plumbing check short


@pytest.fixture(scope="module")
def breakout_world(tmp_path_factory) -> Path:
    """Record 300 Breakout frames (score and blank bottom rows cropped as the real world's data) and train."""
    from worldsim.cli import main as worldsim_main

    folder = tmp_path_factory.mktemp("breakout")
    dataset = record(folder / "data", RecordConfig(ENV_ID, frames=300, size=SIZE, crop=(0, 14, 8, 8), seed=3),
                     progress=False)
    assert dataset.frame_shape == (SIZE, SIZE, 3) and len(dataset) == 300
    assert game_for_dataset(dataset).action_names == ACTION_NAMES
    short = [item for setting in SHORT_RECIPE for item in ("--set", setting)]
    argv = ["train", "recipe", "--size", "tiny", "--chain", "playable", "--data", str(folder / "data"),
            "--out", str(folder / "run"), *short]
    assert worldsim_main(argv) == 0
    return folder / "run" / "world"


def test_the_breakout_world_loads_with_the_games_actions(breakout_world):
    world = worldsim.load(breakout_world)
    assert world.metadata["game"] == {"name": ENV_ID, "action_names": list(ACTION_NAMES)}
    assert game_for_world(world).action_names == ACTION_NAMES
    assert world.config.num_actions == 4 and world.config.image_size == SIZE
    assert [record["stage"] for record in world.metadata["training"]] == ["autoencoder", "ar-teacher", "reward"]


def test_neural_env_plays_breakout_with_discrete_4(breakout_world):
    env = gym.make("worldsim/Neural-v0", checkpoint=str(breakout_world))
    assert env.action_space == gym.spaces.Discrete(4)
    frame, _ = env.reset(seed=0)
    for action in (1, 2, 2, 3, 0):
        frame, reward, terminated, truncated, _ = env.step(action)
    assert frame.shape == (SIZE, SIZE, 3) and frame.dtype == np.uint8 and isinstance(reward, float)
    with pytest.raises(ValueError):
        env.step(4)


def test_headless_play_takes_the_games_action_names(breakout_world, tmp_path):
    from worldsim.play.cli import build_parser, play

    script = tmp_path / "moves.txt"
    script.write_text("FIRE RIGHT RIGHT LEFT NOOP LEFT")
    argv = ["--checkpoint", str(breakout_world), "--headless", "--frames", "7", "--scale", "2",
            "--actions", str(script), "--record", str(tmp_path / "session")]
    assert play(build_parser().parse_args(argv)) == 0
    session = Dataset(tmp_path / "session")
    assert session.num_actions == 4 and game_for_dataset(session).action_names == ACTION_NAMES
    assert session.load_shard(0).actions.tolist()[:6] == [1, 2, 2, 3, 0, 3]
