"""The README's Python examples (Explorer and neural-world envs, Hub, Stable-Baselines3) run as written."""
from __future__ import annotations

import re
import types
from pathlib import Path

import gymnasium as gym
import pytest
from test_world_fixtures import make_world

import worldsim

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(marker: str) -> str:
    """The README's python block that contains `marker`."""
    blocks = [block for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if marker in block]
    assert len(blocks) == 1, f"expected one python block with {marker!r}"
    return blocks[0]


def shrink(code: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in code, f"the README example no longer contains {old!r}"
        code = code.replace(old, new)
    return code


def test_hub_example_passes_huggingface_hub_arguments(tmp_path, monkeypatch):
    import huggingface_hub

    folder = make_world(seed=0).save_pretrained(tmp_path / "world")
    downloads, uploads = [], []

    def fake_snapshot_download(repo_id, **options):
        downloads.append((repo_id, options))
        return str(folder)

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **options):
            pass

        def create_branch(self, repo_id, **options):
            uploads.append(("branch", options["branch"]))

        def upload_folder(self, **options):
            uploads.append(("upload", options["revision"], options["create_pr"]))
            return types.SimpleNamespace(pr_url="https://huggingface.co/org/my-world/discussions/1")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HOME", str(tmp_path))
    exec(python_block('push_to_hub("org/my-world"'), {"worldsim": worldsim, "gym": gym})
    assert [repo for repo, _ in downloads] == ["org/my-world", "org/my-world", "org/private-world", "org/my-world"]
    assert downloads[0][1]["revision"] == "v1" and downloads[0][1]["cache_dir"] == str(tmp_path / "hf-cache")
    assert downloads[1][1]["local_files_only"] is True
    assert downloads[2][1]["token"] == "hf_..." and downloads[2][1]["force_download"] is True
    assert downloads[3][1]["revision"] == "v1"
    assert uploads == [("branch", "v2"), ("upload", "v2", True)]


def test_sb3_example_trains_and_evaluates_on_both_envs():
    pytest.importorskip("stable_baselines3")
    code = shrink(python_block("to_sb3("), {
        "num_envs=16": "num_envs=2", "max_episode_steps=256": "max_episode_steps=4", "n_steps=128": "n_steps=8",
        "batch_size=256": "batch_size=16", "total_timesteps=50_000": "total_timesteps=16", "verbose=1": "verbose=0",
        "n_eval_episodes=16": "n_eval_episodes=2",
    })
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["model"].num_timesteps >= 16 and len(namespace["model"].ep_info_buffer) >= 1
    assert isinstance(namespace["mean_return"], float)


def test_explorer_example_runs_and_its_task_env_starts_under_the_event():
    namespace: dict = {}
    exec(python_block('task = gym.make("worldsim/Explorer-v0"'), namespace)
    assert namespace["info"]["events"]["time"] == "night" and namespace["reward"] in (-1.0, 0.0, 1.0)
    _, info = namespace["task"].reset(seed=1)
    assert info["events"]["coins"] == "coin_shower"


def test_neural_explorer_example_runs_on_the_bundled_world():
    block = python_block('task = gym.make_vec("worldsim/NeuralExplorer-v0"')
    code = shrink(block, {"num_envs=256": "num_envs=4", "num_envs=32": "num_envs=2"})
    namespace: dict = {}
    exec(code, namespace)
    assert namespace["obs"].shape == (64, 64, 3)
    namespace["task"].reset(seed=0)
    assert list(namespace["task"].unwrapped.core.events()) == ["coins rain from the sky"] * 2
