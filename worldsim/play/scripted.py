"""Scripted play for automation: event schedules ("0:a sunny meadow,150:night falls") and action sources."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

# A new schedule entry starts at a comma followed by "<frame>:", so event texts may contain commas.
_ENTRY_START = re.compile(r",\s*(?=\d+\s*:)")
ACTION_NAMES = ("noop", "up", "down", "left", "right")
# Sticky random play (DESIGN §4 data policy): each action is held for 1..MAX_HOLD frames.
MAX_HOLD = 12


def parse_event_schedule(spec: str) -> dict[int, str]:
    """`"0:a sunny meadow,150:night falls"` -> {0: "a sunny meadow", 150: "night falls"}."""
    schedule: dict[int, str] = {}
    for entry in _ENTRY_START.split(spec.strip()):
        frame_text, colon, text = entry.partition(":")
        if not colon or not frame_text.strip().isdigit() or not text.strip():
            raise ValueError(f"bad event schedule entry {entry!r}: expected FRAME:TEXT, e.g. '150:night falls'")
        frame = int(frame_text)
        if frame in schedule:
            raise ValueError(f"event schedule names frame {frame} twice")
        schedule[frame] = text.strip()
    return schedule


def random_actions(num_actions: int, seed: int = 0) -> Iterator[int]:
    """Endless sticky random actions: a random action held for a random number of frames."""
    rng = np.random.default_rng(seed)
    while True:
        action = int(rng.integers(num_actions))
        for _ in range(int(rng.integers(1, MAX_HOLD + 1))):
            yield action


def load_actions(path: str | Path, num_actions: int) -> np.ndarray:
    """Actions from a `.npy` integer array or a text file of integers or names (noop/up/down/left/right)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"actions file {path} does not exist (use --actions random or a .npy/.txt file)")
    if path.suffix == ".npy":
        actions = np.load(path, allow_pickle=False)
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"{path}: expected a 1-D integer array, got {actions.dtype} {actions.shape}")
    else:
        tokens = path.read_text().replace(",", " ").split()
        actions = np.array([_parse_action_token(token, path) for token in tokens], dtype=np.int64)
    if actions.size == 0:
        raise ValueError(f"{path} holds no actions")
    bad = (actions < 0) | (actions >= num_actions)
    if bad.any():
        raise ValueError(f"{path}: action {int(actions[bad][0])} is outside 0..{num_actions - 1}")
    return actions.astype(np.int64)


def _parse_action_token(token: str, path: Path) -> int:
    if token.lstrip("-").isdigit():
        return int(token)
    if token.lower() in ACTION_NAMES:
        return ACTION_NAMES.index(token.lower())
    raise ValueError(f"{path}: {token!r} is neither an action index nor one of {', '.join(ACTION_NAMES)}")
