"""Pure evaluation metrics on numpy arrays (no torch, no I/O).

Conventions: frames are `uint8` (or float) arrays `[..., H, W, 3]` with values in `[0, data_range]`;
per-frame metrics reduce over the last three axes and keep every leading axis, so a batch of
rollouts `[N, T, H, W, 3]` gives a `[N, T]` table. Time is always the last leading axis of a trace
(`[N, T]`), rollouts the first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A perfect reconstruction has infinite PSNR; capping keeps means and JSON finite.
PSNR_CAP_DB = 100.0


def _check_same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")


def _check_frames(frames: np.ndarray, what: str) -> None:
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"{what}: expected frames [..., H, W, 3], got shape {frames.shape}")


def psnr(generated: np.ndarray, truth: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per frame, `10·log10(range² / MSE)`, capped at PSNR_CAP_DB."""
    _check_same_shape(generated, truth, "psnr")
    _check_frames(truth, "psnr")
    error = generated.astype(np.float64) - truth.astype(np.float64)
    mse = np.mean(error**2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(data_range**2 / mse)
    return np.minimum(db, PSNR_CAP_DB)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian, the separable SSIM window of Wang et al. (2004)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    weights = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return weights / weights.sum()


def _filter_valid(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of `[..., H, W, C]` over H and W with a 1-D window."""
    rows = np.lib.stride_tricks.sliding_window_view(images, len(window), axis=-3)
    images = np.tensordot(rows, window, axes=([-1], [0]))
    cols = np.lib.stride_tricks.sliding_window_view(images, len(window), axis=-2)
    return np.tensordot(cols, window, axes=([-1], [0]))


def ssim(
    generated: np.ndarray,
    truth: np.ndarray,
    data_range: float = 255.0,
    window: np.ndarray | None = None,
) -> np.ndarray:
    """Structural similarity per frame (Gaussian 11×11, σ=1.5, K1=0.01, K2=0.03), mean over channels.

    Statistics are computed in 'valid' windows only, so borders are never padded.
    """
    return np.mean(ssim_map(generated, truth, data_range, window), axis=(-3, -2, -1))


def ssim_map(
    generated: np.ndarray,
    truth: np.ndarray,
    data_range: float = 255.0,
    window: np.ndarray | None = None,
) -> np.ndarray:
    """Local SSIM of every 'valid' window: `[..., H, W, 3]` → `[..., H - w + 1, W - w + 1, 3]`."""
    _check_same_shape(generated, truth, "ssim")
    _check_frames(truth, "ssim")
    window = gaussian_window() if window is None else window
    if min(truth.shape[-3:-1]) < len(window):
        raise ValueError(f"ssim: frames {truth.shape[-3:-1]} smaller than the {len(window)}-px window")
    x = generated.astype(np.float64)
    y = truth.astype(np.float64)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, window), _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    return luminance * structure


def _check_mask(mask: np.ndarray, frames: np.ndarray, what: str) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != frames.shape[:-1]:
        raise ValueError(f"{what}: mask {mask.shape} must match the frames' pixels {frames.shape[:-1]}")
    return mask


def masked_psnr(generated: np.ndarray, truth: np.ndarray, mask: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """PSNR per frame over the pixels where `mask` `[..., H, W]` is true (NaN for an empty mask)."""
    _check_same_shape(generated, truth, "masked_psnr")
    _check_frames(truth, "masked_psnr")
    mask = _check_mask(mask, truth, "masked_psnr")
    error = (generated.astype(np.float64) - truth.astype(np.float64)) ** 2
    pixels = mask.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        mse = np.sum(error.mean(axis=-1) * mask, axis=(-2, -1)) / pixels
        db = 10.0 * np.log10(data_range**2 / mse)
    return np.where(pixels > 0, np.minimum(db, PSNR_CAP_DB), np.nan)


def masked_ssim(generated: np.ndarray, truth: np.ndarray, mask: np.ndarray, data_range: float = 255.0,
                window: np.ndarray | None = None) -> np.ndarray:
    """SSIM per frame averaged over the windows centred on pixels where `mask` is true (NaN if none)."""
    _check_same_shape(generated, truth, "masked_ssim")
    _check_frames(truth, "masked_ssim")
    mask = _check_mask(mask, truth, "masked_ssim")
    window = gaussian_window() if window is None else window
    local = ssim_map(generated, truth, data_range, window).mean(axis=-1)
    half = (len(window) - 1) // 2
    centres = mask[..., half : half + local.shape[-2], half : half + local.shape[-1]]
    count = centres.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, np.sum(local * centres, axis=(-2, -1)) / np.maximum(count, 1), np.nan)


def mean_squared_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared pixel difference per frame (0–255 scale): `[..., H, W, 3]` → `[...]`."""
    _check_same_shape(a, b, "mean_squared_error")
    return np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(-3, -2, -1))


def class_counts(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """How many entries of each of `classes` every `[..., h, w]` label map holds → `[..., len(classes)]`."""
    labels = np.asarray(labels)
    return np.stack([np.sum(labels == c, axis=(-2, -1)) for c in classes], axis=-1)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean `[D]` and (unbiased) covariance `[D, D]` of features `[N, D]`, N ≥ 2."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature_statistics: need features [N>=2, D], got shape {features.shape}")
    features = features.astype(np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], -1)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def _covariance_factor(cov: np.ndarray) -> np.ndarray:
    """F with F Fᵀ = cov: Cholesky where cov is positive definite (about 1/15 of the cost of an
    eigendecomposition), else the symmetric square root (rank-deficient sets of features)."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return _psd_sqrt(cov)


def frechet_distances(mean_ref: np.ndarray, cov_ref: np.ndarray,
                      others: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Squared Fréchet (2-Wasserstein) distances from one Gaussian to each of `others` (mean, cov).

    `‖μr − μ‖² + Tr(Σr + Σ − 2(Σr Σ)^½)`. For any F with F Fᵀ = Σr, the trace of `(Σr Σ)^½` is the
    sum of square roots of the eigenvalues of the symmetric PSD matrix `Fᵀ Σ F` (similar to
    `Σr^½ Σ Σr^½`), which avoids a non-symmetric sqrtm; F is factored once for all `others`.
    """
    factor = _covariance_factor(cov_ref)
    distances = np.empty(len(others))
    for index, (mean, cov) in enumerate(others):
        _check_same_shape(mean_ref, mean, "frechet_distance means")
        _check_same_shape(cov_ref, cov, "frechet_distance covariances")
        middle = factor.T @ cov @ factor
        cross_trace = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)).sum()
        mean_term = float(np.sum((mean_ref - mean) ** 2))
        # Rounding can leave a tiny negative value for identical inputs.
        distances[index] = max(0.0, mean_term + float(np.trace(cov_ref) + np.trace(cov) - 2.0 * cross_trace))
    return distances


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Squared Fréchet distance between two Gaussians (see `frechet_distances`)."""
    return float(frechet_distances(mean_a, cov_a, [(mean_b, cov_b)])[0])


def frechet_distance_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets `[N, D]`."""
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def slope(values: np.ndarray, positions: np.ndarray | None = None) -> float:
    """Least-squares slope of `values` over `positions` (default 0, 1, 2, ...). Flat series → 0."""
    values = np.asarray(values, dtype=np.float64)
    positions = np.arange(len(values), dtype=np.float64) if positions is None else positions
    positions = np.asarray(positions, dtype=np.float64)
    _check_same_shape(values, positions, "slope")
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"slope: need a 1-D series of at least 2 values, got shape {values.shape}")
    centred = positions - positions.mean()
    return float(np.sum(centred * (values - values.mean())) / np.sum(centred**2))


def windows(length: int, window: int) -> list[slice]:
    """Consecutive, non-overlapping slices of `window` frames covering `range(length)`; a short tail is dropped."""
    if window < 1:
        raise ValueError(f"windows: window must be >= 1, got {window}")
    return [slice(start, start + window) for start in range(0, length - window + 1, window)]


def class_histogram(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of each class among all entries of an integer label array → `[num_classes]`, sums to 1."""
    counts = np.bincount(np.asarray(labels).ravel().astype(np.int64), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"class_histogram: label {len(counts) - 1} >= num_classes {num_classes}")
    return counts / max(1, counts.sum())


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance ½‖p − q‖₁ between two histograms (0 = equal, 1 = disjoint)."""
    _check_same_shape(p, q, "total_variation")
    return float(0.5 * np.abs(p - q).sum())


def tile_agreement(predicted_tiles: np.ndarray, true_tiles: np.ndarray) -> np.ndarray:
    """Share of tiles whose class matches, per frame: `[..., h, w]` → `[...]`."""
    _check_same_shape(predicted_tiles, true_tiles, "tile_agreement")
    return np.mean(predicted_tiles == true_tiles, axis=(-2, -1))


def near_marked(marked: np.ndarray, margin: int) -> np.ndarray:
    """bool `[..., h, w]`: the entries within `margin` cells (either axis, diagonals included) of a
    true entry of `marked` (bool `[..., h, w]`), the marked ones too; `margin` 0 gives `marked`.
    A square neighbourhood is a row dilation of a column dilation."""
    if margin < 0:
        raise ValueError(f"near_marked: margin must be >= 0, got {margin}")
    marked = np.asarray(marked, dtype=bool)
    return dilate_along(dilate_along(marked, margin, axis=-1), margin, axis=-2)


def masked_accuracy(predicted: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Share of `predicted == truth` over the entries where `mask` is true (NaN if none)."""
    _check_same_shape(predicted, truth, "masked_accuracy")
    correct = np.asarray(predicted == truth)
    mask = np.ones_like(correct, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    _check_same_shape(correct, mask, "masked_accuracy mask")
    return float(correct[mask].mean()) if mask.any() else float("nan")


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float  # NaN when nothing was predicted
    recall: float  # NaN when nothing happened
    true_positives: int
    predicted: int
    actual: int


def dilate_along(flags: np.ndarray, tolerance: int, axis: int = -1) -> np.ndarray:
    """True where `flags` is true at any index within ±tolerance along `axis` (the others fixed)."""
    moved = np.moveaxis(flags, axis, -1)
    dilated = moved.copy()
    for shift in range(1, tolerance + 1):
        dilated[..., shift:] |= moved[..., :-shift]
        dilated[..., :-shift] |= moved[..., shift:]
    return np.moveaxis(dilated, -1, axis)


def precision_recall(predicted: np.ndarray, actual: np.ndarray, tolerance: int = 0) -> PrecisionRecall:
    """Precision and recall of binary per-frame detections `[..., T]`.

    With `tolerance` k, a predicted positive counts as correct when an actual positive lies within ±k
    frames in the same row, and an actual positive counts as found when a prediction lies within ±k.
    Generated rollouts may be a frame early or late, which an exact match would punish twice.
    """
    predicted = np.asarray(predicted, dtype=bool)
    actual = np.asarray(actual, dtype=bool)
    _check_same_shape(predicted, actual, "precision_recall")
    correct_predictions = int((predicted & dilate_along(actual, tolerance)).sum())
    found_actual = int((actual & dilate_along(predicted, tolerance)).sum())
    num_predicted, num_actual = int(predicted.sum()), int(actual.sum())
    return PrecisionRecall(
        precision=correct_predictions / num_predicted if num_predicted else float("nan"),
        recall=found_actual / num_actual if num_actual else float("nan"),
        true_positives=correct_predictions,
        predicted=num_predicted,
        actual=num_actual,
    )


def switch_latencies(
    predicted: np.ndarray, targets: np.ndarray, switch_frames: np.ndarray, hold: int = 1
) -> np.ndarray:
    """Frames from each switch until a classifier first recognises the new event.

    predicted: per-frame class predictions `[N, T]` (one event group); targets: the class switched to
    `[N]`; switch_frames: the first frame generated under the new event `[N]`. Recognised means
    `hold` consecutive frames predicted as the target (so a one-frame flicker does not count).
    Returns `[N]` int latencies, the offset of the first such run's start; -1 if never recognised.
    """
    predicted = np.asarray(predicted)
    if predicted.ndim != 2:
        raise ValueError(f"switch_latencies: predicted must be [N, T], got shape {predicted.shape}")
    targets, switch_frames = np.asarray(targets), np.asarray(switch_frames)
    if targets.shape != (len(predicted),) or switch_frames.shape != (len(predicted),):
        raise ValueError("switch_latencies: targets and switch_frames must be [N] with N = len(predicted)")
    latencies = np.full(len(predicted), -1, dtype=np.int64)
    for row, (target, start) in enumerate(zip(targets, switch_frames)):
        hits = predicted[row, start:] == target
        runs = np.convolve(hits.astype(np.int64), np.ones(hold, dtype=np.int64), mode="valid")
        found = np.flatnonzero(runs == hold)
        if len(found):
            latencies[row] = found[0]
    return latencies


@dataclass(frozen=True)
class Reactivity:
    recognised_share: float  # share of switches recognised within `within` frames
    mean_latency: float  # mean latency (frames) over the switches recognised within `within`; NaN if none
    within: int


def reactivity(latencies: np.ndarray, within: int) -> Reactivity:
    """Summarise `switch_latencies` output: share recognised within `within` frames and their mean latency."""
    latencies = np.asarray(latencies)
    if latencies.size == 0:
        raise ValueError("reactivity: no switches to summarise")
    in_time = (latencies >= 0) & (latencies <= within)
    mean_latency = float(latencies[in_time].mean()) if in_time.any() else float("nan")
    return Reactivity(recognised_share=float(in_time.mean()), mean_latency=mean_latency, within=within)


def best_accuracy_from_keys(keys: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of the best possible predictor that sees only `keys` (rows of `[N, K]` integers).

    For each distinct key it predicts the most frequent label among the samples with that key.
    Used as a visibility ceiling: e.g. with keys = visible enemy counts, no classifier of frames
    summarised by those counts can beat it.
    """
    keys, labels = np.asarray(keys).reshape(len(labels), -1), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("best_accuracy_from_keys: no samples")
    _, key_ids = np.unique(keys, axis=0, return_inverse=True)
    _, label_ids = np.unique(labels, return_inverse=True)
    counts = np.zeros((key_ids.max() + 1, label_ids.max() + 1), dtype=np.int64)
    np.add.at(counts, (key_ids.ravel(), label_ids.ravel()), 1)
    return float(counts.max(axis=1).sum() / len(labels))


# ------------------------------------------------------------------------------ 95 % intervals
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a share `successes / trials` (NaNs when there are no trials).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 % or 100 %.
    """
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"wilson_interval: need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return float("nan"), float("nan")
    share = successes / trials
    denominator = 1.0 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / denominator
    half = z * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_indices(num_units: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """`int [resamples, num_units]`: unit indices drawn with replacement, one row per resample.

    The draws of `bootstrap_interval`, so statistics computed on the same rows are paired.
    """
    if num_units < 1 or resamples < 1:
        raise ValueError(f"bootstrap_indices: need >= 1 unit and resample, got {num_units} and {resamples}")
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, num_units, num_units) for _ in range(resamples)])


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates; NaN replicates (the
    statistic undefined on that resample) are dropped, NaNs when none is left."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(num_units: int, statistic, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(units)` over independent units (rollouts, contexts).

    `statistic` takes an int array of unit indices (drawn with replacement) and returns a float;
    resamples where it is undefined (NaN) are dropped. Clustered data (frames of one rollout, moves
    from one context) is resampled by whole units, so correlation within a unit widens the interval.
    """
    if num_units < 1:
        return float("nan"), float("nan")
    draws = bootstrap_indices(num_units, resamples, seed)
    return percentile_interval(np.array([statistic(indices) for indices in draws], dtype=np.float64), level)


def ratio_of_sums(numerators: np.ndarray, denominators: np.ndarray) -> float:
    """`Σ numerators / Σ denominators` (NaN when the denominators sum to 0)."""
    total = float(np.sum(denominators))
    return float(np.sum(numerators)) / total if total else float("nan")


def ratio_with_interval(numerators: np.ndarray, denominators: np.ndarray, seed: int = 0) -> tuple[float, list[float]]:
    """A ratio of per-unit sums and its bootstrap 95 % interval over the units: `(value, [low, high])`.

    With denominators of 1 it is the mean over units; with per-unit counts, a weighted mean.
    """
    numerators, denominators = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    _check_same_shape(numerators, denominators, "ratio_with_interval")
    interval = bootstrap_interval(len(numerators), lambda idx: ratio_of_sums(numerators[idx], denominators[idx]),
                                  seed=seed)
    return ratio_of_sums(numerators, denominators), list(interval)


def ratio_difference_with_interval(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
                                   seed: int = 0) -> tuple[float, list[float]]:
    """`ratio(first) − ratio(second)` of paired per-unit (numerators, denominators), with a bootstrap
    95 % interval that resamples the shared units together (both ratios come from the same rollouts,
    so what the units have in common cancels instead of widening the interval)."""
    arrays = [np.asarray(a, np.float64) for a in (*first, *second)]
    for array in arrays[1:]:
        _check_same_shape(arrays[0], array, "ratio_difference_with_interval")
    first_num, first_den, second_num, second_den = arrays

    def difference(idx: np.ndarray) -> float:
        return ratio_of_sums(first_num[idx], first_den[idx]) - ratio_of_sums(second_num[idx], second_den[idx])

    interval = bootstrap_interval(len(first_num), difference, seed=seed)
    return difference(np.arange(len(first_num))), list(interval)


def share_with_interval(hits: np.ndarray) -> tuple[float, list[float], int]:
    """Share of true entries in a bool array, its Wilson 95 % interval and the number of trials."""
    hits = np.asarray(hits, dtype=bool).ravel()
    share = float(hits.mean()) if hits.size else float("nan")
    return share, list(wilson_interval(int(hits.sum()), int(hits.size))), int(hits.size)
