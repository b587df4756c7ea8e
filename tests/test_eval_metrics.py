"""Unit tests of the pure evaluation metrics against hand-computed values."""
import math

import numpy as np
import pytest

from worldsim.eval import metrics


def _frames(value, shape=(16, 16, 3)):
    return np.full(shape, value, dtype=np.uint8)


def test_psnr_matches_hand_computed_value():
    truth = _frames(100)
    generated = truth.copy()
    generated[0, 0, 0] = 110  # one channel of one pixel off by 10 → MSE = 100 / 768
    expected = 10 * math.log10(255**2 / (100 / 768))
    assert metrics.psnr(generated, truth) == pytest.approx(expected)


def test_psnr_keeps_leading_axes_and_caps_identical_frames():
    truth = np.stack([_frames(0), _frames(0)])[None]  # [1, 2, H, W, 3]
    generated = truth.copy()
    generated[0, 1] += 1  # MSE = 1
    values = metrics.psnr(generated, truth)
    assert values.shape == (1, 2)
    assert values[0, 0] == metrics.PSNR_CAP_DB
    assert values[0, 1] == pytest.approx(20 * math.log10(255))


def test_psnr_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(_frames(0), _frames(0, (16, 8, 3)))


def test_ssim_of_identical_frames_is_one():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    np.testing.assert_allclose(metrics.ssim(frames, frames), 1.0)


def test_ssim_of_constant_frames_matches_closed_form():
    # Constant images have zero variance, so only the luminance term remains.
    a, b = 50.0, 80.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim(_frames(a), _frames(b)) == pytest.approx(expected)


def test_ssim_is_symmetric_and_drops_with_noise():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    noisy = np.clip(truth + rng.normal(0, 40, truth.shape), 0, 255).astype(np.uint8)
    assert metrics.ssim(noisy, truth) == pytest.approx(metrics.ssim(truth, noisy))
    assert metrics.ssim(noisy, truth) < 0.9


def test_ssim_with_a_one_pixel_window_matches_pixelwise_formula():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (12, 12, 3)).astype(np.float64)
    y = rng.integers(0, 256, (12, 12, 3)).astype(np.float64)
    c1 = (0.01 * 255) ** 2
    # A 1-px window: mean = pixel, variance = covariance = 0 → the luminance term per pixel.
    expected = np.mean((2 * x * y + c1) / (x * x + y * y + c1))
    assert metrics.ssim(x, y, window=np.ones(1)) == pytest.approx(expected)


def test_frechet_distance_of_identical_sets_is_zero():
    features = np.random.default_rng(3).normal(size=(500, 6))
    assert metrics.frechet_distance_features(features, features) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_gaussians_matches_closed_form():
    mean_a, mean_b = np.zeros(3), np.array([1.0, 2.0, -2.0])
    cov_a = np.diag([1.0, 4.0, 9.0])
    cov_b = np.diag([4.0, 1.0, 9.0])
    # Diagonal covariances: ‖μa−μb‖² + Σ (σa − σb)² = 9 + (1 + 1 + 0).
    assert metrics.frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(11.0)


def test_frechet_distance_of_shifted_samples_is_the_squared_shift():
    features = np.random.default_rng(4).normal(size=(400, 4))
    shift = np.array([0.5, -1.0, 0.0, 2.0])
    distance = metrics.frechet_distance_features(features, features + shift)
    assert distance == pytest.approx(float(shift @ shift), rel=1e-6)


def test_frechet_distance_with_non_commuting_covariances():
    rotation = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    cov_a = np.diag([4.0, 1.0])
    cov_b = rotation @ np.diag([9.0, 0.25]) @ rotation.T
    # Reference: trace of the principal square root of Σa Σb via its eigenvalues.
    cross = np.sum(np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real))
    expected = np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    assert metrics.frechet_distance(np.zeros(2), cov_a, np.zeros(2), cov_b) == pytest.approx(expected)


def test_slope_of_flat_and_linear_series():
    assert metrics.slope(np.full(10, 3.0)) == pytest.approx(0.0)
    assert metrics.slope(2.5 * np.arange(7) + 1) == pytest.approx(2.5)
    assert metrics.slope(np.array([0.0, 10.0]), positions=np.array([0.0, 100.0])) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least 2"):
        metrics.slope(np.array([1.0]))


def test_windows_drop_the_short_tail():
    assert metrics.windows(250, 100) == [slice(0, 100), slice(100, 200)]
    assert metrics.windows(50, 100) == []


def test_class_histogram_and_total_variation():
    histogram = metrics.class_histogram(np.array([[0, 0], [2, 3]]), num_classes=4)
    np.testing.assert_allclose(histogram, [0.5, 0.0, 0.25, 0.25])
    assert metrics.total_variation(histogram, histogram) == 0.0
    assert metrics.total_variation(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == 1.0
    with pytest.raises(ValueError, match="num_classes"):
        metrics.class_histogram(np.array([5]), num_classes=4)


def test_tile_agreement_per_frame():
    truth = np.zeros((2, 4, 4), dtype=np.uint8)
    predicted = truth.copy()
    predicted[1, 0, :2] = 1
    np.testing.assert_allclose(metrics.tile_agreement(predicted, truth), [1.0, 14 / 16])


def test_masked_accuracy():
    predicted, truth = np.array([1, 2, 3, 4]), np.array([1, 0, 3, 0])
    assert metrics.masked_accuracy(predicted, truth) == 0.5
    assert metrics.masked_accuracy(predicted, truth, mask=np.array([1, 0, 1, 0])) == 1.0
    assert math.isnan(metrics.masked_accuracy(predicted, truth, mask=np.zeros(4)))


def test_precision_recall_exact_and_with_tolerance():
    actual = np.array([[0, 1, 0, 0, 0, 0, 1, 0]], dtype=bool)
    predicted = np.array([[0, 1, 0, 0, 1, 0, 0, 1]], dtype=bool)
    exact = metrics.precision_recall(predicted, actual)
    assert (exact.precision, exact.recall) == (pytest.approx(1 / 3), 0.5)
    tolerant = metrics.precision_recall(predicted, actual, tolerance=1)
    assert (tolerant.precision, tolerant.recall) == (pytest.approx(2 / 3), 1.0)
    nothing = metrics.precision_recall(np.zeros(3, bool), np.zeros(3, bool))
    assert math.isnan(nothing.precision) and math.isnan(nothing.recall)


def test_switch_latencies_on_synthetic_classifier_traces():
    # Event 2 switched on at frame 3 in every row.
    predicted = np.array(
        [
            [0, 0, 0, 2, 2, 2, 2, 2],  # immediate
            [0, 0, 0, 0, 0, 2, 2, 2],  # two frames late
            [0, 0, 0, 0, 2, 0, 2, 2],  # flicker at 4, stable from 6
            [2, 2, 0, 0, 0, 0, 0, 0],  # only before the switch: never
        ]
    )
    targets, switches = np.full(4, 2), np.full(4, 3)
    np.testing.assert_array_equal(metrics.switch_latencies(predicted, targets, switches), [0, 2, 1, -1])
    np.testing.assert_array_equal(
        metrics.switch_latencies(predicted, targets, switches, hold=2), [0, 2, 3, -1]
    )


def test_reactivity_summary():
    summary = metrics.reactivity(np.array([0, 2, 5, -1]), within=3)
    assert summary.recognised_share == 0.5
    assert summary.mean_latency == 1.0
    assert math.isnan(metrics.reactivity(np.array([-1]), within=3).mean_latency)


def test_best_accuracy_from_keys_picks_the_majority_label_per_key():
    keys = np.array([[0], [0], [0], [1], [1], [2]])
    labels = np.array([5, 5, 6, 7, 8, 9])
    # key 0: 2 of 3 right; key 1: 1 of 2; key 2: 1 of 1.
    assert metrics.best_accuracy_from_keys(keys, labels) == pytest.approx(4 / 6)
    assert metrics.best_accuracy_from_keys(np.arange(6), labels) == 1.0
