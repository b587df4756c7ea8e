"""Measures that tell memory, imagination and control apart along the fidelity rollouts.

All of them read the same replays: N rollouts of T frames from a true start frame (truth and
model), the teacher-forced predictions of the first rollouts, and the player's true track.

- known region: PSNR/SSIM only on pixels whose map tile the model had seen (rollouts: in the start
  frame; teacher forcing: in the true frames before) and that are in view now; the continuously
  visible region: pixels in view in every frame since the start;
- imagined tiles: tile-class statistics (frame parser) of the newly revealed tiles of generated
  frames against the true tiles there, with the same distance between two real replays as floor;
- sprites: parser counts of enemies and coins in generated frames over the truth's counts, where
  they stand (of the generated ones, the share beside a true one of the same frame, and of the
  true ones, the share with a generated one beside them: a count can be met by invented sprites),
  and which enemies the teacher-forced next frame keeps: those holding their tile or those stepping;
- the coin ledger: coins that appear on ground in view, come with the scroll or vanish, per frame;
- inverse dynamics along the rollouts, by band of steps.

Every value comes with a 95 % interval: bootstrap over rollouts for means and ratios, Wilson for
shares of pairs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.eval import metrics, regions
from worldsim.eval.branch_contexts import NOOP
from worldsim.eval.tile_ledger import tile_ledger, view_steps
from worldsim.eval.truth import TRUTH

TILE_PIXELS = 4
TILE_CLASSES = TRUTH.tile_classes
COIN, ENEMY = TILE_CLASSES.index("coin"), TILE_CLASSES.index("enemy")
LEDGER_PARTS = ("appeared", "revealed", "vanished")


def step_bands(steps: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Band of each reported step: the frames after the previous reported step up to it."""
    edges = (0, *steps)
    return {str(end): np.arange(start + 1, end + 1) for start, end in zip(edges, edges[1:])}


def _mean_over_rollouts(table: np.ndarray, valid: np.ndarray, column: int, seed: int) -> tuple[float, list[float]]:
    """Mean and bootstrap interval over rollouts of `table[:, column]` where valid and finite."""
    values = table[:, column]
    keep = valid[:, column] & np.isfinite(values)
    return metrics.ratio_with_interval(values[keep], np.ones(int(keep.sum())), seed=seed)


def _by_horizon(table: np.ndarray, valid: np.ndarray, horizons: tuple[int, ...], offset: int,
                seed: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """`{h: mean}` and `{h: [low, high]}` of frame h, column `h - offset` of the table."""
    found = {str(h): _mean_over_rollouts(table, valid, h - offset, seed) for h in horizons}
    return {h: v[0] for h, v in found.items()}, {h: v[1] for h, v in found.items()}


def _masked_table(metric, generated: np.ndarray, truth: np.ndarray, masks: np.ndarray,
                  columns: list[int]) -> np.ndarray:
    """`[N, T]` table of a masked per-frame metric, computed only at `columns` (NaN elsewhere)."""
    table = np.full(generated.shape[:2], np.nan)
    for column in columns:
        table[:, column] = metric(generated[:, column], truth[:, column], masks[:, column])
    return table


def known_region(truth, generated, forced: np.ndarray, horizons: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Known-region and continuously-visible PSNR/SSIM by horizon (rollouts and teacher forcing)."""
    view = truth.tiles.shape[-1]
    columns = list(horizons)
    rollout_known = regions.pixel_mask(regions.seen_tiles(truth.positions, view, 1), TILE_PIXELS)
    always = regions.pixel_mask(regions.always_visible_tiles(truth.positions, view), TILE_PIXELS)
    rows, steps = forced.shape[:2]
    forced_known = regions.pixel_mask(regions.seen_tiles(truth.positions[:rows], view, np.arange(steps + 1)),
                                      TILE_PIXELS)[:, 1:]
    forced_alive = truth.alive[:rows, 1:]
    found: dict[str, Any] = {}
    tables = {
        "known_region_rollout": (generated.frames, truth.frames, rollout_known, truth.alive, 0),
        "known_region_teacher_forced": (forced, truth.frames[:rows, 1:], forced_known, forced_alive, 1),
        "continuously_visible_rollout": (generated.frames, truth.frames, always, truth.alive, 0),
    }
    for name, (made, real, masks, alive, offset) in tables.items():
        for metric, unit in ((metrics.masked_psnr, "psnr_db"), (metrics.masked_ssim, "ssim")):
            table = _masked_table(metric, made, real, masks, [h - offset for h in columns])
            found[f"{name}_{unit}"], found[f"{name}_{unit}_ci95"] = _by_horizon(table, alive, horizons, offset, seed)
    every_frame = metrics.masked_psnr(forced, truth.frames[:rows, 1:], forced_known)
    valid = forced_alive & np.isfinite(every_frame)
    found["known_region_teacher_forced_psnr_db_mean"], found["known_region_teacher_forced_psnr_db_mean_ci95"] = \
        metrics.ratio_with_interval(np.where(valid, every_frame, 0.0).sum(axis=1), valid.sum(axis=1), seed=seed)
    found["known_region_share"] = {str(h): float(rollout_known[:, h].mean()) for h in horizons}
    found["continuously_visible_share"] = {str(h): float(always[:, h].mean()) for h in horizons}
    return found


def known_region_curve(truth, generated) -> list[float]:
    """Mean known-region rollout PSNR of every frame 1..T over the rollouts (for the horizon plot)."""
    view = truth.tiles.shape[-1]
    known = regions.pixel_mask(regions.seen_tiles(truth.positions, view, 1), TILE_PIXELS)
    table = metrics.masked_psnr(generated.frames, truth.frames, known)
    valid = truth.alive & np.isfinite(table)
    return [float(table[valid[:, t], t].mean()) if valid[:, t].any() else float("nan")
            for t in range(1, table.shape[1])]


def _unknown_tiles(truth) -> np.ndarray:
    """bool [N, T + 1, h, w]: tiles not in the start frame's view, in frames where the player lives."""
    view = truth.tiles.shape[-1]
    return ~regions.seen_tiles(truth.positions, view, 1) & truth.alive[:, :, None, None]


def imagined_tiles(truth, generated_tiles: np.ndarray, other_truth, seed: int) -> dict[str, Any]:
    """Tile-class statistics of newly revealed tiles: generated (parser) vs true, and a real floor
    (a replay of the same actions on other maps, its revealed tiles vs the truth's)."""
    num_classes = len(TILE_CLASSES)
    unknown, other_unknown = _unknown_tiles(truth), _unknown_tiles(other_truth)
    per_rollout = [(generated_tiles[i][unknown[i]], truth.tiles[i][unknown[i]],
                    other_truth.tiles[i][other_unknown[i]]) for i in range(len(unknown))]

    def distance(indices: np.ndarray, which: int) -> float:
        made = np.concatenate([per_rollout[i][which] for i in indices])
        real = np.concatenate([per_rollout[i][1] for i in indices])
        if not len(made) or not len(real):
            return float("nan")
        return metrics.total_variation(metrics.class_histogram(made, num_classes),
                                       metrics.class_histogram(real, num_classes))

    everything = np.arange(len(per_rollout))
    made = np.concatenate([r[0] for r in per_rollout])
    real = np.concatenate([r[1] for r in per_rollout])
    agreement = metrics.share_with_interval(made == real)
    return {
        "tiles": int(len(real)),
        "tile_tv": distance(everything, 0),
        "tile_tv_ci95": list(metrics.bootstrap_interval(len(per_rollout), lambda idx: distance(idx, 0), seed=seed)),
        "tile_tv_real_floor": distance(everything, 2),
        "tile_agreement": agreement[0], "tile_agreement_ci95": agreement[1],
        "class_share_generated": dict(zip(TILE_CLASSES, metrics.class_histogram(made, num_classes).tolist())),
        "class_share_truth": dict(zip(TILE_CLASSES, metrics.class_histogram(real, num_classes).tolist())),
    }


def sprite_persistence(truth, generated_tiles: np.ndarray, steps: tuple[int, ...], seed: int) -> dict[str, Any]:
    """Parser counts of enemies and coins in generated frames over the truth's, frames 1..T, by band."""
    alive = truth.alive[:, 1:]
    generated_counts = metrics.class_counts(generated_tiles[:, 1:], (ENEMY, COIN)) * alive[..., None]
    true_counts = metrics.class_counts(truth.tiles[:, 1:], (ENEMY, COIN)) * alive[..., None]
    found: dict[str, Any] = {}
    for index, name in enumerate(("enemy", "coin")):
        made, real = generated_counts[..., index], true_counts[..., index]
        found[f"{name}_count_ratio"], found[f"{name}_count_ratio_ci95"] = metrics.ratio_with_interval(
            made.sum(axis=1), real.sum(axis=1), seed=seed)
        found[f"{name}_count_truth"] = int(real.sum())
        found[f"{name}_count_generated"] = int(made.sum())
        by_band = {band: metrics.ratio_with_interval(made[:, frames - 1].sum(axis=1), real[:, frames - 1].sum(axis=1),
                                                     seed=seed) for band, frames in step_bands(steps).items()}
        found[f"{name}_count_ratio_by_step"] = {band: value for band, (value, _) in by_band.items()}
        found[f"{name}_count_ratio_by_step_ci95"] = {band: interval for band, (_, interval) in by_band.items()}
    return found


def sprite_placement(truth, generated_tiles: np.ndarray, steps: tuple[int, ...], seed: int,
                     margin: int = 1) -> dict[str, Any]:
    """Where the generated enemies and coins stand, frames 1..T, overall and by band of steps.

    `{name}_beside_truth`: of the generated tiles of the class, the share within `margin` tiles of a
    true one in the same frame (the rest are invented or misplaced); `{name}_truth_shown`: of the
    true tiles, the share with a generated one within `margin` tiles; `{name}_truth_shown_known`:
    the same for the true tiles on ground in view in the start frame (the rest stand on ground a
    scroll revealed, where no model can know them). Ratios of per-rollout sums with bootstrap
    intervals over rollouts. Positions are view positions, so a missed scroll moves every sprite:
    read the early bands for placement, the late ones for what is left of it.
    """
    alive = truth.alive[:, 1:, None, None]
    known = regions.seen_tiles(truth.positions, truth.tiles.shape[-1], 1)[:, 1:]
    found: dict[str, Any] = {}
    for name, label in (("enemy", ENEMY), ("coin", COIN)):
        made, real = (generated_tiles[:, 1:] == label) & alive, (truth.tiles[:, 1:] == label) & alive
        shown = real & metrics.near_marked(made, margin)
        found[f"{name}_truth_shown_known"], found[f"{name}_truth_shown_known_ci95"] = metrics.ratio_with_interval(
            (shown & known).sum(axis=(1, 2, 3)), (real & known).sum(axis=(1, 2, 3)), seed=seed)
        pairs = {"beside_truth": (made & metrics.near_marked(real, margin), made), "truth_shown": (shown, real)}
        for measure, (hits, of) in pairs.items():
            key = f"{name}_{measure}"
            found[key], found[f"{key}_ci95"] = metrics.ratio_with_interval(
                hits.sum(axis=(1, 2, 3)), of.sum(axis=(1, 2, 3)), seed=seed)
            by_band = {band: metrics.ratio_with_interval(hits[:, frames - 1].sum(axis=(1, 2, 3)),
                                                         of[:, frames - 1].sum(axis=(1, 2, 3)), seed=seed)
                       for band, frames in step_bands(steps).items()}
            found[f"{key}_by_step"] = {band: value for band, (value, _) in by_band.items()}
            found[f"{key}_by_step_ci95"] = {band: interval for band, (_, interval) in by_band.items()}
    return found


def coin_ledger(truth, generated_tiles: np.ndarray, seed: int) -> dict[str, Any]:
    """Where the coins of frames 1..T come from (`tile_ledger`), per frame, in the generated
    rollouts and in the truth: `appeared` on ground in view the frame before (the game only shows a
    coin shower starting that way), `revealed` by the scroll, and `vanished` from ground still in
    view. The generated view's step is read from its own tiles, the truth's from the player's track.
    A world that makes coins appear under a held event pays a coin-seeker more than the game."""
    alive = truth.alive[:, 1:]
    sides = {"": (generated_tiles, None), "_truth": (truth.tiles, np.diff(truth.positions, axis=1))}
    counts: dict[str, dict[str, np.ndarray]] = {}
    for suffix, (tiles, true_steps) in sides.items():
        rollouts, frames = tiles.shape[:2]
        before, after = tiles[:, :-1].reshape(-1, *tiles.shape[2:]), tiles[:, 1:].reshape(-1, *tiles.shape[2:])
        steps = view_steps(before, after) if true_steps is None else true_steps.reshape(-1, 2)
        ledger = tile_ledger(before, after, steps, COIN)
        counts[suffix] = {name: ledger[name].reshape(rollouts, frames - 1) * alive for name in LEDGER_PARTS}
    found: dict[str, Any] = {}
    for suffix, by_name in counts.items():
        for name, per_frame in by_name.items():
            key = f"coin_{name}_per_frame{suffix}"
            found[key], found[f"{key}_ci95"] = metrics.ratio_with_interval(per_frame.sum(axis=1), alive.sum(axis=1),
                                                                           seed=seed)
    return found


def enemies_kept_next_frame(truth, forced_tiles: np.ndarray) -> dict[str, Any]:
    """Of the true enemy tiles of frames 1..T, the share the teacher-forced frame shows too, for
    enemies that hold the tile they stood on a frame before and for enemies that step onto it.

    An Explorer enemy holds each tile of its patrol for two frames; after a step it holds, and
    after a hold it steps one way or the other depending on where it stood four to six frames
    before. A generator that reads only the last two frames keeps holders and loses steppers.
    `forced_tiles` ``[R, T, h, w]``: parsed teacher-forced frames of the first R rollouts.
    """
    rows = forced_tiles.shape[0]
    tiles, alive = truth.tiles[:rows], truth.alive[:rows, 1:]
    shift = truth.positions[:rows, 1:] - truth.positions[:rows, :-1]
    before, known = regions.previous_in_view(tiles[:, :-1] == ENEMY, shift)
    enemy_now, kept = (tiles[:, 1:] == ENEMY) & alive[..., None, None], forced_tiles == ENEMY
    found: dict[str, Any] = {"teacher_forced_enemies_kept": {}, "teacher_forced_enemies_kept_ci95": {},
                             "teacher_forced_enemy_tiles": {}}
    stepping = enemy_now & known & ~before
    for name, cells in (("holding", enemy_now & before), ("stepping", stepping)):
        share, interval, trials = metrics.share_with_interval(kept[cells])
        found["teacher_forced_enemies_kept"][name] = share
        found["teacher_forced_enemies_kept_ci95"][name] = interval
        found["teacher_forced_enemy_tiles"][name] = trials
    outcomes = stepping_outcomes(stepping, before, kept)
    total = max(sum(outcomes.values()), 1)
    found["teacher_forced_stepping_outcomes"] = {name: count / total for name, count in outcomes.items()}
    return found


def stepping_outcomes(stepping: np.ndarray, before: np.ndarray, shown: np.ndarray) -> dict[str, int]:
    """Where the generated frame puts enemies that stepped: counts of `kept` (shown on the new tile),
    `held` (not there, but shown on the neighbouring tile it came from), `wrong_way` (neither, but
    shown one tile past that one: the step the other way) and `missing` (none of those).

    All bool ``[..., h, w]`` in the same cells: `stepping` the true enemies that stepped onto a
    cell, `before` the true enemies of the frame before moved into those cells, `shown` the
    generated enemies. A world that lacks the enemy's past guesses the way (wrong_way ≈ kept) or
    holds; one that knows the way but does not commit blurs the enemy out (missing).
    """
    kept = stepping & shown
    held, wrong_way = np.zeros_like(stepping), np.zeros_like(stepping)
    for rows, cols in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        came_from = regions.shifted(before, rows, cols)
        held |= came_from & regions.shifted(shown, rows, cols)
        wrong_way |= came_from & regions.shifted(shown, 2 * rows, 2 * cols)
    held &= stepping & ~kept
    wrong_way &= stepping & ~kept & ~held
    return {"kept": int(kept.sum()), "held": int(held.sum()), "wrong_way": int(wrong_way.sum()),
            "missing": int((stepping & ~kept & ~held & ~wrong_way).sum())}


def rollout_inverse_dynamics(probes, actions: np.ndarray, truth, generated, steps: tuple[int, ...]) -> dict[str, Any]:
    """IDM accuracy on generated pairs (frame t - 1, frame t) where the true player moved, by band of t.

    Besides the per-pair Wilson interval, an interval that resamples whole rollouts: the pairs of
    one rollout fail together (a world that stops scrolling fails every later pair), so the pairs
    are not independent. `misses_read_as_noop` is the share of wrong reads that saw no move at all:
    a view that did not visibly scroll (a stuck or featureless world) rather than a wrong direction.
    """
    moved = (truth.moved & truth.alive)[:, 1:]  # [N, T]: the step into frame t moved the player
    found: dict[str, Any] = {key: {} for key in ("accuracy", "accuracy_ci95", "accuracy_ci95_by_rollout", "pairs",
                                                 "rollouts_with_pairs", "rollouts_with_misses",
                                                 "misses_read_as_noop", "truth_accuracy")}
    for band, frames in step_bands(steps).items():
        mask = np.zeros_like(moved)
        mask[:, frames - 1] = moved[:, frames - 1]
        commanded = actions[mask]
        reads, correct = {}, {}
        for name, trajectory in (("generated", generated), ("truth", truth)):
            reads[name] = probes.infer_actions(trajectory.frames[:, :-1][mask], trajectory.frames[:, 1:][mask]) \
                if mask.any() else np.zeros(0, dtype=np.int64)
            correct[name] = reads[name] == commanded
        share, interval, pairs = metrics.share_with_interval(correct["generated"])
        found["accuracy"][band], found["accuracy_ci95"][band], found["pairs"][band] = share, interval, pairs
        found["truth_accuracy"][band] = metrics.share_with_interval(correct["truth"])[0]
        for key, value in _misses_by_rollout(mask, correct["generated"], reads["generated"]).items():
            found[key][band] = value
    return found


def _misses_by_rollout(mask: np.ndarray, correct: np.ndarray, reads: np.ndarray) -> dict[str, Any]:
    """One band's misses by rollout: the rollout-resampled interval of the accuracy, how many
    rollouts hold pairs and misses, and the share of misses read as noop. `mask` `[N, T]` selects
    the pairs, in the (row-major) order of `correct` and `reads`."""
    rollout_of_pair = np.nonzero(mask)[0]
    pairs_per_rollout = np.bincount(rollout_of_pair, minlength=mask.shape[0])
    correct_per_rollout = np.bincount(rollout_of_pair, weights=correct, minlength=mask.shape[0])
    with_pairs = pairs_per_rollout > 0
    misses = ~correct
    return {
        "accuracy_ci95_by_rollout": (metrics.ratio_with_interval(correct_per_rollout[with_pairs],
                                                                 pairs_per_rollout[with_pairs])[1]
                                     if with_pairs.any() else [float("nan"), float("nan")]),
        "rollouts_with_pairs": int(with_pairs.sum()),
        "rollouts_with_misses": int((correct_per_rollout < pairs_per_rollout).sum()),
        "misses_read_as_noop": float((reads[misses] == NOOP).mean()) if misses.any() else float("nan"),
    }
