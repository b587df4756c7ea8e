"""The on-disk dataset format: array names, dtypes, file names and the error type.

A dataset is a folder with `manifest.json` and shards `shard-00000.npz`, ... Every shard holds the
aligned arrays below, one row per frame. `actions[i]`, `rewards[i]` and `terminated[i]` describe
the step taken *after* frame i; `events[i]` is the event text in force at frame i (an index into the
manifest's `event_texts`, -1 = no event); `episode[i]` is a globally unique episode id.
A shard may also hold optional per-step labels (EXTRA_DTYPES); readers accept shards without them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FORMAT_NAME = "worldsim-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
NO_EVENT = -1


class DatasetError(ValueError):
    """A dataset (manifest or shard) is missing, malformed or corrupt; the message names which."""


def shard_file_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


@dataclass
class ShardArrays:
    """The aligned per-frame arrays of one shard (or any run of frames)."""

    frames: np.ndarray  # uint8 [N, H, W, 3]
    actions: np.ndarray  # int64 [N]
    events: np.ndarray  # int32 [N]
    rewards: np.ndarray  # float32 [N]
    terminated: np.ndarray  # bool [N]
    episode: np.ndarray  # int64 [N]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # optional labels, EXTRA_DTYPES

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def as_dict(self) -> dict[str, np.ndarray]:
        return {**{name: getattr(self, name) for name in ARRAY_DTYPES}, **self.extras}


# Stored dtype of every array; readers reject anything else.
ARRAY_DTYPES: dict[str, np.dtype] = {
    "frames": np.dtype(np.uint8),
    "actions": np.dtype(np.int64),
    "events": np.dtype(np.int32),
    "rewards": np.dtype(np.float32),
    "terminated": np.dtype(np.bool_),
    "episode": np.dtype(np.int64),
}
LABEL_NAMES: tuple[str, ...] = tuple(name for name in ARRAY_DTYPES if name != "frames")
# Optional per-step labels, [N] each, for dataset statistics (absent in recordings and old data):
# moved = the action moved the player (the view scrolled), blocked = a move into a wall,
# enemies_visible / coins_visible = tiles showing an enemy / a coin in frame i (capped at 255).
EXTRA_DTYPES: dict[str, np.dtype] = {
    "moved": np.dtype(np.bool_),
    "blocked": np.dtype(np.bool_),
    "enemies_visible": np.dtype(np.uint8),
    "coins_visible": np.dtype(np.uint8),
}


@dataclass(frozen=True)
class ShardLayout:
    """What every shard of one dataset must agree on (taken from its manifest)."""

    frame_shape: tuple[int, int, int]
    num_actions: int
    num_events: int


def check_arrays(
    arrays: dict[str, np.ndarray], layout: ShardLayout, where: str, with_frames: bool = True
) -> None:
    """Raise DatasetError (prefixed by `where`) unless `arrays` is a well-formed, aligned shard.

    Checks names, dtypes, shapes, equal lengths, value ranges, and that episodes form contiguous,
    non-decreasing runs with every terminated frame closing its episode. Optional EXTRA_DTYPES
    arrays are checked the same way when present.
    """
    expected = set(ARRAY_DTYPES) if with_frames else set(LABEL_NAMES)
    missing = sorted(expected - set(arrays))
    if missing:
        raise DatasetError(f"{where}: missing array(s) {missing}")
    unknown = sorted(set(arrays) - set(ARRAY_DTYPES) - set(EXTRA_DTYPES))
    if unknown:
        raise DatasetError(f"{where}: unknown array(s) {unknown}")
    dtypes = {**ARRAY_DTYPES, **EXTRA_DTYPES}
    names = [name for name in dtypes if name in expected or (name in EXTRA_DTYPES and name in arrays)]
    for name in names:
        if arrays[name].dtype != dtypes[name]:
            raise DatasetError(
                f"{where}: array '{name}' has dtype {arrays[name].dtype}, expected {dtypes[name]}"
            )
    for name in names:
        trailing = layout.frame_shape if name == "frames" else ()
        shape = arrays[name].shape
        if shape[1:] != trailing or len(shape) != 1 + len(trailing):
            expected_shape = "(" + ", ".join(["N", *map(str, trailing)]) + ")"
            raise DatasetError(f"{where}: array '{name}' has shape {shape}, expected {expected_shape}")
    lengths = {name: arrays[name].shape[0] for name in names}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"{where}: arrays differ in length {lengths}")
    _check_values(arrays, layout, where)


def _check_values(arrays: dict[str, np.ndarray], layout: ShardLayout, where: str) -> None:
    actions, events, episode = arrays["actions"], arrays["events"], arrays["episode"]
    if len(actions) == 0:
        raise DatasetError(f"{where}: shard is empty")
    if actions.min() < 0 or actions.max() >= layout.num_actions:
        raise DatasetError(f"{where}: actions outside [0, {layout.num_actions})")
    if events.min() < NO_EVENT or events.max() >= layout.num_events:
        raise DatasetError(f"{where}: event ids outside [-1, {layout.num_events})")
    if not np.isfinite(arrays["rewards"]).all():
        raise DatasetError(f"{where}: rewards contain NaN or infinity")
    if episode.min() < 0 or (np.diff(episode) < 0).any():
        raise DatasetError(f"{where}: episode ids must be non-negative and non-decreasing")
    ends_episode = episode[1:] != episode[:-1]
    if (arrays["terminated"][:-1] & ~ends_episode).any():
        raise DatasetError(f"{where}: a terminated frame is followed by a frame of the same episode")
