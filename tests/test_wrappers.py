"""Wrappers of envs/wrappers.py on small numpy envs whose every frame says what produced it."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from worldsim.envs.wrappers import (
    SB3VecEnvAdapter,
    ScheduledEvents,
    VectorFrameStack,
    VectorScheduledEvents,
    to_sb3,
    validate_schedule,
)


class FrameCounterEnv(gym.Env):
    """Frame f of an episode is an image filled with f; records the event each frame was made under."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)
        self.frame = 0
        self.event = ""
        self.pending: str | None = None
        self.log: list[tuple[int, str]] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.frame, self.event, self.pending = 0, (options or {}).get("event", ""), None
        self.log.append((0, self.event))
        return np.full((2, 2, 3), 0, np.uint8), {}

    def step(self, action):
        self.frame += 1
        if self.pending is not None:
            self.event, self.pending = self.pending, None
        self.log.append((self.frame, self.event))
        return np.full((2, 2, 3), self.frame, np.uint8), 0.0, False, False, {}

    def trigger_event(self, text: str) -> None:
        self.pending = text


class FrameCounterVectorEnv(VectorEnv):
    """NEXT_STEP vector env: env i's episode ends after `lengths[i]` steps (terminated)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, lengths: list[int], array_type: str = "numpy") -> None:
        self.num_envs = len(lengths)
        self.lengths = np.asarray(lengths)
        self.array_type = array_type
        self.single_observation_space = gym.spaces.Box(0, 255, (2, 2, 3), np.uint8)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.frames = np.zeros(self.num_envs, np.int64)
        self.episodes = np.zeros(self.num_envs, np.int64)
        self.events = np.full(self.num_envs, "", dtype=object)
        self.pending = np.full(self.num_envs, None, dtype=object)
        self.autoreset = np.zeros(self.num_envs, bool)
        self.log: list[list[tuple[int, int, str]]] = [[] for _ in range(self.num_envs)]  # (episode, frame, event)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = options or {}
        rows = options.get("reset_mask", np.ones(self.num_envs, bool))
        for i in np.flatnonzero(rows):
            self._start(i, options.get("event", ""))
        return self._obs(), {"episode_id": self.episodes.copy(), "_episode_id": rows.copy()}

    def step(self, actions):
        terminated = np.zeros(self.num_envs, bool)
        for i in range(self.num_envs):
            if self.autoreset[i]:
                self._start(i, self.pending[i] if self.pending[i] is not None else "")
                continue
            self.frames[i] += 1
            if self.pending[i] is not None:
                self.events[i], self.pending[i] = self.pending[i], None
            self.log[i].append((self.episodes[i], self.frames[i], self.events[i]))
            terminated[i] = self.frames[i] >= self.lengths[i]
        self.autoreset = terminated.copy()
        rewards = np.ones(self.num_envs)
        truncated = np.zeros(self.num_envs, bool)
        info = {"episode_id": self.episodes.copy(), "_episode_id": np.ones(self.num_envs, bool)}
        if self.array_type == "torch":
            arrays = (self._obs(), rewards, terminated, truncated)
            return (*(torch.as_tensor(array) for array in arrays), info)
        return self._obs(), rewards, terminated, truncated, info

    def trigger_event(self, text: str, env_ids=None) -> None:
        self.pending[np.arange(self.num_envs) if env_ids is None else env_ids] = text

    def _start(self, i: int, event: str) -> None:
        self.episodes[i] += 1
        self.frames[i], self.events[i], self.pending[i], self.autoreset[i] = 0, event, None, False
        self.log[i].append((self.episodes[i], 0, event))

    def _obs(self):
        obs = np.broadcast_to(self.frames[:, None, None, None], (self.num_envs, 2, 2, 3)).astype(np.uint8)
        return torch.as_tensor(obs) if self.array_type == "torch" else obs


SCHEDULE = {0: "a sunny meadow", 2: "night falls", 3: "it starts snowing"}


def expected_event(frame: int) -> str:
    """The event in force at `frame` under SCHEDULE (events persist until the next switch)."""
    return SCHEDULE[max(f for f in SCHEDULE if f <= frame)]


@pytest.mark.parametrize("schedule", [{}, {-1: "x"}, {1.5: "x"}, {1: 3}, "0:night falls"])
def test_validate_schedule_rejects_bad_schedules(schedule):
    with pytest.raises(ValueError):
        validate_schedule(schedule)


def test_scheduled_events_switch_at_the_scheduled_frames_of_every_episode():
    env = ScheduledEvents(FrameCounterEnv(), SCHEDULE)
    for _ in range(2):
        env.reset()
        for _ in range(5):
            env.step(0)
    log = env.unwrapped.log
    assert len(log) == 12
    assert all(event == expected_event(frame) for frame, event in log)


def test_scheduled_events_keep_an_explicit_reset_event():
    env = ScheduledEvents(FrameCounterEnv(), SCHEDULE)
    env.reset(options={"event": "fog rolls in"})
    env.step(0)
    assert env.unwrapped.log == [(0, "fog rolls in"), (1, "fog rolls in")]


def test_scheduled_events_need_an_env_that_takes_events():
    with pytest.raises(TypeError, match="trigger_event"):
        ScheduledEvents(gym.make("CartPole-v1"), SCHEDULE)


def test_vector_scheduled_events_restart_the_schedule_after_autoreset():
    venv = VectorScheduledEvents(FrameCounterVectorEnv([2, 3, 5]), SCHEDULE)
    venv.reset(seed=0)
    for _ in range(12):
        venv.step(np.zeros(3, np.int64))
    for env_log in venv.unwrapped.log:
        assert len({episode for episode, _, _ in env_log}) >= 3  # several autoresets happened
        assert all(event == expected_event(frame) for _, frame, event in env_log)


def test_vector_frame_stack_shifts_frames_and_refills_after_autoreset():
    venv = VectorFrameStack(FrameCounterVectorEnv([2, 9]), stack_size=3)
    assert venv.single_observation_space.shape == (3, 2, 2, 3)
    assert venv.observation_space.shape == (2, 3, 2, 2, 3)
    obs, _ = venv.reset()
    assert obs.shape == (2, 3, 2, 2, 3) and not obs.any()
    stacks = [venv.step(np.zeros(2, np.int64))[0] for _ in range(3)]
    first_pixel = [stack[:, :, 0, 0, 0].tolist() for stack in stacks]
    # env 0 ends after 2 steps and restarts at frame 0 on the third; env 1 keeps counting.
    assert first_pixel == [[[0, 0, 1], [0, 0, 1]], [[0, 1, 2], [0, 1, 2]], [[0, 0, 0], [1, 2, 3]]]
    stacks[0][:] = 99  # returned stacks are copies, not the wrapper's buffer
    assert venv.step(np.zeros(2, np.int64))[0].max() < 99


def test_vector_frame_stack_works_on_torch_observations_and_partial_resets():
    venv = VectorFrameStack(FrameCounterVectorEnv([5, 5], array_type="torch"), stack_size=2)
    venv.reset()
    venv.step(np.zeros(2, np.int64))
    obs, _ = venv.reset(options={"reset_mask": np.array([True, False])})
    assert isinstance(obs, torch.Tensor)
    assert obs[:, :, 0, 0, 0].tolist() == [[0, 0], [0, 1]]


def test_vector_frame_stack_rejects_bad_sizes():
    with pytest.raises(ValueError, match="stack_size"):
        VectorFrameStack(FrameCounterVectorEnv([2]), stack_size=0)


def test_sb3_adapter_resets_finished_envs_in_the_same_step():
    adapter = SB3VecEnvAdapter(FrameCounterVectorEnv([2, 4]))
    assert adapter.reset().shape == (2, 2, 2, 3)
    adapter.step_async(np.zeros(2, np.int64))
    adapter.step_wait()
    adapter.step_async(np.zeros(2, np.int64))
    obs, rewards, dones, infos = adapter.step_wait()
    assert dones.tolist() == [True, False]
    assert rewards.dtype == np.float32
    assert obs[0].max() == 0 and obs[1].max() == 2  # env 0 shows its new episode's first frame
    assert infos[0]["terminal_observation"].max() == 2 and "terminal_observation" not in infos[1]
    assert infos[0]["TimeLimit.truncated"] is False
    assert adapter.reset_infos[0]["episode_id"] == 2
    adapter.step_async(np.zeros(2, np.int64))
    obs, _, dones, _ = adapter.step_wait()
    assert dones.tolist() == [False, False] and obs[:, 0, 0, 0].tolist() == [1, 3]


def test_sb3_adapter_reports_episode_statistics_at_episode_ends():
    adapter = SB3VecEnvAdapter(FrameCounterVectorEnv([2, 3]))  # reward 1 per step
    adapter.reset()
    ended = []
    for _ in range(6):
        adapter.step_async(np.zeros(2, np.int64))
        _, _, dones, infos = adapter.step_wait()
        ended.append([info.get("episode") for info in infos])
        assert all(("episode" in info) == bool(done) for info, done in zip(infos, dones))
    env0 = [episode for step in ended for episode in step[:1] if episode]
    env1 = [episode for step in ended for episode in step[1:] if episode]
    assert [(e["r"], e["l"]) for e in env0] == [(2.0, 2), (2.0, 2), (2.0, 2)]
    assert [(e["r"], e["l"]) for e in env1] == [(3.0, 3), (3.0, 3)]
    assert all(isinstance(e["t"], float) and e["t"] >= 0 for e in env0 + env1)


def test_sb3_adapter_requires_next_step_autoreset():
    venv = FrameCounterVectorEnv([2])
    venv.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    with pytest.raises(ValueError, match="NEXT_STEP"):
        SB3VecEnvAdapter(venv)


def test_to_sb3_trains_stable_baselines3_ppo():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    vec_env = to_sb3(FrameCounterVectorEnv([3, 5]))
    vec_env.seed(0)
    model = PPO("MlpPolicy", vec_env, n_steps=8, batch_size=8, n_epochs=1, device="cpu", seed=0)
    model.learn(total_timesteps=32)
    assert model.num_timesteps >= 32
    # SB3 logs ep_rew_mean from the episode statistics
    assert [(info["r"], info["l"]) for info in model.ep_info_buffer][:2] == [(3.0, 3), (5.0, 5)]


def test_evaluate_policy_counts_episodes_by_the_statistics_without_a_monitor_warning():
    pytest.importorskip("stable_baselines3")
    import warnings

    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    vec_env = to_sb3(FrameCounterVectorEnv([3, 5]))
    model = PPO("MlpPolicy", vec_env, n_steps=8, batch_size=8, n_epochs=1, device="cpu", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SB3 warns when it cannot find Monitor statistics
        returns, lengths = evaluate_policy(model, vec_env, n_eval_episodes=4, return_episode_rewards=True)
    assert sorted(zip(returns, lengths)) == [(3.0, 3), (3.0, 3), (5.0, 5), (5.0, 5)]
