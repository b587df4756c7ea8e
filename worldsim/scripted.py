"""Scripted inputs shared by `worldsim rollout` and `play.py`: timed event schedules and action sequences."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["parse_event_schedule", "random_actions", "load_actions"]



def parse_event_schedule(spec: str, num_frames: int) -> dict[int, str]:
    """"0:a sunny meadow,200:night falls" -> {0: "a sunny meadow", 200: "night falls"}.

    Entries are split at commas that are followed by `<frame>:`, so texts may contain commas.
    An empty text ("150:") clears the event.
    """
    schedule: dict[int, str] = {}
    if not spec.strip():
        return schedule
    for entry in re.split(r",\s*(?=\d+\s*:)", spec.strip()):
        match = re.fullmatch(r"\s*(\d+)\s*:(.*)", entry, flags=re.DOTALL)
        if match is None:
            raise ValueError(f"--events entry {entry!r} is not of the form FRAME:TEXT")
        frame, text = int(match.group(1)), match.group(2).strip()
        if frame >= num_frames:
            raise ValueError(f"--events entry {entry!r}: frame {frame} is beyond the last frame {num_frames - 1}")
        if frame in schedule:
            raise ValueError(f"--events: frame {frame} is given twice")
        schedule[frame] = text
    return schedule


def random_actions(count: int, num_actions: int, seed: int, mean_hold: float = 4.0) -> np.ndarray:
    """Sticky random actions: each drawn action is held for a geometric number of frames."""
    rng = np.random.default_rng(seed)
    actions: list[int] = []
    while len(actions) < count:
        actions += [int(rng.integers(num_actions))] * int(rng.geometric(1.0 / mean_hold))
    return np.asarray(actions[:count], dtype=np.int64)


def load_actions(path: str | os.PathLike, count: int, num_actions: int,
                 action_names: Sequence[str] = ()) -> np.ndarray:
    """Actions from .npy (no pickles), .json (a list) or text (integers, or the game's action names
    in any case, split by spaces/commas; names with spaces cannot be split out of text)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--actions {path}: no such file (use 'random' or a file of integers)")
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
    elif path.suffix == ".json":
        values = np.asarray(json.loads(path.read_text()))
    else:
        tokens = [token for token in re.split(r"[\s,]+", path.read_text()) if token]
        values = np.asarray([_action_index(token, action_names, path) for token in tokens], dtype=np.int64)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise ValueError(f"--actions {path}: expected a flat list of integers, got {values.dtype} {values.shape}")
    if len(values) < count:
        raise ValueError(f"--actions {path}: {len(values)} actions, the rollout needs {count}")
    if values.min(initial=0) < 0 or values.max(initial=0) >= num_actions:
        raise ValueError(f"--actions {path}: actions must be in 0..{num_actions - 1}")
    return values[:count].astype(np.int64)


def _action_index(token: str, action_names: Sequence[str], path: Path) -> int:
    """An integer token, or the index of the action of that name (case-insensitive)."""
    try:
        return int(token)
    except ValueError:
        pass
    folded = [name.casefold() for name in action_names]
    if token.casefold() in folded:
        return folded.index(token.casefold())
    names = f" or the game's action names ({', '.join(action_names)})" if action_names else ""
    raise ValueError(f"--actions {path}: expected integers{names} separated by spaces or commas, got {token!r}")
