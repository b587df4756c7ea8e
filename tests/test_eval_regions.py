"""Known-region masks (checked against the real game), masked metrics, 95 % intervals, memory walks, targets."""
import numpy as np
import pytest

from worldsim.eval import metrics, regions
from worldsim.eval.memory_test import memory_agreement
from worldsim.eval.rollout_measures import (COIN, ENEMY, coin_ledger, enemies_kept_next_frame, rollout_inverse_dynamics,
                                             sprite_placement, step_bands)
from worldsim.eval.targets import check_targets


def test_a_still_player_knows_the_whole_view():
    positions = np.zeros((3, 2), dtype=np.int64)
    assert regions.seen_tiles(positions, 4, 1).all()
    assert regions.always_visible_tiles(positions, 4).all()


def test_a_step_right_reveals_the_rightmost_column_only():
    positions = np.array([[0, 0], [1, 0]])  # frame 1: the player moved one tile right
    known = regions.seen_tiles(positions, 4, 1)[1]
    assert not known[:, 3].any() and known[:, :3].all()
    assert not regions.seen_tiles(positions, 4, 0).any()  # no context, nothing known


def test_teacher_forcing_context_grows_and_remembers_a_region_that_returns():
    # Right twice then back: with frames 0..t-1 as context every tile of frame 3 was seen before.
    positions = np.array([[0, 0], [1, 0], [2, 0], [1, 0]])
    known = regions.seen_tiles(positions, 4, np.arange(4))
    assert not known[0].any()  # frame 0 has no context
    assert known[3].all()
    # Continuously visible: columns that left the view at frame 2 do not come back.
    always = regions.always_visible_tiles(positions, 4)
    assert always[2].sum() == 4 * 2 and always[3].sum() == 4 * 3 - 4
    assert not always[3][:, 3].any()


def test_vertical_moves_and_batches_of_rollouts():
    positions = np.array([[[0, 0], [0, 1]], [[0, 0], [0, -2]]])  # rollout 0 moves down, rollout 1 up twice
    known = regions.seen_tiles(positions, 4, 1)
    assert known.shape == (2, 2, 4, 4)
    assert not known[0, 1, 3].any() and known[0, 1, :3].all()
    assert not known[1, 1, :2].any() and known[1, 1, 2:].all()


def test_pixel_mask_blows_up_tiles():
    mask = regions.pixel_mask(np.array([[True, False], [False, False]]), 4)
    assert mask.shape == (8, 8) and mask.sum() == 16 and mask[:4, :4].all()


def test_positions_must_be_pairs():
    with pytest.raises(ValueError, match="positions"):
        regions.seen_tiles(np.zeros((3, 3)), 4, 1)


def test_masked_psnr_ignores_pixels_outside_the_mask():
    truth = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    generated = truth.copy()
    generated[:, :, 8:] = 255  # wrong everywhere in the right half
    mask = np.zeros((2, 16, 16), dtype=bool)
    mask[0, :, :8] = True  # frame 0: only the right-looking half
    mask[1] = True  # frame 1: everything
    psnr = metrics.masked_psnr(generated, truth, mask)
    assert psnr[0] == metrics.PSNR_CAP_DB
    assert psnr[1] == pytest.approx(10 * np.log10(2.0))  # MSE = 255² / 2
    assert np.isnan(metrics.masked_psnr(generated, truth, np.zeros((2, 16, 16), bool))).all()
    with pytest.raises(ValueError, match="mask"):
        metrics.masked_psnr(generated, truth, mask[:, :8])


def test_masked_ssim_is_one_where_equal_and_matches_ssim_with_a_full_mask():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (1, 24, 24, 3), dtype=np.uint8)
    generated = truth.copy()
    generated[:, :, 16:] = 0
    left = np.zeros((1, 24, 24), dtype=bool)
    left[:, :, :6] = True  # windows centred here never reach column 16
    assert metrics.masked_ssim(generated, truth, left)[0] == pytest.approx(1.0)
    full = np.ones((1, 24, 24), dtype=bool)
    assert metrics.masked_ssim(generated, truth, full)[0] == pytest.approx(metrics.ssim(generated, truth)[0])


def test_wilson_interval_contains_the_share_and_is_not_empty_at_the_edges():
    low, high = metrics.wilson_interval(45, 50)
    assert low < 0.9 < high
    low, high = metrics.wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9  # all 20 right still leaves doubt
    assert np.isnan(metrics.wilson_interval(0, 0)).all()
    with pytest.raises(ValueError):
        metrics.wilson_interval(3, 2)


def test_bootstrap_ratio_interval_brackets_the_ratio_and_narrows_with_more_units():
    rng = np.random.default_rng(1)
    few = rng.normal(10, 2, 8)
    many = rng.normal(10, 2, 200)
    value, (low, high) = metrics.ratio_with_interval(few, np.ones(8))
    assert low <= value <= high
    _, (low_many, high_many) = metrics.ratio_with_interval(many, np.ones(200))
    assert high_many - low_many < high - low
    # A ratio of sums: 3 of 4 and 1 of 4 → one half.
    assert metrics.ratio_with_interval(np.array([3, 1]), np.array([4, 4]))[0] == pytest.approx(0.5)


def test_share_with_interval_and_class_counts():
    share, (low, high), trials = metrics.share_with_interval(np.array([True, True, False, True]))
    assert share == 0.75 and trials == 4 and low < 0.75 < high
    labels = np.array([[[8, 9], [8, 0]]])
    assert metrics.class_counts(labels, (9, 8)).tolist() == [[1, 2]]


def test_step_bands_cover_every_frame_once():
    bands = step_bands((1, 8, 16, 32))
    assert list(bands) == ["1", "8", "16", "32"]
    assert np.concatenate(list(bands.values())).tolist() == list(range(1, 33))


def test_memory_agreement_compares_the_way_back_with_the_way_out():
    # 2 out, 2 back: frames 0 1 2 1' 0'. The generated way back repeats frame 1 but not frame 0.
    tiles = np.zeros((1, 5, 2, 2), dtype=np.uint8)
    tiles[0, 1] = 3
    tiles[0, 3] = 3
    tiles[0, 4] = [[1, 1], [0, 0]]  # half of frame 0's tiles come back
    truth = tiles.copy()
    truth[0, 4] = 0
    found = memory_agreement(tiles, truth, steps_out=2, seed=0)
    assert found["agreement_with_outgoing"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2
    assert found["truth_agreement"] == pytest.approx(1.0)
    assert found["agreement_with_truth"] == pytest.approx(0.75)


def test_targets_report_value_interval_and_shortfall():
    document = {"collision": {"read_as_noop_share": 0.5, "read_as_noop_share_ci95": [0.4, 0.6]},
                "fidelity": {"known_region_rollout_psnr_db": {"8": 28.0},
                             "known_region_rollout_psnr_db_ci95": {"8": [27.5, 28.5]}}}
    found = check_targets(document)
    wall = found["collision.read_as_noop_share"]
    assert wall["value"] == 0.5 and wall["ci95"] == [0.4, 0.6] and not wall["met"]
    assert wall["shortfall"] == pytest.approx(0.4)
    eight = found["fidelity.known_region_rollout_psnr_db.8"]
    assert eight["met"] and eight["ci95"] == [27.5, 28.5]
    assert found["memory.4.agreement_with_outgoing"]["value"] is None  # not measured


def test_sprite_targets_fail_a_world_that_invents_sprites_as_well_as_one_that_loses_them():
    for ratio, met, miss in [(0.5, False, 0.3), (1.0, True, 0.0), (1.25, True, 0.0), (3.95, False, 2.7)]:
        found = check_targets({"sprites": {"coin_count_ratio": ratio}})["sprites.coin_count_ratio"]
        assert found["met"] is met and found["shortfall"] == pytest.approx(miss)
        assert found["target"] == 0.8 and found["ceiling"] == 1.25
    assert check_targets({})["collision.read_as_noop_share"]["ceiling"] is None


def test_out_and_back_walks_are_free_and_return_to_their_start():
    from worldsim.eval.memory_test import out_and_back
    from worldsim.eval.probes import Probes
    from worldsim.eval.true_frames import EventClasses

    classes = EventClasses(Probes.load().spec.event_groups)
    scenario, truth = out_and_back(np.random.default_rng(0), 6, 3, 64, classes)
    assert scenario.actions.shape == (6, 6) and truth.frames.shape[:2] == (6, 7)
    assert (truth.moved[:, 1:] & truth.alive[:, 1:]).all()
    assert np.array_equal(truth.positions[:, 0], truth.positions[:, -1])
    assert np.array_equal(truth.positions[:, 1], truth.positions[:, -2])
    # The same position shows the same map: the truth agrees with itself almost everywhere.
    assert memory_agreement(truth.tiles, truth.tiles, 3, seed=0)["truth_agreement"] > 0.9


def test_known_region_matches_the_real_game_geometry():
    """A 'model' that only scrolls the true start frame by the player's displacement is right on the
    known region (up to walking enemies and animation) and wrong on the newly revealed tiles."""
    from worldsim.eval.probes import Probes
    from worldsim.eval.replay import collect, truth_steps
    from worldsim.eval.scenarios import Scenario
    from worldsim.eval.true_frames import EventClasses

    actions = np.array([[4, 4, 4, 2, 2], [3, 3, 1, 1, 1]], dtype=np.int64)  # right/down, left/up
    scenario = Scenario("geometry", np.array([11, 12]), actions, [{}, {}])
    truth = collect(truth_steps(scenario, 64, EventClasses(Probes.load().spec.event_groups)))
    assert truth.moved[:, 1:].sum() >= 6
    start = truth.frames[:, 0]
    scrolled = np.empty_like(truth.frames)
    for row in range(2):
        for t in range(truth.frames.shape[1]):
            dx, dy = truth.positions[row, t] - truth.positions[row, 0]
            scrolled[row, t] = np.roll(start[row], shift=(-4 * dy, -4 * dx), axis=(0, 1))
    known = regions.pixel_mask(regions.seen_tiles(truth.positions, 16, 1), 4)
    last = truth.frames.shape[1] - 1
    known_psnr = metrics.masked_psnr(scrolled[:, last], truth.frames[:, last], known[:, last])
    revealed_psnr = metrics.masked_psnr(scrolled[:, last], truth.frames[:, last], ~known[:, last])
    assert (known_psnr > 25.0).all()
    assert (revealed_psnr < known_psnr - 8.0).all()


def test_previous_in_view_moves_the_frame_before_into_the_cells_after_a_step():
    previous = np.zeros((1, 2, 4, 4), dtype=bool)
    previous[0, :, 1, 2] = True  # map tile shown at row 1, column 2 in both frames before
    shift = np.array([[[1, 0], [0, -1]]])  # a step right, then a step up
    moved, known = regions.previous_in_view(previous, shift)
    # Right: the view slides left, the tile is one column further left; the last column is new.
    assert np.argwhere(moved[0, 0]).tolist() == [[1, 1]] and not known[0, 0, :, 3].any()
    assert known[0, 0, :, :3].all()
    # Up: the view slides down, the tile is one row lower; the top row is new.
    assert np.argwhere(moved[0, 1]).tolist() == [[2, 2]] and not known[0, 1, 0].any()


def test_enemies_kept_tell_holders_from_steppers():
    from types import SimpleNamespace

    tiles = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    tiles[0, 0, 1, 1] = tiles[0, 1, 1, 1] = tiles[0, 2, 1, 2] = ENEMY  # holds at frame 1, steps at frame 2
    tiles[0, 0, 3, 3] = tiles[0, 1, 3, 3] = tiles[0, 2, 3, 3] = ENEMY  # holds twice
    truth = SimpleNamespace(tiles=tiles, alive=np.ones((1, 3), dtype=bool), positions=np.zeros((1, 3, 2), np.int64))
    forced = tiles[:, 1:].copy()
    forced[0, 1, 1, 2] = 0  # the generator loses the stepping enemy
    found = enemies_kept_next_frame(truth, forced)
    assert found["teacher_forced_enemy_tiles"] == {"holding": 3, "stepping": 1}
    assert found["teacher_forced_enemies_kept"] == {"holding": 1.0, "stepping": 0.0}
    low, high = found["teacher_forced_enemies_kept_ci95"]["stepping"]
    assert low == 0.0 < high < 1.0
    assert found["teacher_forced_stepping_outcomes"] == {"kept": 0.0, "held": 0.0, "wrong_way": 0.0, "missing": 1.0}


def test_stepping_outcomes_tell_a_kept_a_held_a_wrong_way_and_a_missing_enemy_apart():
    from worldsim.eval.rollout_measures import stepping_outcomes

    before = np.zeros((4, 5, 5), dtype=bool)
    before[:, 2, 2] = True  # every enemy stood at the centre and stepped right onto (2, 3)
    stepping = np.zeros_like(before)
    stepping[:, 2, 3] = True
    shown = np.zeros_like(before)
    shown[0, 2, 3] = True  # kept
    shown[1, 2, 2] = True  # held on the tile it left
    shown[2, 2, 1] = True  # stepped left instead
    # shown[3]: gone
    assert stepping_outcomes(stepping, before, shown) == {"kept": 1, "held": 1, "wrong_way": 1, "missing": 1}
    # An enemy shown on both tiles counts as kept once, not also as held.
    shown[0, 2, 2] = True
    assert stepping_outcomes(stepping, before, shown)["held"] == 1


def test_near_marked_grows_marks_by_the_margin_on_both_axes_and_diagonals():
    marked = np.zeros((2, 5, 5), dtype=bool)
    marked[0, 0, 0] = marked[1, 2, 2] = True
    near = metrics.near_marked(marked, 1)
    assert np.argwhere(near[0]).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]  # clipped at the border
    assert near[1].sum() == 9 and near[1, 1:4, 1:4].all()
    assert np.array_equal(metrics.near_marked(marked, 0), marked)
    with pytest.raises(ValueError, match="margin"):
        metrics.near_marked(marked, -1)


def test_sprite_placement_tells_kept_enemies_from_invented_ones():
    from types import SimpleNamespace

    tiles = np.zeros((2, 3, 6, 6), dtype=np.uint8)
    tiles[:, :, 1, 1] = ENEMY  # one enemy in every frame of both rollouts
    positions = np.zeros((2, 3, 2), np.int64)
    positions[1, 2] = (-3, 0)  # rollout 1 walks 3 tiles left before its last frame: its left half is new
    truth = SimpleNamespace(tiles=tiles, alive=np.ones((2, 3), dtype=bool), positions=positions)
    generated = np.zeros_like(tiles)
    generated[0, :, 1, 2] = ENEMY  # rollout 0: one tile off, counted as beside it
    generated[1, :, 4, 4] = ENEMY  # rollout 1: far from it, invented
    generated[1, 2, 5, 5] = ENEMY  # and one more invented in its last frame
    found = sprite_placement(truth, generated, (1, 2), seed=0)
    assert found["enemy_beside_truth"] == pytest.approx(2 / 5)
    assert found["enemy_truth_shown"] == pytest.approx(2 / 4)
    assert found["enemy_beside_truth_by_step"] == {"1": pytest.approx(1 / 2), "2": pytest.approx(1 / 3)}
    low, high = found["enemy_truth_shown_ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert np.isnan(found["coin_beside_truth"]) and np.isnan(found["coin_truth_shown"])  # no coins at all
    # Rollout 1's last-frame enemy at column 1 stands on map column -2, never in view before: new ground.
    assert found["enemy_truth_shown_known"] == pytest.approx(2 / 3)


def test_the_coin_ledger_counts_coins_a_world_makes_appear_on_known_ground():
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    ground = rng.integers(0, 4, size=(2, 1, 6, 6)).astype(np.uint8)  # varied, so the scroll can be read
    tiles = np.repeat(ground, 3, axis=1)
    tiles[:, :, 0, 0] = COIN  # one coin in every frame: it stays where it lies (a still player)
    truth = SimpleNamespace(tiles=tiles, alive=np.ones((2, 3), dtype=bool), positions=np.zeros((2, 3, 2), np.int64))
    generated = tiles.copy()
    generated[1, 2, 4, 1] = COIN  # rollout 1 makes a coin appear on known ground in its last frame
    found = coin_ledger(truth, generated, seed=0)
    assert found["coin_appeared_per_frame_truth"] == 0.0 and found["coin_vanished_per_frame_truth"] == 0.0
    assert found["coin_appeared_per_frame"] == pytest.approx(1 / 4)  # one coin over 4 frame pairs
    assert found["coin_revealed_per_frame"] == 0.0
    low, high = found["coin_appeared_per_frame_ci95"]
    assert 0.0 <= low <= 0.25 <= high


def test_rollout_inverse_dynamics_tells_where_the_misses_sit():
    from types import SimpleNamespace

    # 4 rollouts of 3 frames, every step a move right (action 4); the probe reads a pair as that move
    # when the frames differ and as noop when they are equal (a view that did not scroll).
    actions = np.full((4, 2), 4, dtype=np.int64)
    truth_frames = np.arange(4 * 3, dtype=np.float32).reshape(4, 3, 1, 1, 1)
    generated_frames = truth_frames.copy()
    generated_frames[1, 2] = generated_frames[1, 1]  # rollout 1 stops scrolling at its last step
    probes = SimpleNamespace(infer_actions=lambda before, after: np.where((before == after).reshape(len(before), -1)
                                                                          .all(axis=1), 0, 4))
    truth = SimpleNamespace(frames=truth_frames, moved=np.ones((4, 3), bool), alive=np.ones((4, 3), bool))
    found = rollout_inverse_dynamics(probes, actions, truth, SimpleNamespace(frames=generated_frames), (1, 2))
    assert found["accuracy"] == {"1": 1.0, "2": 0.75}
    assert found["pairs"] == {"1": 4, "2": 4}
    assert found["rollouts_with_pairs"]["2"] == 4 and found["rollouts_with_misses"] == {"1": 0, "2": 1}
    assert found["misses_read_as_noop"]["2"] == 1.0 and np.isnan(found["misses_read_as_noop"]["1"])
    assert found["truth_accuracy"]["2"] == 1.0
    low, high = found["accuracy_ci95_by_rollout"]["2"]
    assert low < 0.75 <= high
