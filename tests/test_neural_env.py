"""The neural Gymnasium envs on a random tiny world: Gymnasium's env and vector-env contracts."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from hub_cache import add_snapshot

import worldsim  # noqa: F401  (registers the environments)
from worldsim.envs.neural import NeuralWorldEnv, NeuralWorldVectorEnv
from worldsim.envs.wrappers import ScheduledEvents, to_sb3
from worldsim.model.config import WorldConfig
from worldsim.model.reward import NeverTerminates
from worldsim.world import WorldModel

ENV_ID = "worldsim/NeuralExplorer-v0"
EVENTS = ["a sunny meadow", "night falls", "it starts snowing"]


@pytest.fixture(scope="module")
def world() -> WorldModel:
    return WorldModel.create(WorldConfig.preset("tiny"), event_texts=EVENTS, seed=0)


@pytest.fixture(scope="module")
def endless_world() -> WorldModel:
    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=EVENTS, seed=0)
    world.reward_model = NeverTerminates(world.reward_model)
    return world


@pytest.fixture(scope="module")
def checkpoint(world, tmp_path_factory) -> str:
    return str(world.save_pretrained(tmp_path_factory.mktemp("tiny_world")))


def make_vec(checkpoint: str, num_envs: int, **kwargs):
    return gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        checkpoint=checkpoint, **kwargs)


def run_actions(envs, actions: np.ndarray):
    """Step through `actions` [T, B]; returns the per-step (obs, rewards, terminated, truncated, info)."""
    return [envs.step(step_actions) for step_actions in actions]


# ---------------------------------------------------------------------------------- single env

def test_single_env_passes_gymnasium_check_env(checkpoint):
    env = gym.make(ENV_ID, checkpoint=checkpoint, max_episode_steps=50)
    check_env(env.unwrapped)


def test_single_env_has_the_spaces_of_the_real_explorer(checkpoint):
    neural = gym.make(ENV_ID, checkpoint=checkpoint)
    real = gym.make("worldsim/Explorer-v0")
    assert neural.observation_space == real.observation_space
    assert neural.action_space == real.action_space


def test_envs_load_a_hub_revision_from_a_cache_folder(world, checkpoint, tmp_path, monkeypatch):
    add_snapshot(tmp_path / "cache", "org/tiny", Path(checkpoint), "d" * 40, refs=("main", "v1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env = gym.make(ENV_ID, checkpoint="org/tiny", revision="v1", cache_dir=tmp_path / "cache")
    venv = make_vec("org/tiny", 2, revision="v1", cache_dir=str(tmp_path / "cache"))
    for loaded in (env.unwrapped.world, venv.unwrapped.world):
        pairs = zip(loaded.transformer.parameters(), world.transformer.parameters(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(FileNotFoundError, match="revision v2"):
        gym.make(ENV_ID, checkpoint="org/tiny", revision="v2", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="revision"):
        NeuralWorldEnv(checkpoint=world, revision="v1")


def test_single_env_truncates_through_max_episode_steps(endless_world):
    env = gym.make(ENV_ID, checkpoint=endless_world, max_episode_steps=3)
    env.reset(seed=0)
    truncations = [env.step(0)[3] for _ in range(3)]
    assert truncations == [False, False, True]


def test_single_env_takes_events_at_reset_and_from_trigger_event(world):
    env = NeuralWorldEnv(checkpoint=world, event="a sunny meadow")
    assert env.reset(seed=0)[1] == {"event": "a sunny meadow"}
    assert env.reset(seed=0, options={"event": "night falls"})[1] == {"event": "night falls"}
    env.trigger_event("it starts snowing")
    assert env.step(1)[4] == {"event": "it starts snowing"}
    assert env.step(1)[4] == {"event": "it starts snowing"}


def test_single_env_rejects_bad_input_without_changing_state(world):
    env = NeuralWorldEnv(checkpoint=world)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=3)
    frame = env.render()
    for action in (5, -1, 1.5, "up"):
        with pytest.raises(ValueError, match="action"):
            env.step(action)
    with pytest.raises(ValueError):
        env.trigger_event("word " * 500)
    with pytest.raises(ValueError):
        env.trigger_event(None)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"evnt": "night falls"})
    assert env.render() is None  # render_mode None renders nothing
    assert frame is None


def test_single_env_observations_are_fresh_arrays_and_rgb_array_renders_them(world):
    env = NeuralWorldEnv(checkpoint=world, render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    np.testing.assert_array_equal(env.render(), obs)
    obs[:] = 0
    assert env.render().any()
    next_obs = env.step(2)[0]
    np.testing.assert_array_equal(env.render(), next_obs)


def test_single_env_starts_from_a_given_context_frame(world):
    env = NeuralWorldEnv(checkpoint=world)
    start = np.full((64, 64, 3), 128, dtype=np.uint8)
    obs_a, _ = env.reset(seed=0, options={"context": start})
    obs_b, _ = env.reset(seed=5, options={"context": start})
    np.testing.assert_array_equal(obs_a, obs_b)  # the frame, not the seed, decides the start


def test_scheduled_events_drive_the_neural_env(world):
    env = ScheduledEvents(NeuralWorldEnv(checkpoint=world), {0: "a sunny meadow", 2: "night falls"})
    events = [env.reset(seed=0)[1]["event"]] + [env.step(0)[4]["event"] for _ in range(3)]
    assert events == ["a sunny meadow", "a sunny meadow", "night falls", "night falls"]


# ---------------------------------------------------------------------------------- vector env

def test_vector_env_is_made_through_the_vector_entry_point(checkpoint):
    envs = make_vec(checkpoint, 3)
    assert isinstance(envs.unwrapped, NeuralWorldVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.num_envs == 3
    assert envs.single_observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert envs.observation_space.shape == (3, 64, 64, 3)
    assert envs.action_space == gym.spaces.MultiDiscrete([5, 5, 5])


def test_vector_env_matches_sync_vector_env_of_single_envs(checkpoint):
    """Autoreset, truncation, seeding, dtypes and info keys as Gymnasium's SyncVectorEnv gives them."""
    native = make_vec(checkpoint, 3, max_episode_steps=3)
    sync = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="sync", checkpoint=checkpoint, max_episode_steps=3)
    actions = np.random.default_rng(0).integers(5, size=(7, 3))
    native_obs, native_info = native.reset(seed=11)
    sync_obs, sync_info = sync.reset(seed=11)
    assert native.unwrapped.np_random_seed == (11, 12, 13)
    np.testing.assert_allclose(native_obs, sync_obs, atol=2)
    assert native_info.keys() == sync_info.keys() and native_info["event"].tolist() == sync_info["event"].tolist()
    native_steps, sync_steps = run_actions(native, actions), run_actions(sync, actions)
    ended = np.zeros(3, dtype=bool)
    for native_step, sync_step in zip(native_steps, sync_steps, strict=True):
        (obs, rew, term, trunc, info), (obs_s, rew_s, term_s, trunc_s, info_s) = native_step, sync_step
        assert obs.dtype == obs_s.dtype and obs.shape == obs_s.shape
        assert rew.dtype == rew_s.dtype and term.dtype == term_s.dtype and trunc.dtype == trunc_s.dtype
        np.testing.assert_allclose(obs, obs_s, atol=2)
        np.testing.assert_array_equal(rew, rew_s)
        np.testing.assert_array_equal(term, term_s)
        np.testing.assert_array_equal(trunc, trunc_s)
        assert info.keys() == info_s.keys()
        np.testing.assert_array_equal(info["_event"], info_s["_event"])
        ended |= term | trunc
    assert ended.all()  # every env went through at least one autoreset


def start_bank() -> np.ndarray:
    """Three start frames far apart: flat grey levels 20, 120 and 220."""
    return np.stack([np.full((64, 64, 3), level, dtype=np.uint8) for level in (20, 120, 220)])


def test_vector_env_draws_every_reset_from_the_start_frame_bank(endless_world):
    """Resets and autoresets start from bank frames, drawn per env as SyncVectorEnv's single envs draw them."""
    bank = start_bank()
    starts = [NeuralWorldEnv(checkpoint=endless_world).reset(seed=0, options={"context": frame})[0] for frame in bank]
    native = NeuralWorldVectorEnv(4, checkpoint=endless_world, max_episode_steps=1, start_frames=bank)
    sync = gym.vector.SyncVectorEnv([lambda: gym.wrappers.TimeLimit(
        NeuralWorldEnv(checkpoint=endless_world, start_frames=bank), max_episode_steps=1) for _ in range(4)])
    native_frames, sync_frames = [native.reset(seed=3)[0]], [sync.reset(seed=3)[0]]
    for _ in range(6):  # every other step is an autoreset
        native_frames.append(native.step(np.zeros(4, np.int64))[0])
        sync_frames.append(sync.step(np.zeros(4, np.int64))[0])
    for native_obs, sync_obs in zip(native_frames, sync_frames, strict=True):
        np.testing.assert_allclose(native_obs, sync_obs, atol=2)
    reset_frames = np.concatenate([native_frames[i] for i in (0, 2, 4, 6)])
    picked = [min(range(3), key=lambda k: np.abs(frame.astype(int) - starts[k]).mean()) for frame in reset_frames]
    for frame, k in zip(reset_frames, picked):
        np.testing.assert_allclose(frame, starts[k], atol=2)
    assert len(set(picked)) == 3  # 16 draws from 3 frames


def test_start_frame_banks_must_be_uint8_frames_of_the_world_size(world):
    for bad in (np.zeros((0, 64, 64, 3), np.uint8), np.zeros((2, 32, 32, 3), np.uint8),
                np.zeros((2, 64, 64, 3), np.float32), np.zeros((64, 64, 3), np.uint8)):
        with pytest.raises(ValueError, match="start_frames"):
            NeuralWorldVectorEnv(2, checkpoint=world, start_frames=bad)
    bank = start_bank()
    env = NeuralWorldEnv(checkpoint=world, start_frames=bank)
    bank[:] = 0  # the env keeps its own copy
    expected = NeuralWorldEnv(checkpoint=world, start_frames=start_bank()).reset(seed=0)[0]
    np.testing.assert_array_equal(env.reset(seed=0)[0], expected)


def test_vector_env_autoreset_step_starts_a_new_episode_with_zero_reward(endless_world):
    envs = NeuralWorldVectorEnv(2, checkpoint=endless_world, max_episode_steps=2)
    envs.reset(seed=0)
    truncations = [envs.step(np.zeros(2, np.int64))[3].tolist() for _ in range(2)]
    assert truncations == [[False, False], [True, True]]
    _, rewards, terminated, truncated, _ = envs.step(np.ones(2, np.int64))  # the autoreset step
    assert rewards.tolist() == [0.0, 0.0] and not terminated.any() and not truncated.any()
    # The new episodes count their steps from the reset frame again.
    truncations = [envs.step(np.zeros(2, np.int64))[3].tolist() for _ in range(2)]
    assert truncations == [[False, False], [True, True]]


def test_vector_env_seeded_resets_repeat(checkpoint):
    envs = make_vec(checkpoint, 2, max_episode_steps=4)
    actions = np.random.default_rng(1).integers(5, size=(5, 2))
    first = [envs.reset(seed=7)[0]] + [step[0] for step in run_actions(envs, actions)]
    second = [envs.reset(seed=7)[0]] + [step[0] for step in run_actions(envs, actions)]
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = envs.reset(seed=8)[0]
    assert not np.array_equal(other, first[0])


def test_vector_env_partial_reset_touches_only_the_masked_envs(world):
    envs = NeuralWorldVectorEnv(3, checkpoint=world)
    envs.reset(seed=0, options={"event": "night falls"})
    before, *_ = envs.step(np.array([1, 2, 3]))
    mask = np.array([False, True, False])
    after, info = envs.reset(options={"reset_mask": mask, "event": "it starts snowing"})
    np.testing.assert_array_equal(after[~mask], before[~mask])
    assert info["_event"].tolist() == [False, True, False]
    assert info["event"].tolist() == ["night falls", "it starts snowing", "night falls"]
    for bad in (np.array([1, 0, 1]), np.zeros(3, bool), np.ones(2, bool), [True, False, True]):
        with pytest.raises(ValueError, match="reset_mask"):
            envs.reset(options={"reset_mask": bad})


def test_vector_env_events_per_env(world):
    envs = NeuralWorldVectorEnv(3, checkpoint=world, max_episode_steps=None)
    _, info = envs.reset(seed=0, options={"event": ["night falls", None, "a sunny meadow"]})
    assert info["event"].tolist() == ["night falls", "", "a sunny meadow"]
    envs.trigger_event("it starts snowing", env_ids=[1])
    envs.trigger_event("night falls", env_ids=np.array([False, False, True]))
    info = envs.step(np.zeros(3, np.int64))[4]
    assert info["event"].tolist() == ["night falls", "it starts snowing", "night falls"]
    with pytest.raises(ValueError, match="env_ids"):
        envs.trigger_event("night falls", env_ids=[3])
    with pytest.raises(ValueError):
        envs.trigger_event(42)


def test_vector_env_event_triggered_at_an_episode_end_starts_the_next_episode(endless_world):
    envs = NeuralWorldVectorEnv(2, checkpoint=endless_world, event="a sunny meadow", max_episode_steps=1)
    envs.reset(seed=0)
    assert envs.step(np.zeros(2, np.int64))[3].all()  # both truncate; the next step restarts them
    envs.trigger_event("", env_ids=0)
    info = envs.step(np.zeros(2, np.int64))[4]
    assert info["event"].tolist() == ["", "a sunny meadow"]


def test_vector_env_rejects_bad_actions_without_changing_state(world):
    envs = NeuralWorldVectorEnv(2, checkpoint=world, max_episode_steps=None)
    reference = NeuralWorldVectorEnv(2, checkpoint=world, max_episode_steps=None)
    envs.reset(seed=4)
    reference.reset(seed=4)
    for bad in (np.array([0, 5]), np.array([0, 1, 2]), np.array([0.0, 1.0]), np.array([-1, 0])):
        with pytest.raises(ValueError, match="action"):
            envs.step(bad)
    actions = np.array([3, 4])
    np.testing.assert_array_equal(envs.step(actions)[0], reference.step(actions)[0])


def test_vector_env_returns_torch_tensors_on_request(world):
    numpy_envs = NeuralWorldVectorEnv(2, checkpoint=world, max_episode_steps=2)
    torch_envs = NeuralWorldVectorEnv(2, checkpoint=world, max_episode_steps=2, array_type="torch")
    np.testing.assert_array_equal(numpy_envs.reset(seed=9)[0], torch_envs.reset(seed=9)[0].numpy())
    actions = np.array([[1, 2], [3, 4], [0, 0]])
    for step_actions in actions:
        expected = numpy_envs.step(step_actions)
        got = torch_envs.step(torch.as_tensor(step_actions))
        for value, reference in zip(got[:4], expected[:4], strict=True):
            assert isinstance(value, torch.Tensor)
            np.testing.assert_array_equal(value.numpy(), reference)


def test_vector_env_renders_rgb_arrays(world):
    envs = NeuralWorldVectorEnv(2, checkpoint=world, render_mode="rgb_array")
    obs, _ = envs.reset(seed=0)
    frames = envs.render()
    assert isinstance(frames, tuple) and len(frames) == 2
    np.testing.assert_array_equal(np.stack(frames), obs)


def test_vector_env_rejects_bad_construction(world):
    with pytest.raises(ValueError, match="num_envs"):
        NeuralWorldVectorEnv(0, checkpoint=world)
    with pytest.raises(ValueError, match="array_type"):
        NeuralWorldVectorEnv(1, checkpoint=world, array_type="jax")
    with pytest.raises(ValueError, match="max_episode_steps"):
        NeuralWorldVectorEnv(1, checkpoint=world, max_episode_steps=0)
    with pytest.raises(ValueError, match="render_mode"):
        NeuralWorldVectorEnv(1, checkpoint=world, render_mode="human")


def test_stable_baselines3_ppo_trains_in_the_vector_env(world):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    vec_env = to_sb3(NeuralWorldVectorEnv(2, checkpoint=world, max_episode_steps=4))
    vec_env.seed(0)
    model = PPO("CnnPolicy", vec_env, n_steps=4, batch_size=8, n_epochs=1, device="cpu", seed=0)
    model.learn(total_timesteps=8)
    assert model.num_timesteps >= 8
    assert len(model.ep_info_buffer) >= 2  # each env's episode ends by step 4: SB3 has its statistics
    assert all(1 <= info["l"] <= 4 for info in model.ep_info_buffer)


def test_a_failed_reset_leaves_the_generators_as_they_were(world):
    env = NeuralWorldEnv(checkpoint=world)
    env.reset(seed=3)
    state = env.np_random.bit_generator.state
    with pytest.raises(ValueError, match="context"):
        env.reset(seed=7, options={"context": np.zeros((8, 8, 3), np.uint8)})
    assert env.np_random_seed == 3 and env.np_random.bit_generator.state == state
    for seed in (1.5, 2**63, -1, True):
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=seed)
    assert env.np_random_seed == 3 and env.np_random.bit_generator.state == state
    envs = NeuralWorldVectorEnv(3, checkpoint=world)
    envs.reset(seed=3)
    states = [generator.bit_generator.state for generator in envs.np_random]
    with pytest.raises(ValueError, match="context"):
        envs.reset(seed=7, options={"context": np.zeros((8, 8, 3), np.uint8)})
    assert envs.np_random_seed == (3, 4, 5)
    assert [generator.bit_generator.state for generator in envs.np_random] == states


def test_env_ids_must_be_flat_and_actions_must_not_be_bools(world):
    envs = NeuralWorldVectorEnv(2, checkpoint=world)
    envs.reset(seed=0)
    for env_ids in ([[0], [1]], np.array([[0, 1]]), [0.5], [2]):
        with pytest.raises(ValueError, match="env_ids"):
            envs.trigger_event("night falls", env_ids=env_ids)
    assert list(envs.unwrapped.core.pending) == [None, None]
    env = NeuralWorldEnv(checkpoint=world)
    env.reset(seed=0)
    for action in (True, np.bool_(False)):
        with pytest.raises(ValueError, match="action"):
            env.step(action)

