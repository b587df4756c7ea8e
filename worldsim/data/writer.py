"""`DatasetWriter`: record frames one step at a time into a dataset folder (recordings, play)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from worldsim.data.atomic import remove_stale_temp_files
from worldsim.data.format import ARRAY_DTYPES, MANIFEST_NAME, NO_EVENT, DatasetError, ShardArrays
from worldsim.data.manifest import Manifest, load_manifest, save_manifest
from worldsim.data.shards import write_shard

# Shards hold about this many bytes of raw frames unless the caller picks a frame count.
SHARD_TARGET_BYTES = 64 << 20


def default_shard_frames(frame_shape: Sequence[int]) -> int:
    return max(1, SHARD_TARGET_BYTES // int(np.prod(frame_shape)))


class DatasetWriter:
    """Append steps (frame, action taken after it, reward, terminated, event) to a dataset.

    Full shards are written atomically as they fill and the manifest is rewritten after each one,
    so an interrupted recording keeps every committed shard. `close()` (or leaving the `with`
    block) writes the rest and marks the dataset complete. Episode ids are assigned here: a new
    episode starts after a terminated step or an explicit `end_episode()`.
    With `append=True` an existing dataset of the same world and layout is extended.
    """

    def __init__(
        self,
        path: str | Path,
        world: str,
        frame_shape: Sequence[int],
        num_actions: int,
        event_texts: Sequence[str] = (),
        shard_frames: int | None = None,
        generator: dict[str, Any] | None = None,
        compress: bool = True,
        append: bool = False,
    ) -> None:
        self.path = Path(path)
        wanted = Manifest(
            world=world,
            frame_shape=tuple(int(v) for v in frame_shape),
            num_actions=int(num_actions),
            event_texts=tuple(event_texts),
            generator=dict(generator or {}),
        )
        Manifest.from_dict(wanted.to_dict(), where="DatasetWriter settings")  # same rules as readers
        self.shard_frames = shard_frames or default_shard_frames(wanted.frame_shape)
        if self.shard_frames <= 0:
            raise ValueError(f"shard_frames must be positive, got {shard_frames}")
        self.compress = compress
        self._manifest = self._open(wanted, append)
        self._next_index = self._manifest.shards[-1].index + 1 if self._manifest.shards else 0
        self._episode = self._manifest.shards[-1].last_episode + 1 if self._manifest.shards else 0
        self._episode_has_frames = False
        self._buffer: dict[str, list] = {name: [] for name in ARRAY_DTYPES}
        self._closed = False

    @property
    def num_frames(self) -> int:
        """Frames committed to disk plus frames buffered."""
        return self._manifest.num_frames + len(self._buffer["frames"])

    def add(
        self, frame: np.ndarray, action: int, reward: float = 0.0, terminated: bool = False,
        event: int = NO_EVENT,
    ) -> None:
        """Append one step: `frame`, then `action` taken from it, its `reward` and `terminated`.

        `action` and `event` are ints (numpy ints too, not bools or floats), `reward` a finite
        real number, `terminated` a bool; anything else raises ValueError and adds nothing.
        """
        self._check_open()
        frame = self._checked_frame(frame)
        action = int(_checked_scalar("action", action, "iu", "an int"))
        event = int(_checked_scalar("event", event, "iu", "an int"))
        reward = float(_checked_scalar("reward", reward, "iuf", "a real number"))
        terminated = bool(_checked_scalar("terminated", terminated, "b", "a bool"))
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite, got {reward}")
        if not 0 <= action < self._manifest.num_actions:
            raise ValueError(f"action {action} outside [0, {self._manifest.num_actions})")
        if not NO_EVENT <= event < len(self._manifest.event_texts):
            raise ValueError(f"event id {event} outside [-1, {len(self._manifest.event_texts)})")
        for name, value in (("frames", frame), ("actions", action), ("events", event),
                            ("rewards", reward), ("terminated", terminated),
                            ("episode", self._episode)):
            self._buffer[name].append(value)
        self._episode_has_frames = True
        if terminated:
            self.end_episode()
        if len(self._buffer["frames"]) >= self.shard_frames:
            self.flush()

    def end_episode(self) -> None:
        """The next added frame starts a new episode (call on truncation; termination does it)."""
        if self._episode_has_frames:
            self._episode += 1
            self._episode_has_frames = False

    def flush(self) -> None:
        """Write the buffered steps as one shard and commit it to the manifest."""
        self._check_open()
        if not self._buffer["frames"]:
            return
        arrays = ShardArrays(
            frames=np.stack(self._buffer["frames"]),
            actions=np.asarray(self._buffer["actions"], dtype=np.int64),
            events=np.asarray(self._buffer["events"], dtype=np.int32),
            rewards=np.asarray(self._buffer["rewards"], dtype=np.float32),
            terminated=np.asarray(self._buffer["terminated"], dtype=np.bool_),
            episode=np.asarray(self._buffer["episode"], dtype=np.int64),
        )
        record = write_shard(self.path, self._next_index, arrays, self._manifest.layout,
                             compress=self.compress)
        self._manifest = self._manifest.with_shard(record)
        save_manifest(self.path, self._manifest)
        self._next_index += 1
        for values in self._buffer.values():
            values.clear()

    def close(self, complete: bool = True) -> None:
        if self._closed:
            return
        self.flush()
        self._manifest = replace(self._manifest, complete=complete)
        save_manifest(self.path, self._manifest)
        self._closed = True

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        # Keep what was recorded before an error, but do not claim the dataset is complete.
        self.close(complete=exc_type is None)

    def _open(self, wanted: Manifest, append: bool) -> Manifest:
        if (self.path / MANIFEST_NAME).exists():
            if not append:
                raise DatasetError(
                    f"{self.path} already holds a dataset; choose a new folder or append to it"
                )
            existing = load_manifest(self.path)
            _check_same_layout(existing, wanted, self.path)
            remove_stale_temp_files(self.path)
            manifest = replace(existing, complete=False)
        else:
            if self.path.exists() and any(self.path.iterdir()):
                raise DatasetError(f"{self.path} exists and is not empty; choose a new folder")
            self.path.mkdir(parents=True, exist_ok=True)
            manifest = wanted
        save_manifest(self.path, manifest)
        return manifest

    def _checked_frame(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != self._manifest.frame_shape:
            raise ValueError(
                f"frame must be uint8 {self._manifest.frame_shape}, got {frame.dtype} {frame.shape}"
            )
        return frame.copy()  # the caller may reuse its buffer

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"DatasetWriter for {self.path} is closed")


def _checked_scalar(name: str, value: Any, kinds: str, what: str) -> np.ndarray:
    """`value` as a 0-d array whose dtype kind is one of `kinds` ("b" bool, "i"/"u" int, "f" float).

    Python and numpy scalars (and 0-d arrays) pass; a bool is not an int here, nor text a number.
    """
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in kinds:
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    return array


def _check_same_layout(existing: Manifest, wanted: Manifest, path: Path) -> None:
    for key in ("world", "frame_shape", "num_actions", "event_texts"):
        if getattr(existing, key) != getattr(wanted, key):
            raise DatasetError(
                f"{path}: cannot append, its {key} is {getattr(existing, key)!r} "
                f"but the writer has {getattr(wanted, key)!r}"
            )
