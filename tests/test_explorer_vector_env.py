"""ExplorerVectorEnv (the vector entry point of worldsim/Explorer-v0) against SyncVectorEnv over Explorer-v0."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import worldsim  # noqa: F401  (registers the environments)
from worldsim.envs.explorer import ExplorerVectorEnv
from worldsim.envs.wrappers import VectorScheduledEvents, to_sb3

ENV_ID = "worldsim/Explorer-v0"


def make_pair(num_envs: int, **kwargs):
    batched = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    reference = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="sync", **kwargs)
    return batched, reference


def assert_same_info(info: dict, expected: dict, where: str) -> None:
    assert info.keys() == expected.keys(), where
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same_info(info[key], value, f"{where} {key}")
            continue
        assert info[key].dtype == value.dtype and info[key].shape == value.shape, f"{where} {key}"
        if value.dtype == object:
            assert list(info[key]) == list(value), f"{where} {key}"
        else:
            np.testing.assert_array_equal(info[key], value, err_msg=f"{where} {key}")


def assert_same_step(result, expected, where: str) -> None:
    for name, value, reference in zip(("obs", "reward", "terminated", "truncated"), result[:4], expected[:4]):
        assert value.dtype == reference.dtype, f"{where} {name}"
        np.testing.assert_array_equal(value, reference, err_msg=f"{where} {name}")
    assert_same_info(result[4], expected[4], where)


def test_make_vec_builds_the_batched_env_with_the_spaces_of_explorer():
    envs = gym.make_vec(ENV_ID, num_envs=256, vectorization_mode="vector_entry_point")
    single = gym.make(ENV_ID)
    assert isinstance(envs.unwrapped, ExplorerVectorEnv)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (256, 64, 64, 3) and obs.dtype == np.uint8


def test_equals_sync_vector_env_step_by_step_through_terminations_truncations_and_events():
    batched, reference = make_pair(6, max_episode_steps=12)
    obs, info = batched.reset(seed=5, options={"event": "night falls"})
    ref_obs, ref_info = reference.reset(seed=5, options={"event": "night falls"})
    np.testing.assert_array_equal(obs, ref_obs)
    assert_same_info(info, ref_info, "reset")
    rng = np.random.default_rng(0)
    ended = np.zeros(6, bool)
    endings = {"terminated": 0, "truncated": 0}
    for step in range(80):
        if step in (10, 40):
            env_ids = np.flatnonzero(~ended)[:3]  # envs about to restart take events as their next episode's
            text = "lava erupts" if step == 10 else "enemies appear"
            batched.unwrapped.trigger_event(text, env_ids=env_ids)
            for i in env_ids:
                reference.envs[i].unwrapped.trigger_event(text)
        actions = rng.integers(0, 5, 6)
        result, expected = batched.step(actions), reference.step(actions)
        assert_same_step(result, expected, f"step {step}")
        ended = expected[2] | expected[3]
        endings["terminated"] += int(expected[2].sum())
        endings["truncated"] += int(expected[3].sum())
    assert endings["terminated"] > 0 and endings["truncated"] > 0  # both autoreset paths were compared


def test_partial_resets_and_seed_lists_equal_sync_vector_env():
    batched, reference = make_pair(4, max_episode_steps=50)
    for env in (batched, reference):
        env.reset(seed=[3, 4, 7, 1])
        env.step(np.array([1, 2, 3, 4]))
    mask = np.array([True, False, True, False])
    result = batched.reset(seed=[11, None, None, None], options={"reset_mask": mask, "event": "it starts snowing"})
    expected = reference.reset(seed=[11, None, None, None], options={"reset_mask": mask, "event": "it starts snowing"})
    np.testing.assert_array_equal(result[0], expected[0])
    assert_same_info(result[1], expected[1], "partial reset")
    assert batched.unwrapped.np_random_seed == (11, 4, 7, 1)
    actions = np.array([0, 4, 4, 1])
    assert_same_step(batched.step(actions), reference.step(actions), "after partial reset")


def test_per_env_start_events_and_events_for_restarting_envs():
    envs = ExplorerVectorEnv(3, max_episode_steps=2)
    _, info = envs.reset(seed=0, options={"event": ["night falls", None, "it starts snowing"]})
    assert list(info["events"]["time"]) == ["night", None, None]
    assert list(info["events"]["weather"]) == [None, None, "snow"]
    envs.step(np.zeros(3, np.int64))
    *_, truncated, _ = envs.step(np.zeros(3, np.int64))
    assert truncated.all()
    envs.trigger_event("coins rain from the sky", env_ids=[1])  # env 1 restarts at the next step
    _, rewards, _, _, info = envs.step(np.zeros(3, np.int64))
    assert info["step"].tolist() == [0, 0, 0] and rewards.tolist() == [0.0, 0.0, 0.0]
    assert list(info["events"]["coins"]) == [None, "coin_shower", None]


def test_scheduled_events_and_sb3_run_on_the_batched_env():
    envs = VectorScheduledEvents(ExplorerVectorEnv(2, max_episode_steps=3), {0: "night falls", 2: "fog rolls in"})
    _, info = envs.reset(seed=0)
    assert list(info["events"]["time"]) == ["night", "night"]
    envs.step(np.zeros(2, np.int64))
    _, _, _, _, info = envs.step(np.zeros(2, np.int64))
    assert list(info["events"]["weather"]) == ["fog", "fog"]
    vec_env = to_sb3(ExplorerVectorEnv(2, max_episode_steps=3))
    obs = vec_env.reset()
    for _ in range(3):
        vec_env.step_async(np.zeros(2, np.int64))
        obs, _, dones, infos = vec_env.step_wait()
    assert dones.all() and all(info["episode"]["l"] == 3 for info in infos)
    assert obs.shape == (2, 64, 64, 3)


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        ExplorerVectorEnv(3).step(np.zeros(3, np.int64))


def test_bad_input_is_a_clear_error_that_changes_nothing():
    envs = ExplorerVectorEnv(3)
    obs, _ = envs.reset(seed=1)
    seeds = envs.np_random_seed
    bad_calls = [
        (lambda: envs.step(np.array([0, 1, 5])), "actions"),
        (lambda: envs.step(np.array([0, 1])), "actions"),
        (lambda: envs.step(np.array([0.0, 1.0, 2.0])), "actions"),
        (lambda: envs.step(np.array([True, False, True])), "actions"),
        (lambda: envs.reset(seed=1.5), "seed"),
        (lambda: envs.reset(seed=2**63 - 2), "seed"),
        (lambda: envs.reset(seed=[1, 2]), "seed"),
        (lambda: envs.reset(seed=7, options={"event": 5}), "event"),
        (lambda: envs.reset(seed=7, options={"event": "a purple sky"}), "night falls"),
        (lambda: envs.reset(seed=7, options={"reset_mask": np.zeros(3, bool)}), "reset_mask"),
        (lambda: envs.reset(seed=7, options={"weather": "rain"}), "options"),
        (lambda: envs.trigger_event("night falls", env_ids=[[0], [1]]), "env_ids"),
        (lambda: envs.trigger_event("night falls", env_ids=[3]), "env_ids"),
        (lambda: envs.trigger_event(None), "event"),
    ]
    for call, message in bad_calls:
        with pytest.raises(ValueError, match=message):
            call()
    assert envs.np_random_seed == seeds
    np.testing.assert_array_equal(envs.unwrapped._sim.render(), obs)
    with pytest.raises(ValueError, match="num_envs"):
        ExplorerVectorEnv(0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        ExplorerVectorEnv(2, max_episode_steps=0)


def test_the_constructor_event_starts_every_episode_that_names_none_as_sync_vector_env_does():
    batched, reference = make_pair(4, max_episode_steps=3, event="coins rain from the sky")
    for env in (batched, reference):
        _, info = env.reset(seed=2)
    assert list(info["events"]["coins"]) == ["coin_shower"] * 4
    for step in range(7):  # through two autoresets, which name no event
        actions = np.full(4, step % 5)
        result, expected = batched.step(actions), reference.step(actions)
        assert_same_step(result, expected, f"step {step}")
    assert list(result[4]["events"]["coins"]) == ["coin_shower"] * 4
    _, info = batched.reset(seed=2, options={"event": [None, "", "night falls", None]})  # "": no event
    assert list(info["events"]["coins"]) == ["coin_shower", None, None, "coin_shower"]
    with pytest.raises(worldsim.envs.explorer.events.UnknownEventError, match="coins rain from the sky"):
        ExplorerVectorEnv(2, event="a purple sky")
