"""ExplorerEnv: one Explorer world as a Gymnasium env (`worldsim/Explorer-v0`).

Observation: the frame, uint8 (size, size, 3). Actions: Discrete(5) = noop, up, down, left, right.
Reward +1 per coin, -1 (and termination) on lava or an enemy; the env never truncates by itself
(use max_episode_steps). `reset(seed=s)` plays the world of seed `s`, exactly the world
`ExplorerBatch` builds for seed `s`; without a seed the world seed comes from the env's RNG.
Events: `reset(options={"event": text})` starts under an event (a blank text: none), a reset that
names none starts under the constructor's `event` (`gym.make(..., event="coins rain from the sky")`
makes that the task of every episode), `env.unwrapped.trigger_event(text)` puts one in force at any
time; unknown texts raise `events.UnknownEventError`.
`info` is the true state (`ExplorerBatch.state`): position, step, events by group, coins
collected, visible enemies and the visible tile classes.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ..inputs import check_action, check_options, check_render_mode
from ..seeding import check_seed
from .batch import FPS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .events import EventType, parse_event, parse_events

# World seeds an unseeded reset draws from the env's np_random lie in [0, WORLD_SEED_RANGE).
WORLD_SEED_RANGE = 2**62
RESET_OPTIONS = frozenset({"event"})


class ExplorerEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": FPS}

    def __init__(self, render_mode: str | None = None, size: int = 64, event: str = "") -> None:
        check_render_mode(render_mode, self.metadata)
        self.render_mode = render_mode
        self._default_event = event_option(event, "event")
        self._sim = ExplorerBatch(1, ExplorerConfig(size=size), seed=0)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self._viewer = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = check_seed(seed)  # seed and options are checked first: a bad reset changes nothing
        text = check_options(options, RESET_OPTIONS).get("event")
        event = self._default_event if text is None else event_option(text)
        super().reset(seed=seed)
        world_seed = seed if seed is not None else int(self.np_random.integers(WORLD_SEED_RANGE))
        self._sim.reset(np.array([world_seed], dtype=np.int64))
        self._sim.apply_events([event])
        return self._observe()

    def step(self, action):
        action = check_action(action, self.action_space)
        rewards, terminated = self._sim.step(np.array([action], dtype=np.int64))
        observation, info = self._observe()
        return observation, float(rewards[0]), bool(terminated[0]), False, info

    def trigger_event(self, text: str) -> None:
        """Put the event named by `text` in force from the next observation on."""
        self._sim.apply_events([parse_event(check_event_text(text, "event"))])

    def render(self):
        frame = self._sim.render()[0]
        if self.render_mode == "human":
            self._show(frame)
            return None
        return frame if self.render_mode == "rgb_array" else None

    def _show(self, frame: np.ndarray) -> None:
        if self._viewer is None:
            from worldsim.envs.viewer import Viewer

            self._viewer = Viewer(frame.shape[0], fps=self.metadata["render_fps"], title="worldsim Explorer")
        self._viewer.show(frame)

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None

    def get_keys_to_action(self) -> dict[tuple[int, ...], int]:
        """WASD and arrow keys (pygame key codes), as `gymnasium.utils.play` expects."""
        import pygame  # only keyboard play needs pygame

        return {
            (pygame.K_w,): 1, (pygame.K_UP,): 1,
            (pygame.K_s,): 2, (pygame.K_DOWN,): 2,
            (pygame.K_a,): 3, (pygame.K_LEFT,): 3,
            (pygame.K_d,): 4, (pygame.K_RIGHT,): 4,
        }

    def _observe(self) -> tuple[np.ndarray, dict[str, Any]]:
        frame = self._sim.render()[0]
        if self.render_mode == "human":
            self._show(frame)
        return frame, self._sim.state(0)


def check_event_text(text: Any, where: str) -> str:
    """An event text must be a str (events.UnknownEventError names the known ones if it is not one)."""
    if not isinstance(text, str):
        raise ValueError(f"{where} must be an event text (str), got {type(text).__name__} {text!r}")
    return text


def event_option(text: Any, where: str = "options['event']") -> EventType | None:
    """The event of a reset: None or a blank text for none, else a known event text."""
    return None if text is None else parse_events([check_event_text(text, where)])[0]
