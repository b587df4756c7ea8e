"""The event-branch test's pure parts: the pixel effect of a switch and its summary by group."""
import numpy as np
import pytest

from worldsim.eval.event_branch import pixel_effect, summarise_effects


def test_pixel_effect_is_the_mean_absolute_difference_per_frame():
    first = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    second = first.copy()
    second[0] = 255  # every pixel of frame 0 changes fully
    second[1, :2] = 10  # half of frame 1 changes by 10 grey levels
    assert pixel_effect(first, second).tolist() == [255.0, 5.0]
    assert pixel_effect(second, first).tolist() == [255.0, 5.0]  # no uint8 wrap-around either way


def test_pixel_effect_refuses_frames_of_different_shapes():
    with pytest.raises(ValueError, match="one shape"):
        pixel_effect(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 4, 5, 3), np.uint8))


def test_summary_is_a_ratio_of_sums_overall_and_per_group():
    world = np.array([10.0, 20.0, 0.0, 1.0])
    truth = np.array([10.0, 20.0, 8.0, 12.0])
    found = summarise_effects(world, truth, ["time", "time", "coins", "coins"], seed=0)
    assert found["switches"] == 4
    assert found["effect_ratio"] == pytest.approx(31 / 50)
    assert found["world_effect_grey_levels"] == pytest.approx(31 / 4)
    assert found["truth_effect_grey_levels"] == pytest.approx(50 / 4)
    low, high = found["effect_ratio_ci95"]
    assert low <= found["effect_ratio"] <= high
    assert found["by_group"]["time"]["effect_ratio"] == pytest.approx(1.0)
    assert found["by_group"]["coins"]["effect_ratio"] == pytest.approx(1 / 20)
    assert found["by_group"]["coins"]["switches"] == 2
    assert list(found["by_group"]) == ["time", "coins"]  # in the order the groups first appear


def test_summary_needs_one_group_per_rollout():
    with pytest.raises(ValueError, match="one group per rollout"):
        summarise_effects(np.ones(3), np.ones(3), ["time", "coins"], seed=0)
