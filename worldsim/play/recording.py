"""`--record DIR`: the primary world's frames, actions, rewards and events as a standard dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from worldsim.data import NO_EVENT, DatasetWriter

# Play sessions are short and may end abruptly: small shards lose little if the process dies.
PLAY_SHARD_FRAMES = 1024


class SessionRecorder:
    """A `SessionListener` that writes every played step with `DatasetWriter`.

    Row i holds frame i with the action taken from it and that step's reward and termination, so a
    frame is written once the action after it is known. The last frame of an episode has no action
    after it and is not written (a terminated step already closes its episode).

    `event_texts` is the dataset's event table: an event in force is stored under `label(text)`
    (e.g. the canonical text of a paraphrase); a text outside the table is stored as "no event"
    and reported once through `warn`.
    """

    def __init__(self, path: str | Path, *, world: str, frame_shape: Sequence[int], num_actions: int,
                 event_texts: Sequence[str], label: Callable[[str], str] = str,
                 warn: Callable[[str], None] = print, generator: dict[str, Any] | None = None) -> None:
        self.event_texts = list(dict.fromkeys(event_texts))
        self._event_ids = {text: index for index, text in enumerate(self.event_texts)}
        self._label = label
        self._warn = warn
        self._unknown_reported: set[str] = set()
        self._writer = DatasetWriter(path, world=world, frame_shape=frame_shape, num_actions=num_actions,
                                     event_texts=self.event_texts, shard_frames=PLAY_SHARD_FRAMES,
                                     generator={"source": "worldsim play", **(generator or {})})
        self._frame: np.ndarray | None = None
        self._event = ""

    @property
    def num_frames(self) -> int:
        return self._writer.num_frames

    def on_reset(self, frame: np.ndarray, event: str, episode: int) -> None:
        self._writer.end_episode()
        self._frame, self._event = frame, event

    def on_step(self, action: int, frame: np.ndarray, event: str, reward: float, terminated: bool) -> None:
        if self._frame is not None:
            self._writer.add(self._frame, action, reward, terminated, self._event_id(self._event))
        self._frame, self._event = frame, event

    def close(self, complete: bool = True) -> None:
        self._writer.close(complete=complete)

    def _event_id(self, text: str) -> int:
        if not text:
            return NO_EVENT
        label = self._label(text)
        if label in self._event_ids:
            return self._event_ids[label]
        if label not in self._unknown_reported:
            self._unknown_reported.add(label)
            self._warn(f"recording: event {label!r} is not in the dataset's event table; stored as no event")
        return NO_EVENT
