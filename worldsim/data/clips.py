"""Training clips: batches of F consecutive frames that never cross an episode boundary."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Iterator

import numpy as np

from worldsim.data.format import EXTRA_DTYPES, DatasetError, ShardArrays

if TYPE_CHECKING:
    from worldsim.data.reader import Dataset

# Frames kept in memory by a sampler when the caller sets no limit.
DEFAULT_CACHE_BYTES = 1 << 30

# Step labels every shard has, derived from its arrays: step i leads from frame i to frame i+1.
DERIVED_LABELS = {
    "event_switch": lambda shard: np.append(shard.events[1:] != shard.events[:-1], False),
}


@dataclass
class Clip:
    """A batch of clips. `actions[:, f]` is the action taken after frame f."""

    frames: np.ndarray  # uint8 [B, F, H, W, 3]
    actions: np.ndarray  # int64 [B, F]
    events: np.ndarray  # int64 [B, F], -1 = no event
    rewards: np.ndarray  # float32 [B, F]
    terminated: np.ndarray  # bool [B, F]

    def take(self, rows: np.ndarray) -> "Clip":
        """The clips at `rows` (indices into the batch)."""
        return Clip(**{field.name: getattr(self, field.name)[rows] for field in fields(self)})


def clip_starts(episode: np.ndarray, num_frames: int) -> np.ndarray:
    """Indices i such that frames i .. i+num_frames-1 all belong to one episode.

    Episode ids in a shard are non-decreasing, so equal ids at both ends imply one episode.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    count = len(episode) - num_frames + 1
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(episode[num_frames - 1:] == episode[:count]).astype(np.int64)


def clip_weights(shard: ShardArrays, starts: np.ndarray, num_frames: int,
                 label_boost: dict[str, float]) -> np.ndarray:
    """Sampling weight of every clip start: 1 + sum over labels of boost x (steps of the clip
    carrying that label). Steps are the clip's transitions (frames start .. start+F-2: the last
    frame's step leads outside the clip). A shard without a stored label adds nothing for it;
    `DERIVED_LABELS` exist in every shard.
    """
    weights = np.ones(len(starts), dtype=np.float64)
    steps = max(num_frames - 1, 1)
    for name, boost in label_boost.items():
        label = DERIVED_LABELS[name](shard) if name in DERIVED_LABELS else shard.extras.get(name)
        if label is None:
            continue
        # Steps carrying the label in [i, i + steps), for every i, from one cumulative sum.
        cumulative = np.concatenate(([0], np.cumsum(label.astype(np.int64))))
        counts = cumulative[np.minimum(starts + steps, len(label))] - cumulative[starts]
        weights += boost * counts
    return weights


def gather_clips(shards: list[ShardArrays], starts: list[int], num_frames: int) -> Clip:
    """Stack `shards[b]` frames `starts[b] .. starts[b]+num_frames-1` into one batch."""
    windows = [(shard, slice(start, start + num_frames)) for shard, start in zip(shards, starts)]

    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(shard, name)[window] for shard, window in windows])

    return Clip(frames=stack("frames"), actions=stack("actions").astype(np.int64),
                events=stack("events").astype(np.int64), rewards=stack("rewards"),
                terminated=stack("terminated"))


def concatenate_clips(batches: list[Clip]) -> Clip:
    """One batch of every clip of `batches`, in order."""
    return Clip(**{field.name: np.concatenate([getattr(batch, field.name) for batch in batches])
                   for field in fields(Clip)})


class ClipSampler:
    """Endless, seeded iterator of `Clip` batches drawn from the shards in memory.

    Clips are drawn uniformly, or, with `label_boost` (e.g. ``{"blocked": 4.0}``), with weight
    `clip_weights`: rare transitions a world must learn (moves into walls) come up more often.
    Shards stay in memory up to `max_cached_frames`; when the dataset is larger, the oldest
    resident shard is swapped for the next one of a shuffled order every so many batches, chosen
    so that each resident frame is drawn about once before its shard leaves. A clip lies inside
    one shard: an episode that continues into the next shard (long recordings) is sampled as two.
    """

    def __init__(
        self, dataset: "Dataset", num_frames: int, batch_size: int, seed: int = 0,
        max_cached_frames: int | None = None, label_boost: dict[str, float] | None = None,
    ) -> None:
        if num_frames < 1 or batch_size < 1:
            raise ValueError(f"num_frames and batch_size must be >= 1, got {num_frames}, {batch_size}")
        self.label_boost = check_label_boost(label_boost or {})
        if dataset.num_shards == 0:
            raise DatasetError(f"{dataset.path}: the dataset has no shards yet")
        self.dataset, self.num_frames, self.batch_size = dataset, num_frames, batch_size
        self._rng = np.random.default_rng(seed)
        frame_bytes = int(np.prod(dataset.frame_shape))
        self._budget = max_cached_frames or DEFAULT_CACHE_BYTES // frame_bytes
        # position -> (shard, its clip starts, their cumulative sampling weights)
        self._resident: OrderedDict[int, tuple[ShardArrays, np.ndarray, np.ndarray]] = OrderedDict()
        self._order: list[int] = []
        self._fill()
        mean_shard = len(dataset) / dataset.num_shards
        self._swap_every = max(1, round(mean_shard / (batch_size * num_frames)))
        self._batches = 0

    def __iter__(self) -> Iterator[Clip]:
        return self

    def __next__(self) -> Clip:
        shards, starts = self._draw()
        return gather_clips(shards, starts, self.num_frames)

    def skip(self, num_batches: int) -> None:
        """Advance as if `num_batches` batches were drawn, without copying their frames
        (resuming a training run at the same point of the stream)."""
        for _ in range(num_batches):
            self._draw()

    def _draw(self) -> tuple[list[ShardArrays], list[int]]:
        """The shard and start frame of every clip of the next batch."""
        if self._batches and self._batches % self._swap_every == 0:
            self._swap()
            self._ensure_starts()
        self._batches += 1
        positions = list(self._resident)
        totals = np.array([self._resident[p][2][-1] if len(self._resident[p][2]) else 0.0 for p in positions])
        ends = np.cumsum(totals)
        picks = self._rng.random(self.batch_size) * ends[-1]
        owners = np.minimum(np.searchsorted(ends, picks, side="right"), len(positions) - 1)
        shards, starts = [], []
        for owner, pick in zip(owners, picks - (ends - totals)[owners]):
            shard, shard_starts, cumulative = self._resident[positions[owner]]
            index = min(int(np.searchsorted(cumulative, pick, side="right")), len(shard_starts) - 1)
            shards.append(shard)
            starts.append(int(shard_starts[index]))
        return shards, starts

    def _fill(self) -> None:
        """Load shards until the memory budget is used (always at least one)."""
        while len(self._resident) < self.dataset.num_shards:
            if self._resident and self._resident_frames() + self._next_size() > self._budget:
                break
            self._load_next()
        self._ensure_starts()

    def _ensure_starts(self) -> None:
        """Swap shards until some resident episode is long enough for a clip."""
        for _ in range(self.dataset.num_shards):
            if self._num_starts() > 0:
                return
            self._swap()
        if self._num_starts() == 0:
            raise DatasetError(f"{self.dataset.path}: no episode is {self.num_frames} frames long")

    def _swap(self) -> None:
        if len(self._resident) == self.dataset.num_shards:
            return  # everything is in memory already
        self._resident.popitem(last=False)
        self._load_next()

    def _load_next(self) -> None:
        if not self._order:
            resident = set(self._resident)
            order = self._rng.permutation(self.dataset.num_shards).tolist()
            self._order = [p for p in order if p not in resident]
        position = self._order.pop()
        shard = self.dataset.load_shard(position)
        starts = clip_starts(shard.episode, self.num_frames)
        weights = clip_weights(shard, starts, self.num_frames, self.label_boost)
        self._resident[position] = (shard, starts, np.cumsum(weights))

    def _next_size(self) -> int:
        if not self._order:
            return max(shard.frames for shard in self.dataset.shards)
        return self.dataset.shards[self._order[-1]].frames

    def _resident_frames(self) -> int:
        return sum(len(shard) for shard, _, _ in self._resident.values())

    def _num_starts(self) -> int:
        return sum(len(starts) for _, starts, _ in self._resident.values())


def check_label_boost(label_boost: dict[str, float]) -> dict[str, float]:
    """`label_boost` if every key is a known step label and every boost a number >= 0."""
    known = (*EXTRA_DTYPES, *DERIVED_LABELS)
    for name, boost in label_boost.items():
        if name not in known:
            raise ValueError(f"label_boost: unknown label {name!r}; labels: {', '.join(known)}")
        if isinstance(boost, bool) or not isinstance(boost, (int, float)) or not boost >= 0:
            raise ValueError(f"label_boost: the boost of {name!r} must be a number >= 0, got {boost!r}")
    return {name: float(boost) for name, boost in label_boost.items()}
