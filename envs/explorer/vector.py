"""ExplorerVectorEnv: `num_envs` Explorer worlds as one Gymnasium vector env on the numpy batch.

    envs = gym.make_vec("worldsim/Explorer-v0", num_envs=256, vectorization_mode="vector_entry_point")

It behaves step by step as `SyncVectorEnv` over `worldsim/Explorer-v0` (the test checks it), but
steps, renders and reports all worlds at once with `ExplorerBatch` instead of one env at a time:
- the spaces, rewards (float64), flags and infos of that SyncVectorEnv (info = each world's true
  state, a dict of arrays with `_key` masks, see `ExplorerBatch.batch_state`);
- `reset(seed=s)` gives env i the world of seed s + i (or a list of seeds), and an env reset without
  a seed draws its world seed from its own `np_random`, as `ExplorerEnv` does;
- NEXT_STEP autoreset: the step after an env terminates or is truncated (`max_episode_steps`)
  returns its new first frame, reward 0 and both flags False, and ignores its action;
- events: `make_vec(..., event=text)` starts every episode that names no event under `text` (the
  task of an RL run, e.g. "coins rain from the sky"), `reset(options={"event": text or one text/None
  per env})` and
  `trigger_event(text, env_ids=None)`, which puts the event in force at once, or, for an env about
  to be reset, from its new episode's first frame (as the neural vector env does);
- `options["reset_mask"]` resets only some envs.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..inputs import check_options, check_render_mode, env_rows, reset_rows
from ..seeding import EnvGenerators, PerEnvGenerators, check_vector_seed, is_int
from .batch import FPS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .env import WORLD_SEED_RANGE, check_event_text, event_option
from .events import EventType, parse_event

__all__ = ["ExplorerVectorEnv", "vector_info"]


class ExplorerVectorEnv(PerEnvGenerators, VectorEnv):
    """`num_envs` Explorer worlds of `size` pixels, truncated after `max_episode_steps` (None: never)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS, "autoreset_mode": AutoresetMode.NEXT_STEP}
    RESET_OPTIONS = frozenset({"event", "reset_mask"})

    def __init__(self, num_envs: int = 1, size: int = 64, max_episode_steps: int | None = 1000,
                 render_mode: str | None = None, event: str = "") -> None:
        check_render_mode(render_mode, self.metadata)
        self._default_event = event_option(event, "event")  # the start event of resets that name none
        if not is_int(num_envs) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        if max_episode_steps is not None and (not is_int(max_episode_steps) or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be an int >= 1 or None, got {max_episode_steps!r}")
        self._sim = ExplorerBatch(int(num_envs), ExplorerConfig(size=size), seed=0)
        self.num_envs = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.single_observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generators = EnvGenerators(self.num_envs)
        self._episode_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)  # envs that ended at the last step
        self._pending = [self._default_event] * self.num_envs  # start events of those envs
        self._started = False

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        options = check_options(options, self.RESET_OPTIONS)  # everything is checked before any change
        rows = reset_rows(options.get("reset_mask"), self.num_envs, self._started)
        start_events = self._start_events(options.get("event"))
        seeds = check_vector_seed(seed, self.num_envs)
        self._generators.seed(seeds, rows)
        self._restart(rows, seeds, start_events)
        self._started = True
        return self._sim.render(), vector_info(self._sim.batch_state(), rows)

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        restarting = self._autoreset.copy()  # _restart clears the flags
        rewards, terminated = self._sim.step(_check_actions(actions, self.num_envs))
        if restarting.any():
            # Every world was stepped; restarting the ended ones over that step is NEXT_STEP autoreset.
            self._restart(restarting, [None] * self.num_envs, self._pending)
            rewards[restarting] = 0.0
            terminated[restarting] = False
        self._episode_steps = np.where(restarting, 0, self._episode_steps + 1)
        truncated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = self._episode_steps >= self.max_episode_steps
        self._autoreset = terminated | truncated
        info = vector_info(self._sim.batch_state(), np.ones(self.num_envs, dtype=bool))
        return self._sim.render(), rewards.astype(np.float64), terminated, truncated, info

    def trigger_event(self, text: str, env_ids: Any = None) -> None:
        """Put the event named by `text` in force in the envs `env_ids` (None = all; an int, ints or a
        bool mask): at once, or from the first frame of the new episode of an env about to be reset."""
        rows = env_rows(env_ids, self.num_envs)
        event = parse_event(check_event_text(text, "event"))
        now = rows & ~self._autoreset
        self._sim.apply_events([event if now[i] else None for i in range(self.num_envs)])
        for i in np.flatnonzero(rows & self._autoreset):
            self._pending[i] = event

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array" or not self._started:
            return None
        return tuple(self._sim.render())

    def _start_events(self, event: Any) -> list[EventType | None]:
        """Start events from `options["event"]`: None (the default event), one text for all envs, or one
        text/None per env; a blank text means no event."""
        if event is None or isinstance(event, str):
            event = [event] * self.num_envs
        if not isinstance(event, Sequence) or len(event) != self.num_envs:
            raise ValueError(f"options['event'] must be a str or a list of {self.num_envs} str/None, got {event!r}")
        return [self._default_event if text is None else event_option(text, f"options['event'][{i}]")
                for i, text in enumerate(event)]

    def _restart(self, rows: np.ndarray, seeds: Sequence[int | None], start_events: Sequence[EventType | None]) -> None:
        """New episodes in `rows`: world seed `seeds[i]`, or one drawn from env i's generator."""
        world_seeds = np.zeros(self.num_envs, dtype=np.int64)
        for i in np.flatnonzero(rows):
            world_seeds[i] = seeds[i] if seeds[i] is not None else self._generators[i].integers(WORLD_SEED_RANGE)
        self._sim.reset(world_seeds, mask=rows)
        self._sim.apply_events([start_events[i] if rows[i] else None for i in range(self.num_envs)])
        self._episode_steps[rows] = 0
        self._autoreset[rows] = False
        for i in np.flatnonzero(rows):
            self._pending[i] = self._default_event


def _check_actions(actions: Any, num_envs: int) -> np.ndarray:
    actions = np.asarray(actions)
    if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
        raise ValueError(f"actions must be {num_envs} ints in [0, {NUM_ACTIONS}), got {actions.dtype} {actions.shape}")
    if actions.min() < 0 or actions.max() >= NUM_ACTIONS:
        raise ValueError(f"actions must be in [0, {NUM_ACTIONS}), got values in [{actions.min()}, {actions.max()}]")
    return actions.astype(np.int64)


def vector_info(state: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """`state` (arrays over the batch) as Gymnasium's vector envs report infos: every key has a `_key`
    mask (`rows`); the values of envs outside `rows` are 0 / None, as `SyncVectorEnv` leaves them."""
    info: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, dict):
            info[key] = vector_info(value, rows)
        else:
            value = value.copy()
            value[~rows] = None if value.dtype == object else 0
            info[key] = value
        info[f"_{key}"] = rows.copy()
    return info
