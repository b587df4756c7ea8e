"""The drift study: bootstrap distances over rollouts, slopes and paired contrasts with known answers,
the rolling sampler's alignment with the truth, the suite's long rollout, and `worldsim eval --drift-study`."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from test_eval_cli import _documented_keys, _has_key, _save_world
from worldsim.cli import main
from worldsim.eval import metrics
from worldsim.eval.drift_stats import (WindowedStream, contains_zero, distance_tables, floor_contrasts,
                                       paired_contrasts, rollout_weights)

ROLLOUTS, WINDOWS, FRAMES, DIMS = 4, 5, 30, 3


def _stream(shift_by_window=None, tiles_by_window=None, seed=0) -> WindowedStream:
    """Standard-normal features (the same draw for every seed-0 stream), shifted per window along
    the first axis; tile counts [100 - n, n] per rollout and window."""
    features = np.random.default_rng(seed).normal(size=(ROLLOUTS, WINDOWS, FRAMES, DIMS))
    if shift_by_window is not None:
        features[..., 0] += np.asarray(shift_by_window)[None, :, None]
    second_class = np.zeros(WINDOWS) if tiles_by_window is None else np.asarray(tiles_by_window)
    counts = np.stack([100 - second_class, second_class], axis=-1)
    return WindowedStream(features.astype(np.float32), np.broadcast_to(counts, (ROLLOUTS, WINDOWS, 2)).astype(np.int64))


def test_weighted_window_distances_equal_those_of_the_repeated_rollouts():
    truth, model = _stream(seed=1), _stream(seed=2)
    weights = np.array([[2, 0, 1, 1]])
    fd = distance_tables(truth, [model], weights)["fd"][0, 0]
    for window in range(WINDOWS):
        drawn = [0, 0, 2, 3]
        expected = metrics.frechet_distance_features(model.features[drawn, window].reshape(-1, DIMS),
                                                     truth.features[drawn, window].reshape(-1, DIMS))
        assert fd[window] == pytest.approx(expected, rel=1e-6)


def test_a_model_identical_to_the_floor_is_indistinguishable_from_it():
    truth, same = _stream(seed=1), _stream(seed=2)
    tables = distance_tables(truth, [same, same], rollout_weights(ROLLOUTS, 200, seed=0))
    found = floor_contrasts(tables, model=1, floor=0)
    for measure in ("fd", "tile_tv"):
        assert found[f"{measure}_mean_minus_floor"] == 0.0
        assert found[f"{measure}_mean_minus_floor_ci95"] == [0.0, 0.0]
        assert found[f"{measure}_last_window_minus_floor_ci95"] == [0.0, 0.0]
        assert found[f"{measure}_indistinguishable_from_floor"] is True
        assert found[f"{measure}_slope_indistinguishable_from_floor"] is True


def test_a_linear_ramp_gives_its_slope_in_every_resample():
    # A shift of sqrt(k) along one axis adds exactly k to the Fréchet distance (same covariance);
    # k % of the tiles moved to the second class adds k / 100 to the total variation.
    windows = np.arange(WINDOWS)
    truth, floor = _stream(), _stream(seed=3)
    model = _stream(shift_by_window=np.sqrt(windows), tiles_by_window=windows)
    tables = distance_tables(truth, [floor, model], rollout_weights(ROLLOUTS, 100, seed=0))
    found = floor_contrasts(tables, model=1, floor=0)
    assert found["fd_slope_per_window"] == pytest.approx(1.0, rel=1e-4)
    assert found["fd_slope_per_window_ci95"] == pytest.approx([1.0, 1.0], rel=1e-4)
    assert found["fd_slope_ci_contains_0"] is False
    assert found["tile_tv_slope_per_window"] == pytest.approx(0.01)
    assert found["tile_tv_slope_per_window_ci95"] == pytest.approx([0.01, 0.01])
    low, high = found["fd_slope_minus_floor_ci95"]
    assert low <= found["fd_slope_minus_floor"] <= high and low > 0  # the floor does not drift


def test_sampler_difference_is_paired_over_the_same_rollouts():
    windows = np.arange(WINDOWS)
    truth = _stream()
    first = _stream(shift_by_window=np.sqrt(windows))
    second = _stream(shift_by_window=np.sqrt(3 * windows))  # FD grows 3 per window instead of 1
    tables = distance_tables(truth, [first, second], rollout_weights(ROLLOUTS, 100, seed=0))
    found = paired_contrasts(tables, first=0, second=1)
    assert found["fd_slope_difference"] == pytest.approx(2.0, rel=1e-4)
    assert found["fd_slope_difference_ci95"] == pytest.approx([2.0, 2.0], rel=1e-4)
    assert found["fd_slope_difference_ci_contains_0"] is False
    assert found["tile_tv_mean_difference"] == 0.0 and found["tile_tv_mean_difference_ci_contains_0"] is True


def test_bootstrap_weights_start_with_the_estimate_and_draw_every_rollout_count():
    weights = rollout_weights(5, 50, seed=7)
    assert weights.shape == (51, 5) and (weights[0] == 1).all() and (weights.sum(axis=1) == 5).all()
    assert (weights == rollout_weights(5, 50, seed=7)).all() and (weights[1:] != 1).any()
    assert contains_zero([float("nan"), 1.0]) is None and contains_zero([-1.0, 2.0]) is True


def test_frechet_distance_to_a_rank_deficient_reference_matches_the_closed_form():
    # Σr = diag(1, 0) has no Cholesky factor: the symmetric square root is used.
    # FD = |Δμ|² + Tr Σr + Tr Σ − 2 Σ sqrt(λ(Σr Σ)) = 1 + 1 + 13 − 2·2 = 11.
    other = (np.array([1.0, 0.0]), np.diag([4.0, 9.0]))
    distances = metrics.frechet_distances(np.zeros(2), np.diag([1.0, 0.0]), [other])
    assert distances == pytest.approx([11.0])


def test_streams_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="share rollouts, windows"):
        distance_tables(_stream(), [WindowedStream(np.zeros((2, WINDOWS, FRAMES, DIMS), np.float32),
                                                   np.zeros((2, WINDOWS, 2), np.int64))], np.ones((1, ROLLOUTS)))
    with pytest.raises(ValueError, match=">= 2 frames"):
        WindowedStream(np.zeros((1, 1, 1, DIMS), np.float32), np.zeros((1, 1, 2), np.int64))


def test_a_restarted_truth_and_its_floor_never_meet_on_one_map():
    from worldsim.eval.replay import restart_seeds

    # The floor plays map seed s + 1; had it died at frame t and the truth (map seed s) at t + 7919,
    # the old linear seeds (s·7919 + t) put both on one map: a floor of exactly 0 from then on.
    seeds = np.array([5, 6])
    assert restart_seeds(seeds[:1], 3 + 7919)[0] != restart_seeds(seeds[1:], 3)[0]
    fresh = np.concatenate([restart_seeds(seeds, t) for t in range(1000)])
    assert len(np.unique(fresh)) == len(fresh) and 0 <= fresh.min() and fresh.max() < 2**31
    assert (restart_seeds(seeds, 42) == restart_seeds(seeds, 42)).all()


def test_rolling_frames_line_up_with_the_actions_that_made_them(tmp_path):
    import worldsim
    from worldsim.eval.replay import generated_steps
    from worldsim.eval.scenarios import drift_scenario

    world = worldsim.load(_save_world(tmp_path / "world"), device="cpu")
    scenario = drift_scenario(np.random.default_rng(0), 2, 6, (3, 4))
    first = np.zeros((2, 64, 64, 3), np.uint8)
    steps = list(generated_steps(world, scenario, first, seed=5, sampler="rolling"))
    assert [step.t for step in steps] == list(range(7))
    sim = world.simulator(batch_size=2, seed=5, sampler="rolling")
    lag = sim.action_latency
    assert lag == world.config.sampling.num_steps - 1 == 1 and world.simulator(1).action_latency == 0
    sim.reset(event=scenario.events_at(0), context=torch.as_tensor(first))
    raw = [sim.step(scenario.actions[:, t - 1], events=scenario.events_at(t))[0].numpy() for t in range(1, 7)]
    for step in steps[1 : 7 - lag]:  # frame t is what the simulator returned lag steps after action t - 1
        assert (step.frames == raw[step.t - 1 + lag]).all()


def test_the_suite_reports_its_long_rollout_under_documented_keys(tmp_path):
    import worldsim
    from worldsim.eval import suite
    from worldsim.eval.probes import Probes
    from worldsim.eval.scenarios import drift_scenario
    from worldsim.eval.suite_config import SUITES

    config = dataclasses.replace(SUITES["tiny"], long_rollout_frames=20)
    with pytest.raises(ValueError, match="long_rollout_frames"):
        dataclasses.replace(config, long_rollout_frames=5)
    run = suite._new_run(worldsim.load(_save_world(tmp_path / "world"), device="cpu"), Probes.load(None), config)
    scripts = [drift_scenario(np.random.default_rng(seed), rollouts, 20, (8, 12))
               for seed, rollouts in ((0, 2), (1, 1))]
    found, curves, (truth_strip, model_strip) = suite._drift(run, *scripts)
    missing = [key for key in _documented_keys("## `drift.long_*`") if not _has_key({"drift": found}, key)]
    assert not missing, f"documented keys missing: {missing}"
    assert found["long_frames"] == 20 and len(found["long_fd_by_window"]) == 2 and found["long_fps"] > 0
    assert found["long_peak_rss_mb_after"] >= found["long_peak_rss_mb_first_window"] > 0
    assert len(found["fd_by_window"]) == 2 == len(truth_strip) == len(model_strip)
    assert curves["fd"] == found["fd_by_window"]


def test_drift_study_cli_compares_both_samplers_on_the_same_rollouts(tmp_path, capsys):
    checkpoint = _save_world(tmp_path / "world", stage="dmd")
    out = tmp_path / "study"
    assert main(["eval", "--drift-study", checkpoint, "--samplers", "frame", "rolling", "--rollouts", "2",
                 "--frames", "20", "--window", "10", "--switch-every", "8", "12", "--long-frames", "20",
                 "--resamples", "100", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    missing = [key for key in _documented_keys("## `summary.json` of a drift study") if not _has_key(summary, key)]
    assert not missing, f"documented keys missing from summary.json: {missing}"
    assert summary["checkpoints"] == {"dmd": checkpoint} and summary["windows"] == 2
    frame, rolling = summary["dmd"]["frame"], summary["dmd"]["rolling"]
    assert frame["action_latency_frames"] == 0 and rolling["action_latency_frames"] == 1
    assert frame["fd_real_floor_by_window"] == rolling["fd_real_floor_by_window"]  # one truth, one floor
    assert frame["fd_by_window"] != rolling["fd_by_window"]
    comparison = summary["dmd"]["rolling_minus_frame"]
    expected = metrics.slope(np.array(rolling["fd_by_window"])) - metrics.slope(np.array(frame["fd_by_window"]))
    assert comparison["fd_slope_difference"] == pytest.approx(expected)
    low, high = frame["fd_slope_minus_floor_ci95"]
    assert low <= high and frame["fd_slope_ci_contains_0"] in (True, False)
    assert frame["long"]["frames"] == 20 and len(frame["long"]["tile_tv_by_window"]) == 2
    assert set(summary["plots"]) == {"drift.png", "filmstrip_0.png"}
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in summary["plots"])
    report = (out / "report.md").read_text()
    assert "| dmd | frame |" in report and "| dmd | rolling |" in report and "rolling − frame" in report
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    (["--frames", "10", "--window", "10"], "must cover two windows"),
    (["--samplers", "frame", "frame"], "distinct names"),
    (["--rollouts", "1"], "rollouts must be >= 2"),
    (["--switch-every", "9", "3"], "LO <= HI"),
])
def test_drift_study_rejects_bad_sizes_before_any_work(tmp_path, capsys, arguments, message):
    out = tmp_path / "study"
    assert main(["eval", "--drift-study", "no-such-world", *arguments, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_drift_options_need_the_drift_study(tmp_path, capsys):
    assert main(["eval", "--checkpoint", "explorer-64", "--frames", "2000", "--out", str(tmp_path / "a")]) == 2
    assert "go with --drift-study" in capsys.readouterr().err
