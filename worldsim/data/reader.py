"""`Dataset`: a validated, read-only view of a dataset folder."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from worldsim.data.format import ShardArrays
from worldsim.data.manifest import Manifest, ShardRecord, load_manifest
from worldsim.data.shards import check_present, read_labels, read_shard

if TYPE_CHECKING:
    from worldsim.data.clips import ClipSampler


class Dataset:
    """Open a dataset folder; any problem raises `DatasetError` naming the file and the fault.

    Opening checks the manifest and that every shard exists with the recorded size. Checksums are
    verified the first time each shard is loaded, or all at once with `verify=True`.
    """

    def __init__(self, path: str | Path, verify: bool = False) -> None:
        self.path = Path(path)
        self._manifest: Manifest = load_manifest(self.path)
        self._verified: set[int] = set()
        for position, record in enumerate(self._manifest.shards):
            if verify:
                self.load_shard(position)
            else:
                check_present(self.path, record)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as a plain dict (version, world, frame_shape, event_texts, shards, ...)."""
        return self._manifest.to_dict()

    @property
    def world(self) -> str:
        return self._manifest.world

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self._manifest.frame_shape

    @property
    def num_actions(self) -> int:
        return self._manifest.num_actions

    @property
    def event_texts(self) -> list[str]:
        """Event text table; `events[i] == -1` means no event text at frame i."""
        return list(self._manifest.event_texts)

    @property
    def complete(self) -> bool:
        """False while (or if) the writer that made it was interrupted before finishing."""
        return self._manifest.complete

    @property
    def shards(self) -> tuple[ShardRecord, ...]:
        return self._manifest.shards

    @property
    def num_shards(self) -> int:
        return len(self._manifest.shards)

    def __len__(self) -> int:
        return self._manifest.num_frames

    def load_shard(self, position: int) -> ShardArrays:
        """All arrays of the `position`-th shard, checksum verified on its first load."""
        record = self._manifest.shards[position]
        arrays = read_shard(self.path, record, self._manifest.layout,
                            verify=position not in self._verified)
        self._verified.add(position)
        return arrays

    def load_labels(self, position: int) -> dict[str, np.ndarray]:
        """Every array but `frames` of one shard, without reading the frames (not checksummed)."""
        return read_labels(self.path, self._manifest.shards[position], self._manifest.layout)

    def iter_shards(self) -> Iterator[ShardArrays]:
        for position in range(self.num_shards):
            yield self.load_shard(position)

    def clips(
        self, num_frames: int, batch_size: int, seed: int = 0, max_cached_frames: int | None = None,
        label_boost: dict[str, float] | None = None,
    ) -> "ClipSampler":
        """An endless iterator of `Clip` batches of `num_frames` frames inside one episode
        (clips holding a labelled step drawn more often with `label_boost`; see ClipSampler)."""
        from worldsim.data.clips import ClipSampler

        return ClipSampler(self, num_frames, batch_size, seed, max_cached_frames, label_boost)

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, world={self.world!r}, frames={len(self)}, "
                f"shards={self.num_shards})")
