"""Checks of what users pass to the worldsim envs: actions, reset options, env ids, reset masks.

Every check raises a ValueError that says what was expected, before the env changes anything.
Nothing here imports torch: the Explorer envs run without it.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .seeding import is_int

__all__ = ["check_action", "check_options", "check_render_mode", "env_rows", "reset_rows"]


def check_action(action: Any, space: gym.spaces.Discrete) -> int:
    """One action of a `Discrete` space; bools are refused although Python counts them as ints."""
    if not is_int(action) or not space.contains(action):
        raise ValueError(f"action must be an int in [0, {space.n}), got {action!r}")
    return int(action)


def check_render_mode(render_mode: str | None, metadata: dict[str, Any]) -> None:
    if render_mode is not None and render_mode not in metadata["render_modes"]:
        raise ValueError(f"render_mode must be one of {metadata['render_modes']} or None, got {render_mode!r}")


def check_options(options: dict[str, Any] | None, known: frozenset[str]) -> dict[str, Any]:
    """The reset options as a dict; an unknown key is an error naming the known ones."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; known options: {sorted(known)}")
    return options


def reset_rows(mask: Any, num_envs: int, started: bool) -> np.ndarray:
    """The envs a vector reset touches: `options["reset_mask"]` (as SyncVectorEnv checks it) or all."""
    if mask is None:
        return np.ones(num_envs, dtype=bool)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (num_envs,):
        raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape ({num_envs},), got {mask!r}")
    if not mask.any():
        raise ValueError("options['reset_mask'] must select at least one env")
    if not started and not mask.all():
        raise ValueError("the first reset must reset every env (no reset_mask)")
    return mask.copy()


def env_rows(env_ids: Any, num_envs: int) -> np.ndarray:
    """A bool mask [B] from None (all envs), an int, a flat sequence of ints or a bool mask."""
    if env_ids is None:
        return np.ones(num_envs, dtype=bool)
    # torch tensors come back to the host; this module stays torch-free for the Explorer env
    ids = np.asarray(env_ids.cpu() if callable(getattr(env_ids, "cpu", None)) else env_ids)
    if ids.dtype == np.bool_:
        if ids.shape != (num_envs,):
            raise ValueError(f"a bool env_ids mask must have shape ({num_envs},), got {ids.shape}")
        return ids.copy()
    if ids.ndim > 1 or ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() >= num_envs)):
        raise ValueError(f"env_ids must be an int or a flat list of ints in 0..{num_envs - 1}, or a bool mask, "
                         f"got {env_ids!r}")
    rows = np.zeros(num_envs, dtype=bool)
    rows[ids.reshape(-1)] = True
    return rows
