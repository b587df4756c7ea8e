"""The Gymnasium wrapper of the Explorer world (`worldsim/Explorer-v0`)."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim  # noqa: F401  (registers the envs)
from worldsim.envs.explorer import ExplorerBatch, ExplorerEnv, events


def test_check_env_passes():
    check_env(gym.make("worldsim/Explorer-v0").unwrapped)


def test_spaces_and_true_state_in_info():
    env = gym.make("worldsim/Explorer-v0")
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(5)
    observation, info = env.reset(seed=3)
    assert observation.shape == (64, 64, 3) and observation.dtype == np.uint8
    assert {"position", "step", "events", "coins_collected", "enemies", "tile_classes"} <= set(info)
    assert info["tile_classes"].shape == (16, 16)
    observation, reward, terminated, truncated, info = env.step(4)
    assert isinstance(reward, float) and isinstance(terminated, bool) and truncated is False
    assert info["step"] == 1


def test_seed_gives_the_same_world_as_the_batch_simulator():
    env = ExplorerEnv(render_mode="rgb_array")
    observation, _ = env.reset(seed=12)
    batch = ExplorerBatch(1, seed=12)
    np.testing.assert_array_equal(observation, batch.render()[0])
    np.testing.assert_array_equal(env.render(), observation)
    for action in (1, 1, 3, 0, 2):
        observation, reward, *_ = env.step(action)
        batch_reward, _ = batch.step(np.array([action]))
        assert reward == batch_reward[0]
    np.testing.assert_array_equal(observation, batch.render()[0])


def test_events_through_reset_options_and_trigger_event():
    env = ExplorerEnv()
    _, info = env.reset(seed=0, options={"event": "night falls"})
    assert info["events"]["time"] == "night"
    env.unwrapped.trigger_event("it starts snowing")
    _, _, _, _, info = env.step(0)
    assert info["events"]["time"] == "night" and info["events"]["weather"] == "snow"
    _, info = env.reset(seed=0, options={"event": None})
    assert info["events"]["time"] is None


def test_the_constructor_event_starts_each_reset_that_names_none():
    env = ExplorerEnv(event="night falls")
    _, info = env.reset(seed=0)
    assert info["events"]["time"] == "night"
    _, info = env.reset(seed=0, options={"event": ""})  # a blank text: no event
    assert info["events"]["time"] is None
    _, info = env.reset(seed=0, options={"event": "it starts snowing"})
    assert info["events"]["time"] is None and info["events"]["weather"] == "snow"


def test_unknown_event_and_bad_input_are_clear_errors_that_change_nothing():
    env = ExplorerEnv(render_mode="rgb_array")
    observation, info = env.reset(seed=1)
    with pytest.raises(events.UnknownEventError, match="night falls"):
        env.trigger_event("a purple sky")
    with pytest.raises(events.UnknownEventError):
        env.reset(seed=2, options={"event": "a purple sky"})
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=2, options={"weather": "rain"})
    with pytest.raises(ValueError):
        env.step(7)
    np.testing.assert_array_equal(env.render(), observation)
    _, _, _, _, after = env.step(0)
    assert (after["seed"], after["step"], after["events"]) == (1, 1, info["events"])
    with pytest.raises(ValueError):
        ExplorerEnv(render_mode="ascii")


def test_human_mode_and_keyboard_mapping():
    pygame = pytest.importorskip("pygame")
    env = gym.make("worldsim/Explorer-v0", render_mode="human")
    env.reset(seed=0)
    env.step(1)
    env.close()
    keys = env.unwrapped.get_keys_to_action()
    assert keys[(pygame.K_w,)] == keys[(pygame.K_UP,)] == 1
    assert keys[(pygame.K_d,)] == keys[(pygame.K_RIGHT,)] == 4
    assert set(keys.values()) == {1, 2, 3, 4}


def test_size_is_configurable():
    env = gym.make("worldsim/Explorer-v0", size=32)
    observation, info = env.reset(seed=0)
    assert observation.shape == (32, 32, 3) and info["tile_classes"].shape == (8, 8)


@pytest.mark.parametrize("seed", [2**63, -1, 1.5, True, "3"])
def test_a_bad_seed_is_a_value_error_that_leaves_the_generator_alone(seed):
    env = gym.make("worldsim/Explorer-v0")
    observation, _ = env.reset(seed=4)
    generator_state = env.unwrapped.np_random.bit_generator.state
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=seed)
    assert env.unwrapped.np_random_seed == 4
    assert env.unwrapped.np_random.bit_generator.state == generator_state
    np.testing.assert_array_equal(env.unwrapped._sim.render()[0], observation)
    assert env.reset(seed=2**63 - 1)[1]["seed"] == 2**63 - 1  # the largest seed still works


@pytest.mark.parametrize("event", [5, b"night falls", ["night falls"]])
def test_a_reset_event_that_is_not_text_is_a_value_error(event):
    env = ExplorerEnv()
    env.reset(seed=1)
    with pytest.raises(ValueError, match="event"):
        env.reset(seed=2, options={"event": event})
    with pytest.raises(ValueError, match="event"):
        env.trigger_event(event)
    assert env.step(0)[4]["seed"] == 1


@pytest.mark.parametrize("action", [True, False, np.bool_(True), 5, -1, 1.0])
def test_bools_and_other_non_actions_are_refused(action):
    env = ExplorerEnv()
    env.reset(seed=1)
    with pytest.raises(ValueError, match="action"):
        env.step(action)
    assert env.step(0)[4]["step"] == 1
