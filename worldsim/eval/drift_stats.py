"""Drift statistics (pure numpy): per-window distances of generated frames to the truth next to the
real floor, their slopes, and 95 % intervals by resampling whole rollouts.

A replay is kept per rollout and window as the probe features of its frames `[R, K, W, D]` and its
tile-class counts `[R, K, C]` (`WindowedStream`). A resample of rollouts is a vector of
multiplicities `weights [R]` (how often each rollout was drawn); a window's pooled Gaussian and tile
histogram under it are exactly those of the drawn rollouts' frames concatenated, so intervals need
no regeneration. Truth, real floor and every model are resampled with the same draws: rollouts are
paired across them (same maps, actions and events), so differences get paired intervals.

Intervals are given for slopes and differences, not for levels: a draw that repeats a rollout has
fewer distinct frames, which raises the Fréchet distance's small-sample bias for every window and
stream of that draw alike, so it largely cancels in a slope or a difference but not in a level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from worldsim.eval import metrics

MEASURES = ("fd", "tile_tv")  # Fréchet distance of probe features; total variation of tile histograms


@dataclass(frozen=True)
class WindowedStream:
    """One replay of R rollouts, window by window."""

    features: np.ndarray  # float32 [R, K, W, D]: probe features of every frame
    tile_counts: np.ndarray  # int64 [R, K, C]: tiles of each class in the window's frames

    def __post_init__(self) -> None:
        if self.features.ndim != 4 or self.tile_counts.ndim != 3:
            raise ValueError(f"WindowedStream: need features [R, K, W, D] and tile counts [R, K, C], got "
                             f"{self.features.shape} and {self.tile_counts.shape}")
        if self.features.shape[:2] != self.tile_counts.shape[:2]:
            raise ValueError(f"WindowedStream: features {self.features.shape} and tile counts "
                             f"{self.tile_counts.shape} disagree on rollouts and windows")
        if self.features.shape[2] < 2:
            raise ValueError("WindowedStream: a window needs >= 2 frames (a covariance)")

    @property
    def num_rollouts(self) -> int:
        return self.features.shape[0]

    @property
    def num_windows(self) -> int:
        return self.features.shape[1]

    def window(self, index: int) -> "WindowedStream":
        """Window `index` alone (K = 1)."""
        return WindowedStream(self.features[:, index : index + 1], self.tile_counts[:, index : index + 1])


@dataclass(frozen=True)
class _Moments:
    """One window of one stream, per rollout, as sums that any weighting of rollouts recombines."""

    frames: int  # W, frames per rollout
    shift: np.ndarray  # [D] the window's mean, subtracted so the sums stay well conditioned
    sums: np.ndarray  # [R, D] Σ (x − shift)
    scatters: np.ndarray  # [R, D, D] Σ (x − shift)(x − shift)ᵀ
    tile_counts: np.ndarray  # [R, C]

    @classmethod
    def of(cls, stream: WindowedStream, window: int) -> "_Moments":
        features = stream.features[:, window].astype(np.float64)
        shift = features.mean(axis=(0, 1))
        centred = features - shift
        return cls(features.shape[1], shift, centred.sum(axis=1), centred.transpose(0, 2, 1) @ centred,
                   stream.tile_counts[:, window].astype(np.float64))

    def gaussian(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance of the frames of rollout r repeated weights[r] times."""
        count = weights.sum() * self.frames
        centred_mean = weights @ self.sums / count
        scatter = np.tensordot(weights, self.scatters, axes=1)
        return centred_mean + self.shift, (scatter - count * np.outer(centred_mean, centred_mean)) / (count - 1)

    def histogram(self, weights: np.ndarray) -> np.ndarray:
        counts = weights @ self.tile_counts
        return counts / max(1.0, counts.sum())


def _check_paired(reference: WindowedStream, others: list[WindowedStream], weights: np.ndarray) -> None:
    for other in others:
        if other.features.shape[:2] != reference.features.shape[:2] or other.features.shape[3] != \
                reference.features.shape[3] or other.tile_counts.shape[2] != reference.tile_counts.shape[2]:
            raise ValueError(f"drift distances: streams must share rollouts, windows and sizes, got "
                             f"{other.features.shape} vs the reference's {reference.features.shape}")
    if weights.ndim != 2 or weights.shape[1] != reference.num_rollouts or (weights.sum(axis=1) < 1).any():
        raise ValueError(f"drift distances: weights must be [B, {reference.num_rollouts}] with a rollout in every row")


def distance_tables(reference: WindowedStream, others: list[WindowedStream],
                    weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of rollout `weights [B, R]`, window and other stream, its distance to `reference`:
    `{"fd": [B, M, K], "tile_tv": [B, M, K]}` (M = len(others)). Weights of ones give the plain
    pooled distances; bootstrap multiplicities give the replicates.

    Windows are the outer loop, so only one window's moments are ever held.
    """
    weights = np.asarray(weights, dtype=np.float64)
    _check_paired(reference, others, weights)
    shape = (len(weights), len(others), reference.num_windows)
    tables = {"fd": np.empty(shape), "tile_tv": np.empty(shape)}
    for window in range(reference.num_windows):
        truth = _Moments.of(reference, window)
        streams = [_Moments.of(other, window) for other in others]
        for row, draw in enumerate(weights):
            tables["fd"][row, :, window] = metrics.frechet_distances(
                *truth.gaussian(draw), [stream.gaussian(draw) for stream in streams])
            truth_histogram = truth.histogram(draw)
            tables["tile_tv"][row, :, window] = [metrics.total_variation(stream.histogram(draw), truth_histogram)
                                                 for stream in streams]
    return tables


def rollout_weights(num_rollouts: int, resamples: int, seed: int) -> np.ndarray:
    """`[1 + resamples, R]`: a row of ones (the estimate itself), then bootstrap multiplicities."""
    draws = metrics.bootstrap_indices(num_rollouts, resamples, seed)
    multiplicities = np.stack([np.bincount(row, minlength=num_rollouts) for row in draws])
    return np.concatenate([np.ones((1, num_rollouts), dtype=np.int64), multiplicities])


def slope_or_nan(series: np.ndarray) -> float:
    """Least-squares slope per window; NaN for a single window."""
    return metrics.slope(series) if len(series) > 1 else float("nan")


def series_and_slopes(model: dict[str, np.ndarray], floor: dict[str, np.ndarray]) -> dict[str, object]:
    """The suite's drift keys from per-window distances `{measure: [K]}` of the model and the floor."""
    found: dict[str, object] = {}
    for measure in MEASURES:
        found[f"{measure}_by_window"] = model[measure].tolist()
        found[f"{measure}_real_floor_by_window"] = floor[measure].tolist()
    for measure in MEASURES:
        found[f"{measure}_slope_per_window"] = slope_or_nan(model[measure])
        found[f"{measure}_real_floor_slope_per_window"] = slope_or_nan(floor[measure])
    return found


# Statistics of a (model, floor) pair of per-window series, each reported with its interval.
Statistic = Callable[[np.ndarray, np.ndarray], float]
FLOOR_CONTRASTS: dict[str, Statistic] = {
    "slope_per_window": lambda model, floor: slope_or_nan(model),
    "real_floor_slope_per_window": lambda model, floor: slope_or_nan(floor),
    "slope_minus_floor": lambda model, floor: slope_or_nan(model) - slope_or_nan(floor),
    "last_window_minus_floor": lambda model, floor: float(model[-1] - floor[-1]),
    "mean_minus_floor": lambda model, floor: float(np.mean(model - floor)),
}
# Statistics of a (first, second) pair of models' series: second minus first on the same rollouts.
PAIRED_CONTRASTS: dict[str, Statistic] = {
    "slope": lambda first, second: slope_or_nan(second) - slope_or_nan(first),
    "mean": lambda first, second: float(np.mean(second - first)),
}


def contains_zero(interval: list[float]) -> bool | None:
    """Whether a `[low, high]` interval holds 0 (None when it is undefined)."""
    low, high = interval
    return None if not (np.isfinite(low) and np.isfinite(high)) else bool(low <= 0.0 <= high)


def with_intervals(statistic: Statistic, first: np.ndarray, second: np.ndarray) -> tuple[float, list[float]]:
    """`statistic` on row 0 of two `[1 + B, K]` tables (the estimate) and its percentile interval over
    rows 1.. (the paired bootstrap replicates)."""
    replicates = np.array([statistic(a, b) for a, b in zip(first[1:], second[1:])])
    return statistic(first[0], second[0]), list(metrics.percentile_interval(replicates))


def floor_contrasts(tables: dict[str, np.ndarray], model: int, floor: int = 0) -> dict[str, object]:
    """Per measure, a model against the real floor (rows of `distance_tables`' other streams), with
    intervals and the verdicts: the model's slope interval holds 0 (no drift), its slope minus the
    floor's holds 0, and the mean over windows of model minus floor holds 0 (indistinguishable from
    the floor)."""
    found: dict[str, object] = {}
    for measure in MEASURES:
        model_table, floor_table = tables[measure][:, model], tables[measure][:, floor]
        for name, statistic in FLOOR_CONTRASTS.items():
            found[f"{measure}_{name}"], found[f"{measure}_{name}_ci95"] = with_intervals(statistic, model_table,
                                                                                        floor_table)
        found[f"{measure}_slope_ci_contains_0"] = contains_zero(found[f"{measure}_slope_per_window_ci95"])
        found[f"{measure}_slope_indistinguishable_from_floor"] = contains_zero(
            found[f"{measure}_slope_minus_floor_ci95"])
        found[f"{measure}_indistinguishable_from_floor"] = contains_zero(found[f"{measure}_mean_minus_floor_ci95"])
    return found


def paired_contrasts(tables: dict[str, np.ndarray], first: int, second: int) -> dict[str, object]:
    """Per measure, model `second` minus model `first` (slope, mean over windows) with paired
    intervals and whether each interval holds 0."""
    found: dict[str, object] = {}
    for measure in MEASURES:
        for name, statistic in PAIRED_CONTRASTS.items():
            key = f"{measure}_{name}_difference"
            found[key], found[f"{key}_ci95"] = with_intervals(statistic, tables[measure][:, first],
                                                              tables[measure][:, second])
            found[f"{key}_ci_contains_0"] = contains_zero(found[f"{key}_ci95"])
    return found
