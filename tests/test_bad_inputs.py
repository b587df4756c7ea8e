"""Every bad input gets a clear error and changes nothing: one table for the public API, one for the CLI.

Each API row builds a fresh object, records its state, feeds one bad input and checks the error
(type and message) and that the state is what it was. Each CLI row runs `worldsim ...` in-process
and checks exit status 2, a one-line message on stderr naming the problem, and that nothing was
written. The rows cover the probed defects of the ecosystem issue and the reliability rules
(actions, batch sizes, events, frames, seeds, configs, checkpoints, shards, paths, devices).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_world_fixtures import MICRO, make_world

import worldsim
from worldsim import cli, hub
from worldsim.data import DatasetWriter
from worldsim.envs.explorer import ExplorerVectorEnv
from worldsim.envs.neural import NeuralWorldEnv, NeuralWorldVectorEnv
from worldsim.model import ConfigError, WorldConfig
from worldsim.world import WorldModel


@pytest.fixture(scope="module")
def world() -> WorldModel:
    return make_world(seed=0, overrides=MICRO)


@pytest.fixture(scope="module")
def checkpoint(world, tmp_path_factory) -> Path:
    return world.save_pretrained(tmp_path_factory.mktemp("bad-inputs") / "world")


# ----------------------------------------------------------------------------------------------
# Public API: (make the object, its state, the bad call, expected error, message)


@dataclass
class Case:
    make: Callable[[WorldModel], Any]  # a fresh object, from the shared world
    state: Callable[[Any], Any]  # what must not change
    call: Callable[[Any], Any]  # the bad input
    error: type[Exception]
    message: str


def explorer(world):
    env = gym.make("worldsim/Explorer-v0")
    env.reset(seed=4)
    return env


def explorer_state(env):
    inner = env.unwrapped
    return (inner.np_random_seed, str(inner.np_random.bit_generator.state), inner._sim.render().tobytes(),
            json.dumps(inner._sim.state(0), default=str))


def explorer_vector(world):
    envs = ExplorerVectorEnv(3)
    envs.reset(seed=2)
    return envs


def explorer_vector_state(envs):
    return (envs.np_random_seed, [str(g.bit_generator.state) for g in envs.np_random], envs._sim.render().tobytes(),
            list(envs._pending))


def neural(world):
    env = NeuralWorldEnv(checkpoint=world)
    env.reset(seed=3)
    return env


def neural_state(env):
    return (env.np_random_seed, str(env.np_random.bit_generator.state), env.core.simulator.frames.clone().numpy().tobytes(),
            list(env.core.pending))


def neural_vector(world):
    envs = NeuralWorldVectorEnv(2, checkpoint=world)
    envs.reset(seed=3)
    return envs


def neural_vector_state(envs):
    return (envs.np_random_seed, [str(g.bit_generator.state) for g in envs.np_random],
            envs.core.simulator.frames.clone().numpy().tobytes(), list(envs.core.pending))


def simulator(world):
    sim = world.simulator(batch_size=2, seed=0)
    sim.reset(event="night falls")
    return sim


def simulator_state(sim):
    return sim.frames.clone().numpy().tobytes(), list(sim.events), sim.cache.num_frames.tolist()


def frame(size: int) -> np.ndarray:
    return np.zeros((size, size, 3), np.uint8)


API_CASES = {
    # seeds (defects 1 and 7)
    "explorer seed 2**63": Case(explorer, explorer_state, lambda e: e.reset(seed=2**63), ValueError, "seed"),
    "explorer seed 1.5": Case(explorer, explorer_state, lambda e: e.reset(seed=1.5), ValueError, "seed"),
    "explorer seed -1": Case(explorer, explorer_state, lambda e: e.reset(seed=-1), ValueError, "seed"),
    "explorer seed True": Case(explorer, explorer_state, lambda e: e.reset(seed=True), ValueError, "seed"),
    "neural seed 1.5": Case(neural, neural_state, lambda e: e.reset(seed=1.5), ValueError, "seed"),
    "vector seed list too short": Case(explorer_vector, explorer_vector_state, lambda e: e.reset(seed=[1]),
                                       ValueError, "seed"),
    "vector seed + i past 2**63": Case(explorer_vector, explorer_vector_state, lambda e: e.reset(seed=2**63 - 2),
                                       ValueError, "seed"),
    # a reset that fails late must not consume the generator (defect 1)
    "neural context 8x8": Case(neural, neural_state,
                               lambda e: e.reset(seed=7, options={"context": frame(8)}), ValueError, "context"),
    "neural vector context 8x8": Case(neural_vector, neural_vector_state,
                                      lambda e: e.reset(seed=7, options={"context": frame(8)}), ValueError, "context"),
    # events (defect 2, reliability rules: non-string and over-long events)
    "explorer event 5": Case(explorer, explorer_state, lambda e: e.reset(options={"event": 5}), ValueError, "event"),
    "explorer unknown event": Case(explorer, explorer_state, lambda e: e.unwrapped.trigger_event("a purple sky"),
                                   ValueError, "night falls"),
    "explorer unknown option": Case(explorer, explorer_state, lambda e: e.reset(options={"weather": "rain"}),
                                    ValueError, "options"),
    "neural event None": Case(neural, neural_state, lambda e: e.trigger_event(None), ValueError, "event"),
    "neural event too long": Case(neural, neural_state, lambda e: e.trigger_event("snow " * 200), ValueError, "long"),
    "simulator event not text": Case(simulator, simulator_state, lambda s: s.step([0, 1], events=[3, None]),
                                     ValueError, "event"),
    "simulator event too long": Case(simulator, simulator_state, lambda s: s.step([0, 1], events=["snow " * 200, None]),
                                     ValueError, "long"),
    # actions (defect 12, reliability rules: shape, range, batch mismatch)
    "explorer action True": Case(explorer, explorer_state, lambda e: e.step(True), ValueError, "action"),
    "explorer action 7": Case(explorer, explorer_state, lambda e: e.step(7), ValueError, "action"),
    "neural action True": Case(neural, neural_state, lambda e: e.step(True), ValueError, "action"),
    "vector action out of range": Case(explorer_vector, explorer_vector_state, lambda e: e.step(np.array([0, 1, 5])),
                                       ValueError, "actions"),
    "vector batch mismatch": Case(explorer_vector, explorer_vector_state, lambda e: e.step(np.array([0, 1])),
                                  ValueError, "actions"),
    "simulator action range": Case(simulator, simulator_state, lambda s: s.step([0, 9]), ValueError, "action"),
    "simulator batch mismatch": Case(simulator, simulator_state, lambda s: s.step([0, 1, 2]), ValueError, "shape"),
    "simulator float actions": Case(simulator, simulator_state, lambda s: s.step([0.5, 1.0]), ValueError, "integers"),
    # env ids (defect 12)
    "neural env_ids nested": Case(neural_vector, neural_vector_state,
                                  lambda e: e.trigger_event("night falls", env_ids=[[0], [1]]), ValueError, "env_ids"),
    "explorer vector env_ids nested": Case(explorer_vector, explorer_vector_state,
                                           lambda e: e.trigger_event("night falls", env_ids=[[0], [1]]),
                                           ValueError, "env_ids"),
    "neural env_ids out of range": Case(neural_vector, neural_vector_state,
                                        lambda e: e.trigger_event("night falls", env_ids=[2]), ValueError, "env_ids"),
    # frames (reliability rules: wrong frame sizes)
    "simulator context wrong size": Case(simulator, simulator_state, lambda s: s.reset(context=frame(8)),
                                         ValueError, "context"),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_bad_api_input_is_a_clear_error_that_changes_nothing(name, world):
    case = API_CASES[name]
    target = case.make(world)
    before = case.state(target)
    with pytest.raises(case.error, match=case.message):
        case.call(target)
    assert case.state(target) == before


# ----------------------------------------------------------------------------------------------
# Checkpoints and configs (defects 5 and 6, reliability rules: strict loading)


def rewrite_tensors(path: Path, change) -> None:
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))


def rewrite_config(folder: Path, change) -> None:
    data = json.loads((folder / hub.CONFIG_FILE).read_text())
    change(data["world"])
    (folder / hub.CONFIG_FILE).write_text(json.dumps(data))


CHECKPOINT_DAMAGE = {
    "rope_base Infinity": (lambda f: rewrite_config(f, lambda w: w["transformer"].update(rope_base=float("inf"))),
                           {}, "transformer.rope_base"),
    "mlp_ratio Infinity": (lambda f: rewrite_config(f, lambda w: w["transformer"].update(mlp_ratio=float("inf"))),
                           {}, "transformer.mlp_ratio"),
    "mlp_ratio 1e7": (lambda f: rewrite_config(f, lambda w: w["transformer"].update(mlp_ratio=1e7)),
                      {}, "transformer.mlp_ratio"),
    "int64 weights": (lambda f: rewrite_tensors(f / "reward.safetensors",
                                                lambda t: t.update({k: v.long() for k, v in t.items()})),
                      {}, "dtype torch.int64"),
    "NaN weights, checked": (lambda f: rewrite_tensors(f / "events.safetensors",
                                                       lambda t: t.update({k: v * float("nan") for k, v in t.items()})),
                             {"check_finite": True}, "non-finite"),
    "truncated weights": (lambda f: (f / "transformer.safetensors").write_bytes(
        (f / "transformer.safetensors").read_bytes()[:100]), {}, "transformer.safetensors"),
    "unknown config key": (lambda f: rewrite_config(f, lambda w: w.update(extra=1)), {}, "extra"),
}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_DAMAGE))
def test_a_damaged_checkpoint_is_a_clear_error(name, world, tmp_path):
    damage, options, message = CHECKPOINT_DAMAGE[name]
    folder = world.save_pretrained(tmp_path / "world")
    damage(folder)
    with pytest.raises(hub.CheckpointError, match=message):
        worldsim.load(str(folder), **options)


@pytest.mark.parametrize("arguments", [{"revision": ""}, {"force_download": "yes"}, {"cache_dir": 3},
                                       {"token": 1.5}, {"local_files_only": "no"}])
def test_bad_hub_arguments_are_value_errors(arguments):
    with pytest.raises(ValueError):
        worldsim.load("org/world", **arguments)


@pytest.mark.parametrize("key, value", [("transformer.dim", 2**20), ("sampling.num_steps", 10**6),
                                        ("events.trigram_buckets", 2**40), ("autoencoder.channels", [8, 10**9, 16])])
def test_oversized_model_configs_are_refused_before_allocating(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        WorldConfig.preset("tiny").with_overrides({key: value})


# ----------------------------------------------------------------------------------------------
# Dataset writing (reliability rules: wrong frames, actions, flags)


@pytest.mark.parametrize("step, message", [
    ({"action": 1.5}, "action"), ({"action": True}, "action"), ({"action": 7}, "action"),
    ({"terminated": "yes"}, "terminated"), ({"reward": float("nan")}, "reward"),
    ({"frame": np.zeros((8, 8, 3), np.uint8)}, "frame"), ({"frame": np.zeros((16, 16, 3), np.float32)}, "frame"),
])
def test_dataset_writer_refuses_bad_steps_and_adds_nothing(step, message, tmp_path):
    with DatasetWriter(tmp_path / "data", "explorer", (16, 16, 3), num_actions=5) as writer:
        writer.add(np.zeros((16, 16, 3), np.uint8), 1)
        with pytest.raises(ValueError, match=message):
            writer.add(**{"frame": np.zeros((16, 16, 3), np.uint8), "action": 2, **step})
    from worldsim.data import Dataset

    assert len(Dataset(tmp_path / "data")) == 1


# ----------------------------------------------------------------------------------------------
# The command line: exit status 2, a message naming the problem, nothing written


CLI_CASES = {
    "rollout --out below a file": (["rollout", "--frames", "3", "--out", "{tmp}/file/x.gif"], "a file"),
    "rollout --out in a missing folder": (["rollout", "--frames", "3", "--out", "{tmp}/missing/x.gif"],
                                          "does not exist"),
    "rollout unknown suffix": (["rollout", "--frames", "3", "--out", "{tmp}/x.avi"], "suffix"),
    "rollout --threads 0": (["rollout", "--frames", "3", "--out", "{tmp}/x.gif", "--threads", "0"], "--threads"),
    "rollout --device toaster": (["rollout", "--frames", "3", "--out", "{tmp}/x.gif", "--device", "toaster"],
                                 "torch device"),
    "rollout --frames 0": (["rollout", "--frames", "0", "--out", "{tmp}/x.gif"], "--frames"),
    "bench --threads 0": (["bench", "--threads", "0"], "--threads"),
    "bench --out below a file": (["bench", "--out", "{tmp}/file/b.json"], "a file"),
    "train --out below a file": (["train", "autoencoder", "--out", "{tmp}/file/run"], "a file"),
    "eval --out below a file": (["eval", "--suite", "tiny", "--out", "{tmp}/file/eval"], "a file"),
    "train tensorboard without the package": (["train", "probes", "--set", "tensorboard=true", "--out", "{tmp}/run"],
                                              "tensorboard"),
}
if not torch.cuda.is_available():
    CLI_CASES["rollout --device cuda without CUDA"] = (
        ["rollout", "--frames", "3", "--out", "{tmp}/x.gif", "--device", "cuda"], "--device cuda")
    CLI_CASES["eval --device cuda without CUDA"] = (
        ["eval", "--suite", "tiny", "--out", "{tmp}/eval", "--device", "cuda"], "--device cuda")
    CLI_CASES["bench --device cuda without CUDA"] = (["bench", "--device", "cuda"], "--device cuda")


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_bad_cli_input_exits_2_with_a_message_and_writes_nothing(name, tmp_path, capsys, monkeypatch):
    import importlib.util

    argv, message = CLI_CASES[name]
    if "tensorboard" in name and importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed here")
    monkeypatch.setattr(WorldModel, "from_pretrained", lambda *a, **k: pytest.fail("a world was loaded"))
    (tmp_path / "file").write_text("x")
    assert cli.main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("command", [["eval", "--suite", "tiny"], ["bench"], ["rollout", "--frames", "2"]])
def test_a_hub_revision_that_is_not_cached_is_a_clear_error(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / ("run.gif" if command[0] == "rollout" else "out")
    argv = [*command, "--checkpoint", "org/world", "--revision", "v9"] + (["--out", str(out)] if command[0] != "bench" else [])
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert "org/world" in error and "revision v9" in error and "Traceback" not in error
    assert not out.exists()
