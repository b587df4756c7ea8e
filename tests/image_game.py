"""A tiny Gymnasium image game of the test suite's own: a recorded world that is not the Explorer.

Non-square, odd-sized frames (27 x 41), three actions (stay, left, right) without
`get_action_meanings`, a reward when the paddle touches the target and episodes of 60 steps.
`gym.make("tests.image_game:PaddleGame-v0")` imports this module and registers it.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

HEIGHT, WIDTH = 27, 41
ENV_ID = "tests.image_game:PaddleGame-v0"


class PaddleGame(gym.Env):
    """A paddle moves along the bottom row; touching the column of the target scores 1."""

    metadata = {"render_modes": []}

    def __init__(self, episode_steps: int = 60) -> None:
        self.observation_space = gym.spaces.Box(0, 255, shape=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(3)
        self.episode_steps = episode_steps
        self.paddle = self.target = self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.paddle = WIDTH // 2
        self.target = int(self.np_random.integers(2, WIDTH - 2))
        self.steps = 0
        return self._frame(), {}

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + (0, -2, 2)[int(action)], 2, WIDTH - 3))
        self.steps += 1
        reward = 1.0 if abs(self.paddle - self.target) <= 1 else 0.0
        if reward:
            self.target = int(self.np_random.integers(2, WIDTH - 2))
        return self._frame(), reward, False, self.steps >= self.episode_steps, {}

    def _frame(self) -> np.ndarray:
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[:, :] = (20, 30, 60)
        frame[2:6, self.target - 1:self.target + 2] = (250, 200, 40)
        frame[HEIGHT - 4:HEIGHT - 1, self.paddle - 2:self.paddle + 3] = (230, 230, 230)
        return frame


gym.register(id="PaddleGame-v0", entry_point=PaddleGame)
