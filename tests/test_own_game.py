"""A world of your own game: record any Gymnasium image game → train → load → Neural-v0 → play.

The game is the test suite's own (tests/image_game.py: 27x41 frames, no action meanings, no
events); Atari Breakout runs the recording part when ale-py is installed.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pygame
import pytest

import worldsim
from worldsim.data import Dataset
from worldsim.data.record import RecordConfig, record
from worldsim.games import game_for_dataset, game_for_name, game_for_world
from worldsim.play.controls import action_keys
from tests.image_game import ENV_ID, HEIGHT, WIDTH, PaddleGame

ROOT = Path(__file__).resolve().parents[1]
# The tiny recipe, shortened further: the test checks the plumbing, not the world's quality.
SHORT_RECIPE = ["autoencoder.steps=12", "autoencoder.scale_frames=64", "autoencoder.eval_frames=32",
                "ar_teacher.steps=6", "reward.steps=6", "context_frames=2", "progress=false"]


README = ROOT / "README.md"
README_SECTION = "## Train a world of your own game"
# The README's commands, made test-sized: the suite's own game instead of Breakout, fewer frames and steps.
README_SUBSTITUTIONS = {"ALE/Breakout-v5": ENV_ID, "--frames 3000 --size 64": "--frames 400 --size 32",
                        "--frames 64": "--frames 5", "--frames 600 --size 64": "--frames 120 --size 32"}


def readme_section() -> str:
    text = README.read_text()
    start = text.index(README_SECTION)
    return text[start:text.index("\n## ", start + 1)]


def readme_commands(folder: Path) -> list[list[str]]:
    """The section's bash commands with the substitutions and every path inside `folder`."""
    block = re.search(r"```bash\n(.*?)```", readme_section(), flags=re.S).group(1).replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        line = line.split("  #")[0].strip()
        for old, new in README_SUBSTITUTIONS.items():
            line = line.replace(old, new)
        argv = [str(folder / arg) if arg.startswith(("data/", "runs/", "eval/")) or arg.endswith((".gif", ".json")) else arg
                for arg in shlex.split(line)]
        commands.append(argv)
    return commands


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory) -> tuple[Path, list[list[str]]]:
    """Run the README's record and train commands; the play and rollout ones are for the tests below."""
    from worldsim.cli import main as worldsim_main

    folder = tmp_path_factory.mktemp("readme")
    commands = readme_commands(folder)
    record_argv, train_argv = commands[0], commands[1]
    assert record_argv[:3] == ["worldsim", "data", "record"] and train_argv[:3] == ["worldsim", "train", "recipe"]
    assert worldsim_main([*record_argv[1:], "--seed", "2", "--quiet"]) == 0
    short = [item for setting in SHORT_RECIPE for item in ("--set", setting)]
    assert worldsim_main([*train_argv[1:], *short]) == 0
    return folder, commands


@pytest.fixture(scope="module")
def recorded(readme_run) -> Path:
    return readme_run[0] / "data" / "breakout"


@pytest.fixture(scope="module")
def trained(readme_run) -> Path:
    return readme_run[0] / "runs" / "breakout" / "world"


def test_recording_resizes_odd_non_square_frames_and_names_the_actions(recorded):
    dataset = Dataset(recorded, verify=True)
    assert dataset.frame_shape == (32, 32, 3) and len(dataset) == 400 and dataset.complete
    assert dataset.world == ENV_ID and dataset.event_texts == []
    generator = dataset.manifest["generator"]
    assert generator["action_names"] == ["action 0", "action 1", "action 2"]
    assert generator["size"] == 32 and generator["frame_skip"] == 1
    game = game_for_dataset(dataset)
    assert game.num_actions == 3 and game.events is None and game.ground_truth is None
    shard = dataset.load_shard(0)
    assert shard.rewards.max() == 1.0  # the paddle reached the target at least once
    # the white paddle survives the 41 -> 32 px area resize in the bottom rows
    assert shard.frames[:, 26:, :, :].max() > 150


def test_an_interrupted_recording_resumes_to_the_full_length(tmp_path, monkeypatch):
    original_step, calls = PaddleGame.step, []

    def failing_step(self, action):
        calls.append(action)
        if len(calls) == 150:
            raise RuntimeError("power cut")
        return original_step(self, action)

    config = RecordConfig(ENV_ID, frames=200, size=16, shard_frames=64)
    monkeypatch.setattr(PaddleGame, "step", failing_step)
    with pytest.raises(RuntimeError, match="power cut"):
        record(tmp_path / "ds", config, progress=False)
    partial = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert not partial["complete"] and sum(s["frames"] for s in partial["shards"]) == 149
    monkeypatch.setattr(PaddleGame, "step", original_step)
    dataset = record(tmp_path / "ds", config, progress=False)
    assert len(dataset) == 200 and dataset.complete
    with pytest.raises(ValueError, match="already holds a dataset"):
        record(tmp_path / "ds", config, progress=False)  # finished: a new folder is needed


def test_crop_and_frame_skip(tmp_path):
    config = RecordConfig(ENV_ID, frames=20, crop=(0, 7, 1, 0), frame_skip=3, policy="random")
    dataset = record(tmp_path / "ds", config, progress=False)
    assert dataset.frame_shape == (HEIGHT - 7, WIDTH - 1, 3)
    assert dataset.manifest["generator"]["crop"] == [0, 7, 1, 0]
    episode = dataset.load_shard(0).episode
    assert len(np.unique(episode)) == 1  # 20 frames x 3 env steps stay inside one 60-step episode
    with pytest.raises(ValueError, match="leaves no pixels"):
        record(tmp_path / "bad", RecordConfig(ENV_ID, frames=5, crop=(20, 10, 0, 0)), progress=False)
    assert not (tmp_path / "bad").exists()


def test_the_recipe_trains_a_world_without_events_on_the_recorded_game(trained):
    world = worldsim.load(trained)
    stages = [record["stage"] for record in world.metadata["training"]]
    assert stages == ["autoencoder", "ar-teacher", "reward"]  # no events stage: the data has none
    assert world.config.num_actions == 3 and world.config.image_size == 32
    assert world.metadata["game"] == {"name": ENV_ID, "action_names": ["action 0", "action 1", "action 2"]}
    assert game_for_world(world).action_names == ("action 0", "action 1", "action 2")
    assert world.context_frames.shape == (2, 32, 32, 3)


def test_streaming_stages_keep_no_event_on_a_dataset_without_event_texts():
    import torch

    from worldsim.training.stream import switched_event_ids

    ids = switched_event_ids(torch.full((3,), -1), frames=6, switch_frames=[2, 4], num_texts=0)
    assert ids.shape == (3, 6) and bool((ids == -1).all())


def test_neural_env_takes_the_worlds_own_action_space(trained):
    env = gym.make("worldsim/Neural-v0", checkpoint=str(trained))
    assert env.action_space == gym.spaces.Discrete(3)
    assert env.observation_space.shape == (32, 32, 3)
    frame, _ = env.reset(seed=0)
    for action in (1, 2, 0, 2):
        frame, reward, terminated, truncated, _ = env.step(action)
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8 and isinstance(reward, float)
    with pytest.raises(ValueError):
        env.step(3)
    vector = gym.make_vec("worldsim/Neural-v0", num_envs=2, vectorization_mode="vector_entry_point",
                          checkpoint=str(trained))
    assert vector.single_action_space == gym.spaces.Discrete(3)
    vector.reset(seed=0)
    frames, *_ = vector.step(np.array([1, 2]))
    assert frames.shape == (2, 32, 32, 3)


def test_the_readme_play_rollout_and_python_run_on_the_recorded_world(readme_run, trained, tmp_path):
    from worldsim.cli import main as worldsim_main
    from worldsim.play.cli import build_parser, play

    _, commands = readme_run
    play_argv, rollout_argv = commands[2], commands[3]
    assert play_argv[:2] == ["python", "play.py"] and rollout_argv[:2] == ["worldsim", "rollout"]
    headless = ["--headless", "--frames", "6", "--scale", "2", "--actions", "random",
                "--record", str(tmp_path / "session")]
    assert play(build_parser().parse_args([*play_argv[2:], *headless])) == 0
    session = Dataset(tmp_path / "session")
    assert len(session) == 5 and session.num_actions == 3 and session.frame_shape == (32, 32, 3)
    assert game_for_dataset(session).action_names == ("action 0", "action 1", "action 2")
    assert worldsim_main([*rollout_argv[1:], "--no-progress"]) == 0
    assert Path(rollout_argv[rollout_argv.index("--out") + 1]).stat().st_size > 0
    code = re.search(r"```python\n(.*?)```", readme_section(), flags=re.S).group(1)
    namespace: dict = {}
    exec(code.replace("runs/breakout/world", str(trained)), namespace)
    assert namespace["env"].action_space == gym.spaces.Discrete(3)
    assert namespace["world"].metadata["game"]["name"] == ENV_ID


def test_the_readme_recorded_evaluation_scores_the_world_against_held_out_play(readme_run, trained):
    from worldsim.cli import main as worldsim_main
    from worldsim.eval.recorded import main as evaluate_main

    _, commands = readme_run
    record_argv, evaluate_argv = commands[4], commands[5]
    assert record_argv[:3] == ["worldsim", "data", "record"]
    assert evaluate_argv[:4] == ["worldsim", "eval", "--checkpoint", str(trained)]
    assert worldsim_main([*record_argv[1:], "--quiet"]) == 0
    assert worldsim_main([*evaluate_argv[1:], "--suite", "tiny"]) == 0
    out = Path(evaluate_argv[evaluate_argv.index("--out") + 1])
    measures = json.loads((out / "metrics.json").read_text())
    assert 0 < measures["teacher_forced"]["psnr"] < 100 and -1 <= measures["teacher_forced"]["ssim"] <= 1
    assert len(measures["rollout"]["psnr"]) == 8 and set(measures["psnr_at"]) == {"1", "8"}
    idm = measures["inverse_dynamics"]
    assert 0 <= idm["recorded"] <= 1 and 0 <= idm["generated"] <= 1 and idm["chance"] == pytest.approx(1 / 3)
    window = worldsim.load(trained).config.reward.context_frames  # rewards from the K-th frame of an episode on
    shard = Dataset(evaluate_argv[evaluate_argv.index("--data") + 1]).load_shard(0)
    scored = np.concatenate([np.flatnonzero(shard.episode == e)[window - 1:] for e in np.unique(shard.episode)])
    assert measures["reward"]["positive"]["actual"] == int((shard.rewards[scored] > 0).sum())
    assert evaluate_main(["--checkpoint", str(trained), "--data", str(Path(trained) / "missing")]) == 2
    # Without --data there is nothing to measure a recorded game against: a clear error.
    assert worldsim_main(["eval", "--checkpoint", str(trained), "--out", str(out / "truth")]) == 2


def test_the_help_overlay_and_keys_of_a_recorded_world(trained):
    from worldsim.play.app import PlayApp
    from worldsim.play.session import GameSession
    from worldsim.play.worlds import NeuralWorld

    world = NeuralWorld(worldsim.load(trained), str(trained))
    assert world.action_names == ("action 0", "action 1", "action 2")
    app = PlayApp(GameSession([world]), scale=2, headless=True)
    try:
        app.tick()
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_x, unicode="x", mod=0))
        app.tick()
        assert app.session.current_action() == 2  # the second spare letter holds action 2
        playing = app.window_image()
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_h, unicode="h", mod=0))
        app.tick()
        assert app.session.help_visible and not np.array_equal(app.window_image(), playing)
    finally:
        app.close()


def test_scripted_actions_may_name_the_games_actions(tmp_path):
    from worldsim.scripted import load_actions

    names = ("NOOP", "FIRE", "RIGHT", "LEFT")
    (tmp_path / "moves.txt").write_text("FIRE left, 2\nnoop")
    assert load_actions(tmp_path / "moves.txt", 4, 4, names).tolist() == [1, 3, 2, 0]
    with pytest.raises(ValueError, match=r"integers or the game's action names \(NOOP, FIRE, RIGHT, LEFT\) .*, got 'jump'"):
        (tmp_path / "bad.txt").write_text("FIRE jump")
        load_actions(tmp_path / "bad.txt", 2, 4, names)


def test_keys_follow_the_games_action_names():
    atari = action_keys(("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"))
    assert atari.action_for_key[pygame.K_SPACE] == 1
    assert atari.action_for_key[pygame.K_RIGHT] == 2 and atari.action_for_key[pygame.K_a] == 3
    assert atari.action_for_key[pygame.K_z] == 4 and atari.action_for_key[pygame.K_x] == 5
    assert atari.help_lines[0] == ("(no key)", "NOOP") and ("Z", "RIGHTFIRE") in atari.help_lines
    numbered = action_keys(("action 0", "action 1", "action 2"))
    assert numbered.action_for_key == {pygame.K_z: 1, pygame.K_x: 2}
    explorer = action_keys(game_for_name("explorer").action_names)
    assert explorer.action_for_key[pygame.K_w] == 1 and explorer.action_for_key[pygame.K_LEFT] == 3


def test_a_recorded_game_is_described_by_its_manifest_not_its_name():
    shipped = game_for_name("explorer")
    assert shipped.num_actions == 5 and shipped.events is not None and shipped.ground_truth is not None
    recorded = game_for_name("ALE/Pong-v5", num_actions=6)
    assert recorded.action_names[5] == "action 5" and recorded.events is None
    with pytest.raises(ValueError, match="action names or count"):
        game_for_name("SomeGame-v0")


def test_a_game_without_a_dataset_is_rolled_out_by_its_spec(tmp_path):
    from worldsim.games import dataset_maker

    dataset = dataset_maker(ENV_ID)(tmp_path / "data", 50, 16, 0, False)  # what `train recipe --world ID` does
    assert dataset.frame_shape == (16, 16, 3) and len(dataset) == 50 and dataset.complete


def test_worldsim_envs_resolves_beside_the_imported_worldsim(tmp_path):
    """Another checkout's code run against this checkout's editable install keeps its own envs."""
    for folder in ("worldsim", "envs"):
        subprocess.run(["cp", "-r", str(ROOT / folder), str(tmp_path / folder)], check=True)
    code = ("import worldsim, worldsim.envs.explorer as e; "
            "print(worldsim.__file__); print(worldsim.envs.__file__); print(e.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            check=True, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    for line in result.stdout.split():
        assert Path(line).is_relative_to(tmp_path), result.stdout


def test_records_atari_breakout_with_fire_at_reset(tmp_path):
    pytest.importorskip("ale_py")
    dataset = record(tmp_path / "breakout", RecordConfig("ALE/Breakout-v5", frames=200, size=64, seed=1),
                     progress=False)
    assert dataset.frame_shape == (64, 64, 3) and dataset.num_actions == 4
    assert dataset.manifest["generator"]["action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert game_for_dataset(dataset).action_names == ("NOOP", "FIRE", "RIGHT", "LEFT")
    frames = dataset.load_shard(0).frames
    assert frames.std() > 0 and not np.array_equal(frames[0], frames[-1])
