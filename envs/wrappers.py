"""Wrappers for the worldsim environments: scheduled events, vector frame stacking and an SB3 adapter.

- `ScheduledEvents` / `VectorScheduledEvents` switch text events at fixed frames of every episode
  (frame 0 is the reset frame) through `env.unwrapped.trigger_event`.
- `VectorFrameStack` stacks the last N frames of a vector env, handling NEXT_STEP autoreset
  (Gymnasium's `FrameStackObservation` already does this for a single env).
- `to_sb3(venv)` exposes a Gymnasium `VectorEnv` with NEXT_STEP autoreset as a Stable-Baselines3
  `VecEnv` (optional extra `sb3`) that reports episode statistics as SB3's `VecMonitor` does;
  its logic lives in `SB3VecEnvAdapter`, which needs no SB3.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers.vector import DictInfoToList

__all__ = [
    "ScheduledEvents",
    "VectorScheduledEvents",
    "VectorFrameStack",
    "EpisodeStatistics",
    "SB3VecEnvAdapter",
    "to_sb3",
    "validate_schedule",
]


def validate_schedule(schedule: Mapping[int, str]) -> dict[int, str]:
    """Check an event schedule {frame index within the episode: event text} and return a copy."""
    if not isinstance(schedule, Mapping) or not schedule:
        raise ValueError(f"event schedule must be a non-empty mapping frame -> text, got {schedule!r}")
    checked: dict[int, str] = {}
    for frame, text in schedule.items():
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise ValueError(f"event schedule frame must be an int >= 0, got {frame!r}")
        if not isinstance(text, str):
            raise ValueError(f"event schedule text at frame {frame} must be a str, got {text!r}")
        checked[int(frame)] = text
    return checked


def _require_trigger_event(env: Any) -> None:
    if not callable(getattr(env.unwrapped, "trigger_event", None)):
        raise TypeError(f"{env.unwrapped!r} has no trigger_event(text) method; it cannot take events")


class ScheduledEvents(gym.Wrapper):
    """Trigger `schedule[f]` so that frame f of every episode is generated under it.

    Frame 0 is the reset frame: its event is passed as `reset(options={"event": ...})` unless the
    caller gives one. Example: `ScheduledEvents(env, {0: "a sunny meadow", 200: "night falls"})`.
    """

    def __init__(self, env: gym.Env, schedule: Mapping[int, str]) -> None:
        super().__init__(env)
        _require_trigger_event(env)
        self.schedule = validate_schedule(schedule)
        self._frame = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        if 0 in self.schedule:
            options.setdefault("event", self.schedule[0])
        self._frame = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        next_frame = self._frame + 1
        if next_frame in self.schedule:
            self.env.unwrapped.trigger_event(self.schedule[next_frame])
        self._frame = next_frame
        return self.env.step(action)


class VectorScheduledEvents(VectorWrapper):
    """`ScheduledEvents` for a vector env with NEXT_STEP autoreset, with one frame counter per env.

    The wrapped env's `trigger_event(text, env_ids)` must apply an event to the next frame each env
    produces, which for an env being autoreset is its new reset frame.
    """

    def __init__(self, env: VectorEnv, schedule: Mapping[int, str]) -> None:
        super().__init__(env)
        _require_trigger_event(env)
        _require_next_step_autoreset(env)
        self.schedule = validate_schedule(schedule)
        self._frames = np.zeros(env.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(env.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        rows = _reset_rows(options, self.num_envs)
        if 0 in self.schedule:
            options.setdefault("event", self.schedule[0])
        self._frames[rows] = 0
        self._autoreset[rows] = False
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: Any):
        next_frames = np.where(self._autoreset, 0, self._frames + 1)
        for text in set(self.schedule.values()):
            frames_due = [frame for frame, event in self.schedule.items() if event == text]
            env_ids = np.flatnonzero(np.isin(next_frames, frames_due))
            if env_ids.size:
                self.env.unwrapped.trigger_event(text, env_ids=env_ids)
        self._frames = next_frames
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self._autoreset = _as_numpy_bool(terminated) | _as_numpy_bool(truncated)
        return obs, rewards, terminated, truncated, info


class VectorFrameStack(VectorWrapper):
    """Stack the last `stack_size` observations of each env: obs [B, stack_size, *frame].

    At a (re)set the stack is filled with the reset frame, like Gymnasium's single-env
    `FrameStackObservation(padding_type="reset")`. Works with numpy and torch observations.
    """

    def __init__(self, env: VectorEnv, stack_size: int) -> None:
        super().__init__(env)
        _require_next_step_autoreset(env)
        if isinstance(stack_size, bool) or not isinstance(stack_size, int) or stack_size < 1:
            raise ValueError(f"stack_size must be an int >= 1, got {stack_size!r}")
        self.stack_size = stack_size
        frame_space = env.single_observation_space
        if not isinstance(frame_space, gym.spaces.Box):
            raise TypeError(f"VectorFrameStack needs a Box observation space, got {frame_space}")
        self.single_observation_space = gym.spaces.Box(
            low=np.repeat(frame_space.low[None], stack_size, axis=0),
            high=np.repeat(frame_space.high[None], stack_size, axis=0),
            dtype=frame_space.dtype,
        )
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self._stack: Any = None
        self._autoreset = np.zeros(env.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = dict(options or {})
        rows = _reset_rows(options, self.num_envs)
        obs, info = self.env.reset(seed=seed, options=options)
        if self._stack is None:
            self._stack = _repeat_frames(obs, self.stack_size)
        else:
            self._stack[_index_like(obs, rows)] = _repeat_frames(obs, self.stack_size)[_index_like(obs, rows)]
        self._autoreset[rows] = False
        return _copy(self._stack), info

    def step(self, actions: Any):
        if self._stack is None:
            raise RuntimeError("call reset() before step()")
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self._stack[:, :-1] = _copy(self._stack[:, 1:])
        self._stack[:, -1] = obs
        restarted = _index_like(obs, self._autoreset)
        self._stack[restarted] = _repeat_frames(obs, self.stack_size)[restarted]
        self._autoreset = _as_numpy_bool(terminated) | _as_numpy_bool(truncated)
        return _copy(self._stack), rewards, terminated, truncated, info


class EpisodeStatistics:
    """Each env's episode return and length, reported at the episode's end as SB3's `VecMonitor` does:
    `info["episode"] = {"r": return, "l": length, "t": seconds since these statistics started}`."""

    def __init__(self, num_envs: int) -> None:
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.started = time.time()

    def restart(self, rows: np.ndarray) -> None:
        """Start counting new episodes in `rows` (a bool mask)."""
        self.returns[rows] = 0.0
        self.lengths[rows] = 0

    def record(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Count one step of every env; add `info["episode"]` for the envs whose episode ended."""
        self.returns += rewards
        self.lengths += 1
        for i in np.flatnonzero(dones):
            infos[i]["episode"] = {"r": float(self.returns[i]), "l": int(self.lengths[i]),
                                   "t": round(time.time() - self.started, 6)}
        self.restart(dones)


class SB3VecEnvAdapter:
    """The logic of a Stable-Baselines3 `VecEnv` over a Gymnasium NEXT_STEP `VectorEnv`.

    SB3 resets a finished env within the step that ends it, returns the new reset frame and keeps
    the last frame in `info["terminal_observation"]`; this adapter does that with the vector env's
    partial reset (`reset(options={"reset_mask": done})`). At each episode end it adds SB3's
    `info["episode"]` statistics (`EpisodeStatistics`), so SB3 logs `ep_rew_mean` / `ep_len_mean`
    without a `VecMonitor`. Use `to_sb3(venv)`, which adds SB3's `VecEnv` base class (seed,
    set_options, render) on top; this class itself needs no SB3.
    """

    def __init__(self, venv: VectorEnv) -> None:
        _require_next_step_autoreset(venv)
        self.venv = DictInfoToList(venv)
        self.num_envs = venv.num_envs
        self.observation_space = venv.single_observation_space
        self.action_space = venv.single_action_space
        self.render_mode = venv.render_mode
        self.reset_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        # Filled by SB3's VecEnv.seed / set_options; consumed by the next reset.
        self._seeds: list[int | None] = [None] * self.num_envs
        self._options: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._actions: np.ndarray | None = None
        self.episode_statistics = EpisodeStatistics(self.num_envs)

    def reset(self) -> np.ndarray:
        # The batched env has one random generator: the first env's seed and options drive it.
        obs, self.reset_infos = self.venv.reset(seed=self._seeds[0], options=dict(self._options[0]))
        self.episode_statistics.restart(np.ones(self.num_envs, dtype=bool))
        self._seeds = [None] * self.num_envs
        self._options = [{} for _ in range(self.num_envs)]
        if not isinstance(obs, np.ndarray):
            raise TypeError("SB3 needs numpy observations: make the vector env with array_type='numpy'")
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("step_async() must be called before step_wait()")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminated, truncated)
        self.episode_statistics.record(np.asarray(rewards, dtype=np.float64), dones, infos)
        for i, info in enumerate(infos):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            if dones[i]:
                info["terminal_observation"] = obs[i].copy()
        if dones.any():
            obs, reset_infos = self.venv.reset(options={"reset_mask": dones})
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = reset_infos[i]
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.venv.render()
        return list(frames) if frames is not None else [None] * self.num_envs

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = getattr(self.venv.unwrapped, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError("the envs of a natively batched vector env cannot hold different attributes")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        # One batched env: the method runs once (pass env_ids= to methods that take them).
        result = getattr(self.venv.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> range | list[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, (int, np.integer)):
            return [int(indices)]
        return [int(i) for i in indices]


def to_sb3(venv: VectorEnv) -> Any:
    """Wrap `venv` as a `stable_baselines3` `VecEnv` (needs the optional extra: pip install worldsim[sb3])."""
    try:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as error:
        raise ImportError("to_sb3 needs stable-baselines3: pip install 'worldsim[sb3]'") from error

    class SB3VecEnv(SB3VecEnvAdapter, VecEnv):
        def __init__(self, venv: VectorEnv) -> None:
            SB3VecEnvAdapter.__init__(self, venv)
            VecEnv.__init__(self, self.num_envs, self.observation_space, self.action_space)

        def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
            # Its episode statistics are Monitor's, so evaluate_policy may count episodes by them.
            return [wrapper_class is Monitor for _ in self._indices(indices)]

    return SB3VecEnv(venv)


def _require_next_step_autoreset(env: VectorEnv) -> None:
    mode = env.metadata.get("autoreset_mode")
    if mode != AutoresetMode.NEXT_STEP:
        raise ValueError(f"this wrapper needs a vector env with NEXT_STEP autoreset, got {mode}")


def _reset_rows(options: Mapping[str, Any], num_envs: int) -> np.ndarray:
    """The rows a vector reset touches: `options["reset_mask"]` or all of them."""
    mask = options.get("reset_mask")
    if mask is None:
        return np.ones(num_envs, dtype=bool)
    return _as_numpy_bool(mask)


def _as_numpy_bool(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy().astype(bool)
    return np.asarray(array, dtype=bool)


def _index_like(array: Any, mask: np.ndarray) -> Any:
    """`mask` as an index for `array` (a torch bool tensor on its device for torch arrays)."""
    if isinstance(array, torch.Tensor):
        return torch.as_tensor(mask, device=array.device)
    return mask


def _repeat_frames(obs: Any, stack_size: int) -> Any:
    """[B, *frame] -> [B, stack_size, *frame], every slot holding the frame."""
    if isinstance(obs, torch.Tensor):
        return obs.unsqueeze(1).repeat_interleave(stack_size, dim=1)
    return np.repeat(obs[:, None], stack_size, axis=1)


def _copy(array: Any) -> Any:
    return array.clone() if isinstance(array, torch.Tensor) else array.copy()
