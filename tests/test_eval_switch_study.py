"""The switch study: paired intervals, pooled units, Delta's default rule, and `worldsim eval --switch-study`."""
import json

import numpy as np
import pytest

from test_eval_cli import _documented_keys, _has_key, _save_world
from worldsim.cli import main
from worldsim.eval import metrics
from worldsim.eval.switch_study import choose_delta
from worldsim.eval.switch_units import SwitchUnits


def _units(agreement_switch, agreement_no_switch, recognised=None, frames=10.0) -> SwitchUnits:
    count = len(agreement_switch)
    recognised = np.ones(count, bool) if recognised is None else np.asarray(recognised, bool)
    return SwitchUnits(groups=["time"] * count, recognised=recognised, truth_recognised=np.ones(count, bool),
                       counted=np.full(count, frames),
                       agreement_switch=np.asarray(agreement_switch, float) * frames,
                       agreement_no_switch=np.asarray(agreement_no_switch, float) * frames)


def test_ratio_difference_is_exact_and_its_paired_interval_ignores_what_the_units_share():
    denominators = np.array([4.0, 10.0, 6.0, 2.0])
    second = np.array([0.2, 0.9, 0.5, 0.7]) * denominators  # maps differ a lot between units
    first = second + 0.1 * denominators  # ... but the first is always 0.1 higher on the same unit
    value, (low, high) = metrics.ratio_difference_with_interval((first, denominators), (second, denominators))
    assert value == pytest.approx(0.1)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="shape"):
        metrics.ratio_difference_with_interval((first, denominators), (second[:3], denominators[:3]))


def test_consistency_drop_pools_switches_and_pairs_each_with_its_control():
    seed0 = _units([0.5, 0.7], [0.6, 0.8])
    seed1 = _units([0.9], [0.9])
    pooled = SwitchUnits.concatenate([seed0, seed1])
    assert pooled.switches == 3
    drop, (low, high) = pooled.consistency_drop()
    assert drop == pytest.approx((0.6 + 0.8 + 0.9 - 0.5 - 0.7 - 0.9) / 3)
    assert 0.0 <= low <= drop <= high <= 0.1 + 1e-12  # per switch drops are 0.1, 0.1, 0: inside [0, 0.1]


def test_drop_difference_is_paired_and_needs_the_same_switches():
    stream = _units([0.5, 0.6, 0.7, 0.8], [0.7, 0.8, 0.9, 1.0])  # drops 0.2 everywhere
    delta = _units([0.55, 0.65, 0.75, 0.85], [0.7, 0.8, 0.9, 1.0])  # drops 0.15 everywhere
    difference, interval = delta.drop_difference(stream)
    assert difference == pytest.approx(-0.05)
    assert interval == pytest.approx([-0.05, -0.05])
    with pytest.raises(ValueError, match="same switches"):
        delta.drop_difference(_units([0.5], [0.7]))


def test_units_reject_arrays_of_the_wrong_length():
    with pytest.raises(ValueError, match="one entry per switch"):
        SwitchUnits(["time", "lava"], np.ones(2, bool), np.ones(1, bool), np.ones(2), np.ones(2), np.ones(2))


def test_reactivity_shares_count_switches_recognised_in_time():
    units = _units([0.5] * 4, [0.5] * 4, recognised=[True, True, False, True])
    share, (low, high) = units.reactivity()
    assert share == 0.75 and 0 < low < 0.75 < high <= 1


def test_delta_default_is_the_lowest_drop_that_keeps_streams_reactivity():
    variants = {"stream": {"reactivity": 0.80, "consistency_drop": 0.05},
                "delta-M1-clip": {"reactivity": 0.79, "consistency_drop": 0.04},
                "delta-M2-gauss": {"reactivity": 0.70, "consistency_drop": 0.01},  # loses too much reactivity
                "dmd": {"reactivity": 0.9, "consistency_drop": 0.0}}  # not a delta variant
    assert choose_delta(variants) == "delta-M1-clip"
    variants["delta-M1-clip"]["reactivity"] = 0.5  # now no variant keeps it: all compete
    assert choose_delta(variants) == "delta-M2-gauss"
    assert choose_delta({"stream": variants["stream"]}) is None


def test_switch_study_cli_pools_seeds_and_writes_the_documented_summary(tmp_path, capsys):
    stream = _save_world(tmp_path / "stream", stage="stream")
    delta = _save_world(tmp_path / "delta", stage="delta", variant="M1-clip")
    out = tmp_path / "study"
    assert main(["eval", "--switch-study", stream, delta, "--suite", "tiny", "--seeds", "0", "1",
                 "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    missing = [key for key in _documented_keys("## `summary.json` of a switch study") if not _has_key(summary, key)]
    assert not missing, f"documented keys missing from summary.json: {missing}"
    assert summary["switches"] == 12 and summary["seeds"] == [0, 1]  # tiny: 6 switches per seed
    assert summary["default_delta"] == "delta-M1-clip" and summary["delta"] == summary["delta-M1-clip"]
    # The same weights replayed the same seeds: identical measures, a zero paired difference.
    for key in ("consistency_drop", "reactivity", "known_map_agreement_switch"):
        assert summary["stream"][key] == summary["delta-M1-clip"][key]
    assert summary["delta_minus_stream_drop"] == 0.0
    low, high = summary["stream"]["consistency_drop_ci95"]
    assert low <= summary["stream"]["consistency_drop"] <= high
    report = (out / "report.md").read_text()
    assert "| stream |" in report and "| delta-M1-clip |" in report and "12 switches" in report
    assert "wrote" in capsys.readouterr().out


def test_switch_study_cli_rejects_seeds_without_a_study_and_repeated_seeds(tmp_path, capsys):
    world = _save_world(tmp_path / "world")
    assert main(["eval", "--checkpoint", world, "--seeds", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--seeds goes with --switch-study" in capsys.readouterr().err
    assert main(["eval", "--switch-study", world, "--seeds", "0", "0", "--suite", "tiny", "--device", "cpu",
                 "--out", str(tmp_path / "b")]) == 2
    assert "seeds repeat" in capsys.readouterr().err
    assert not (tmp_path / "b" / "summary.json").exists()


def test_the_known_map_leaves_out_what_the_event_changes_new_tiles_and_diverged_players():
    from worldsim.eval.replay import Trajectory
    from worldsim.eval.suite import _known_map

    def trajectory(tiles, positions):
        count = len(positions)
        return Trajectory(frames=np.zeros((1, count, 1, 1, 3), np.uint8), rewards=np.zeros((1, count), np.float32),
                          terminated=np.zeros((1, count), bool), tiles=np.array([tiles], np.uint8),
                          alive=np.ones((1, count), bool), positions=np.array([positions]))

    control_tiles = np.zeros((4, 3, 3), np.uint8)
    switch_tiles = control_tiles.copy()
    switch_tiles[2:, 0, 0] = 7  # the event paints a tile from frame 2 on
    control_positions = [(0, 0), (0, 0), (1, 0), (1, 0)]  # frame 2 scrolls one column: a new column appears
    switch_positions = [(0, 0), (0, 0), (1, 0), (2, 0)]  # ... and in frame 3 the player went elsewhere
    known = _known_map(trajectory(switch_tiles, switch_positions), trajectory(control_tiles, control_positions),
                       switch_frame=2)[0]
    assert known[0].all() and known[1].all()  # before the switch everything was in view and is untouched
    assert not known[2, 0, 0] and not known[2, :, 2].any()  # painted by the event; the new column
    assert known[2].sum() == 9 - 1 - 3
    assert not known[3].any()  # the two players stand in different places
