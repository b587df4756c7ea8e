"""The evaluation suites: which scenarios to replay and how the metrics come out of them.

    result = run_suite(world, probes, SUITES["quick"])     # result.metrics is metrics.json's body

Five scenario families, all seeded from `SuiteConfig.seed`, so every checkpoint of a comparison
sees identical maps, actions and events:

- fidelity: short rollouts without switches → teacher-forced next-frame PSNR/SSIM, rollout PSNR/SSIM
  by horizon, the same on the known and continuously visible regions, plausibility of imagined
  tiles, sprite persistence, controllability (inverse dynamics on generated frame pairs, overall and
  by band of steps), reward/termination (see rollout_measures);
- branches: true contexts, the next frame under every action → the action-branch test, inverse
  dynamics on moved pairs, the collision test and still frames (see action_branch);
- memory:   out-and-back walks on free paths → tile agreement of the way back with the way out
  (see memory_test);
- switch:   one event switch per rollout plus the matched no-switch control → reactivity (event
  classifier), consistency (frame parser's tile agreement with the truth), the event-branch test
  (the switch frame teacher-forced under both scripts, see event_branch), reward/termination;
- drift:    long rollouts with an event switch every few hundred frames → per-window Fréchet
  distance of probe features and tile-histogram distance to the truth, and their slopes, next to
  the same distances between two real replays (the floor that sampling noise alone produces); with
  `long_rollout_frames`, one more rollout of that length measured as it streams (`drift.long_*`).

Frames where the true player is already dead are left out of frame-by-frame comparisons.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from worldsim.eval import drift, metrics, regions, rollout_measures
from worldsim.eval.action_branch import BranchMeasures, branch_measures, held_collision
from worldsim.eval.branch_contexts import sample_branch_contexts
from worldsim.eval.event_branch import event_effects, summarise_effects
from worldsim.eval.memory_test import memory_agreement, out_and_back
from worldsim.eval.probes import Probes
from worldsim.eval.replay import Trajectory, collect, generated_steps, teacher_forced_frames, truth_steps
from worldsim.eval.scenarios import (DRIFT_FAMILY, LONG_DRIFT_FAMILY, Scenario, SwitchTargets, drift_scenario,
                                     plain_scenario, scenario_rng, switch_scenarios)
from worldsim.eval.suite_config import SUITES, SuiteConfig
from worldsim.eval.switch_units import SwitchUnits
from worldsim.eval.true_frames import EventClasses

__all__ = ["SUITES", "SuiteConfig", "SuiteResult", "run_suite", "measure_switches"]


@dataclass
class SuiteResult:
    metrics: dict[str, Any]  # JSON-ready (NaN where undefined)
    curves: dict[str, Any] = field(default_factory=dict)  # arrays behind the plots
    strips: dict[str, tuple[list[np.ndarray], list[str], list[str]]] = field(default_factory=dict)  # film strips


@dataclass
class _Run:
    """What every metric family needs."""

    world: Any
    probes: Probes
    classes: EventClasses
    config: SuiteConfig
    size: int


def _new_run(world: Any, probes: Probes, config: SuiteConfig) -> _Run:
    return _Run(world, probes, EventClasses(probes.spec.event_groups), config, world.config.image_size)


def _mean(values: np.ndarray, mask: np.ndarray | None = None) -> float:
    values = values if mask is None else values[mask]
    return float(values.mean()) if values.size else float("nan")


def _per_frame_mean(table: np.ndarray, mask: np.ndarray) -> list[float]:
    """Mean over rollouts of a `[N, T]` table, per frame, using only masked entries."""
    return [_mean(table[:, t], mask[:, t]) for t in range(table.shape[1])]


def _replay_pair(run: _Run, scenario: Scenario, seed_offset: int) -> tuple[Trajectory, Trajectory]:
    truth = collect(truth_steps(scenario, run.size, run.classes))
    generated = collect(generated_steps(run.world, scenario, truth.frames[:, 0], run.config.seed + seed_offset))
    return truth, generated


def _per_rollout(metric, generated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A per-frame metric over `[N, T, H, W, 3]`, one rollout at a time to bound SSIM's float64 temporaries."""
    return np.stack([metric(g, t) for g, t in zip(generated, truth)])


def _parse(run: _Run, frames: np.ndarray) -> np.ndarray:
    """Frame parser over `[N, T, H, W, 3]` → `[N, T, h, w]`."""
    tiles = run.probes.parse_tiles(frames.reshape(-1, *frames.shape[2:]))
    return tiles.reshape(*frames.shape[:2], *tiles.shape[1:])


# ---------------------------------------------------------------------------------- fidelity
def _fidelity(run: _Run, scenario: Scenario) -> tuple[dict[str, Any], dict[str, Any], Trajectory, Trajectory,
                                                      np.ndarray]:
    truth, generated = _replay_pair(run, scenario, seed_offset=1)
    alive = truth.alive
    psnr = _per_rollout(metrics.psnr, generated.frames, truth.frames)
    ssim = _per_rollout(metrics.ssim, generated.frames, truth.frames)
    psnr_by_step, ssim_by_step = _per_frame_mean(psnr, alive), _per_frame_mean(ssim, alive)
    rows = run.config.teacher_forced_rollouts
    forced = teacher_forced_frames(run.world, truth.frames[:rows], scenario.actions[:rows],
                                   scenario.texts_in_force()[:rows], run.config.seed)
    forced_truth, forced_mask = truth.frames[:rows, 1:], alive[:rows, 1:]
    found = {
        "rollouts": scenario.num_rollouts,
        "teacher_forced_rollouts": rows,
        "teacher_forced_psnr_db": _mean(_per_rollout(metrics.psnr, forced, forced_truth), forced_mask),
        "teacher_forced_ssim": _mean(_per_rollout(metrics.ssim, forced, forced_truth), forced_mask),
        "rollout_psnr_db": {str(h): psnr_by_step[h] for h in run.config.horizons},
        "rollout_ssim": {str(h): ssim_by_step[h] for h in run.config.horizons},
    }
    curves = {"psnr_by_step": psnr_by_step[1:], "ssim_by_step": ssim_by_step[1:]}
    return found, curves, truth, generated, forced


def _imagination_and_sprites(run: _Run, scenario: Scenario, truth: Trajectory, generated: Trajectory,
                             forced: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """Imagined-tile statistics (with a real floor from the same actions on other maps) and sprites
    (along the rollouts, and in the teacher-forced frames `forced`)."""
    generated_tiles = _parse(run, generated.frames)
    other_maps = Scenario("fidelity-other-maps", scenario.seeds + 1, scenario.actions, scenario.switches)
    other_truth = collect(truth_steps(other_maps, run.size, run.classes))
    seed = run.config.seed
    sprites = rollout_measures.sprite_persistence(truth, generated_tiles, run.config.idm_steps, seed)
    sprites.update(rollout_measures.sprite_placement(truth, generated_tiles, run.config.idm_steps, seed))
    sprites.update(rollout_measures.enemies_kept_next_frame(truth, _parse(run, forced)))
    sprites.update(rollout_measures.coin_ledger(truth, generated_tiles, seed))
    return rollout_measures.imagined_tiles(truth, generated_tiles, other_truth, seed), sprites


# ---------------------------------------------------------------------------------- branches
def _interval_of_mean(values: np.ndarray, seed: int) -> tuple[float, list[float]]:
    return metrics.ratio_with_interval(values, np.ones(len(values)), seed=seed)


def _idm_share(reading) -> dict[str, Any]:
    share, interval, pairs = metrics.share_with_interval(reading.correct)
    truth = metrics.share_with_interval(reading.truth_correct)[0]
    return {"share": share, "ci95": interval, "pairs": pairs, "truth": truth}


def _branch_families(measures: BranchMeasures, num_context_frames: int, seed: int) -> tuple[dict, dict]:
    """The action-branch family (spreads, wrong-move gap, IDM on moved pairs) and the collision family."""
    found: dict[str, Any] = {"contexts": len(measures.move_spread), "context_frames": num_context_frames}
    for name, values in (("move_spread_mse", measures.move_spread), ("seed_spread_mse", measures.seed_spread),
                         ("truth_move_spread_mse", measures.truth_move_spread),
                         ("psnr_true_move_db", measures.psnr_true_move),
                         ("psnr_wrong_move_db", measures.psnr_wrong_move),
                         ("wrong_minus_true_psnr_db", measures.psnr_wrong_move - measures.psnr_true_move)):
        found[name], found[f"{name}_ci95"] = _interval_of_mean(values, seed)
    found["move_to_seed_spread"], found["move_to_seed_spread_ci95"] = metrics.ratio_with_interval(
        measures.move_spread, measures.seed_spread, seed=seed)
    moved = _idm_share(measures.idm["moved"])
    found.update({"inverse_dynamics_accuracy_moved": moved["share"],
                  "inverse_dynamics_accuracy_moved_ci95": moved["ci95"], "moved_pairs": moved["pairs"],
                  "truth_inverse_dynamics_accuracy_moved": moved["truth"]})
    blocked, still = _idm_share(measures.idm["blocked"]), _idm_share(measures.idm["still"])
    collision = {"forced_moves": blocked["pairs"], "read_as_noop_share": blocked["share"],
                 "read_as_noop_share_ci95": blocked["ci95"], "truth_read_as_noop_share": blocked["truth"],
                 "still_frames": still["pairs"], "still_read_as_noop_share": still["share"],
                 "still_read_as_noop_share_ci95": still["ci95"], "truth_still_read_as_noop_share": still["truth"]}
    return found, collision


def _held_pushes(read_as_noop: np.ndarray, seed: int) -> dict[str, Any]:
    """The held collision test's summary from its readings bool `[pushes, frames]`."""
    pushes, frames = read_as_noop.shape
    share, interval = metrics.ratio_with_interval(read_as_noop.sum(axis=1), np.full(pushes, frames), seed=seed)
    kept, kept_interval, _ = metrics.share_with_interval(read_as_noop.all(axis=1))
    return {"held_push_frames": frames, "held_pushes": pushes, "held_read_as_noop_share": share,
            "held_read_as_noop_share_ci95": interval, "held_wall_kept_share": kept,
            "held_wall_kept_share_ci95": kept_interval,
            "held_read_as_noop_share_by_frame": read_as_noop.mean(axis=0).tolist() if pushes else [float("nan")] * frames}


def _branches(run: _Run) -> tuple[dict[str, Any], dict[str, Any]]:
    config = run.config
    contexts = sample_branch_contexts(config.branch_contexts, config.branch_context_frames, run.size, config.seed)
    measures = branch_measures(run.world, contexts, config.seed + 4, run.probes)
    action_branch, collision = _branch_families(measures, config.branch_context_frames, config.seed)
    # The same noise per context as the one-frame branches: a push's first frame is its collision-test frame.
    held = held_collision(run.world, contexts, run.probes, config.held_push_frames, config.seed + 4)
    return action_branch, {**collision, **_held_pushes(held, config.seed)}


# ---------------------------------------------------------------------------------- memory
def _memory(run: _Run) -> dict[str, Any]:
    """Out-and-back walks for each N of the suite that fits half the world's cache window."""
    config = run.config
    window = run.world.config.transformer.window_frames
    skipped = [n for n in config.memory_steps if 2 * n > window]
    found: dict[str, Any] = {"window_frames": window, "skipped_steps": skipped}
    for steps_out in config.memory_steps:
        if 2 * steps_out > window:
            continue
        rng = scenario_rng(config.seed, 10 + steps_out)
        scenario, truth = out_and_back(rng, config.memory_rollouts, steps_out, run.size, run.classes)
        generated = collect(generated_steps(run.world, scenario, truth.frames[:, 0], config.seed + 5))
        found[str(steps_out)] = memory_agreement(_parse(run, generated.frames), truth.tiles, steps_out, config.seed)
    return found


def _controllability(run: _Run, scenario: Scenario, truth: Trajectory, generated: Trajectory) -> dict[str, Any]:
    """Inverse dynamics on consecutive frames where the true player moved (and was alive)."""
    mask = (truth.moved & truth.alive)[:, 1:]
    commanded = scenario.actions[mask]

    def accuracy(frames: np.ndarray) -> tuple[float, list[float], int]:
        inferred = run.probes.infer_actions(frames[:, :-1][mask], frames[:, 1:][mask]) if len(commanded) else commanded
        return metrics.share_with_interval(inferred == commanded)

    generated_share, generated_interval, pairs = accuracy(generated.frames)
    return {"pairs": pairs, "inverse_dynamics_accuracy_generated": generated_share,
            "inverse_dynamics_accuracy_generated_ci95": generated_interval,
            "inverse_dynamics_accuracy_real": accuracy(truth.frames)[0]}


def _stack_rows(tables: list[np.ndarray]) -> np.ndarray:
    """Rows of bool tables of different lengths, padded with False (which matches nothing)."""
    length = max(t.shape[1] for t in tables)
    return np.concatenate([np.pad(t, ((0, 0), (0, length - t.shape[1]))) for t in tables])


def _reward_and_termination(pairs: list[tuple[Trajectory, Trajectory]], tolerance: int) -> dict[str, Any]:
    """Precision/recall of generated coin rewards and terminations against the truth's, per step."""
    def flags(select) -> tuple[np.ndarray, np.ndarray]:
        predicted, actual = [], []
        for truth, generated in pairs:
            stepped = truth.alive[:, :-1]  # the step into frame t happened while alive
            predicted.append(select(generated)[:, 1:] & stepped)
            actual.append(select(truth)[:, 1:] & stepped)
        return _stack_rows(predicted), _stack_rows(actual)

    found = {}
    for name, select in (("reward", lambda tr: tr.rewards > 0.5), ("termination", lambda tr: tr.terminated)):
        summary = metrics.precision_recall(*flags(select), tolerance=tolerance)
        found[name] = {**asdict(summary), "tolerance_frames": tolerance}
    return found


# ---------------------------------------------------------------------------------- switches
def _recognition(run: _Run, frames: np.ndarray, targets: SwitchTargets) -> np.ndarray:
    """Per rollout and frame, the classifier's class for the rollout's switching group: `[N, T]`."""
    predicted = run.probes.classify_events(frames.reshape(-1, *frames.shape[2:]))
    return np.stack([predicted[group].reshape(frames.shape[:2])[row] for row, group in enumerate(targets.groups)])


def _reactivity(run: _Run, truth: Trajectory, generated: Trajectory,
                targets: SwitchTargets) -> tuple[dict, dict, tuple[np.ndarray, np.ndarray]]:
    """Reactivity measures, the recognised share by frame, and per switch (in time, truth in time)."""
    config = run.config
    latency = {}
    recognised = {}
    for name, trajectory in (("generated", generated), ("truth", truth)):
        predicted = _recognition(run, trajectory.frames, targets)
        starts = np.full(len(targets.classes), targets.frame)
        latency[name] = metrics.switch_latencies(predicted, targets.classes, starts, hold=config.recognition_hold)
        recognised[name] = (predicted == targets.classes[:, None])[:, targets.frame :].mean(axis=0).tolist()
    summary = metrics.reactivity(latency["generated"], config.reactivity_within)
    visible = (latency["truth"] >= 0) & (latency["truth"] <= config.reactivity_within)
    in_time = (latency["generated"] >= 0) & (latency["generated"] <= config.reactivity_within)
    relative, relative_interval = metrics.ratio_with_interval(in_time, visible, seed=config.seed)
    groups = np.array(targets.groups)
    by_group = {}
    for group in dict.fromkeys(targets.groups):
        group_summary = metrics.reactivity(latency["generated"][groups == group], config.reactivity_within)
        by_group[group] = {"switches": int((groups == group).sum()), "recognised_share": group_summary.recognised_share,
                           "mean_latency_frames": group_summary.mean_latency}
    found = {
        "switches": len(targets.classes),
        "within_frames": config.reactivity_within,
        "hold_frames": config.recognition_hold,
        "recognised_share": summary.recognised_share,
        "recognised_share_ci95": metrics.share_with_interval(in_time)[1],
        "mean_latency_frames": summary.mean_latency,
        "truth_recognised_share": metrics.reactivity(latency["truth"], config.reactivity_within).recognised_share,
        "truth_recognised_share_ci95": metrics.share_with_interval(visible)[1],
        "relative_to_truth": relative,
        "relative_to_truth_ci95": relative_interval,
        "recognised_share_visible": _mean(in_time, visible),
        "visible_switches": int(visible.sum()),
        "by_group": by_group,
    }
    return found, {"recognised_by_offset": recognised}, (in_time, visible)


def _agreement_after(tiles: np.ndarray, truth: Trajectory, switch_frame: int
                     ) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Tile agreement of parsed generated `tiles` with the true ones per rollout, summed over the
    frames from the switch on, the frames summed, and the mean by frame (for the plot)."""
    agreement = metrics.tile_agreement(tiles, truth.tiles)
    after = truth.alive[:, switch_frame:]
    return (agreement[:, switch_frame:] * after).sum(axis=1), after.sum(axis=1), _per_frame_mean(agreement, truth.alive)


def _known_map(switch_truth: Trajectory, control_truth: Trajectory, switch_frame: int) -> np.ndarray:
    """bool `[N, T + 1, h, w]`: the known map a switch should leave alone — tiles in view before the
    switch that the real game shows the same with and without it (a coin shower's coins, lava and
    enemies are not), while the player stands in the same place and is alive in both."""
    view = switch_truth.tiles.shape[-1]
    seen = regions.seen_tiles(switch_truth.positions, view, switch_frame)
    same_place = (switch_truth.positions == control_truth.positions).all(axis=-1)
    valid = same_place & switch_truth.alive & control_truth.alive
    return seen & (switch_truth.tiles == control_truth.tiles) & valid[..., None, None]


def _consistency(run: _Run, switch_pair, control_pair, switch_frame: int) -> tuple[dict, dict, tuple]:
    """Tile agreement around the switch, with it and on the matched control (the drop with an
    interval paired by rollout), and per rollout the known-map tiles counted and agreeing in each."""
    switch_tiles, control_tiles = _parse(run, switch_pair[1].frames), _parse(run, control_pair[1].frames)
    switched, switched_frames, switched_curve = _agreement_after(switch_tiles, switch_pair[0], switch_frame)
    control, control_frames, control_curve = _agreement_after(control_tiles, control_pair[0], switch_frame)
    drop, interval = metrics.ratio_difference_with_interval((control, control_frames), (switched, switched_frames),
                                                            seed=run.config.seed)
    known = _known_map(switch_pair[0], control_pair[0], switch_frame)[:, switch_frame:]
    known_switched = ((switch_tiles == switch_pair[0].tiles)[:, switch_frame:] & known).sum(axis=(1, 2, 3))
    known_control = ((control_tiles == control_pair[0].tiles)[:, switch_frame:] & known).sum(axis=(1, 2, 3))
    found = {"tile_agreement_switch": metrics.ratio_of_sums(switched, switched_frames),
             "tile_agreement_no_switch": metrics.ratio_of_sums(control, control_frames),
             "tile_agreement_drop": drop, "tile_agreement_drop_ci95": interval,
             "frames_after_switch": run.config.frames_after_switch}
    curves = {"agreement_by_frame": {"switch": switched_curve, "no_switch": control_curve}, "switch_frame": switch_frame}
    return found, curves, (known.sum(axis=(1, 2, 3)), known_switched, known_control)


def _known_map_measures(units: SwitchUnits, seed: int) -> dict[str, Any]:
    """The suite's `consistency.known_map_*` keys, from the per-switch units."""
    drop, interval = units.consistency_drop(seed)
    return {"known_map_agreement_switch": units.tile_agreement(True),
            "known_map_agreement_no_switch": units.tile_agreement(False),
            "known_map_drop": drop, "known_map_drop_ci95": interval, "known_map_tiles": int(units.counted.sum())}


@dataclass
class _SwitchFamily:
    reactivity: dict[str, Any]
    consistency: dict[str, Any]
    curves: dict[str, Any]
    scripts: tuple[Scenario, Scenario]  # the switch scenario and its no-switch control
    switch_pair: tuple[Trajectory, Trajectory]
    control_pair: tuple[Trajectory, Trajectory]
    targets: SwitchTargets
    units: SwitchUnits


def _switches(run: _Run) -> _SwitchFamily:
    """One held-out paraphrase switch per rollout and its matched control, replayed in truth and world."""
    config = run.config
    switched, control, targets = switch_scenarios(scenario_rng(config.seed, 1), config.switch_rollouts,
                                                  config.switch_frame + config.frames_after_switch,
                                                  config.switch_frame, run.classes)
    switch_pair, control_pair = _replay_pair(run, switched, seed_offset=2), _replay_pair(run, control, seed_offset=2)
    reactivity, reactivity_curves, (in_time, visible) = _reactivity(run, *switch_pair, targets)
    consistency, consistency_curves, known_map = _consistency(run, switch_pair, control_pair, config.switch_frame)
    units = SwitchUnits(list(targets.groups), in_time, visible, *known_map)
    consistency.update(_known_map_measures(units, config.seed))
    return _SwitchFamily(reactivity, consistency, {"reactivity": reactivity_curves, "consistency": consistency_curves},
                         (switched, control), switch_pair, control_pair, targets, units)


def _event_branch(run: _Run, switches: _SwitchFamily) -> dict[str, Any]:
    """The event-branch test on the switch family's scripts and true replays (see event_branch)."""
    config = run.config
    effects = event_effects(run.world, *switches.scripts, switches.switch_pair[0], switches.control_pair[0],
                            config.switch_frame, config.seed)
    return summarise_effects(*effects, switches.targets.groups, config.seed)


def measure_switches(world: Any, probes: Probes, config: SuiteConfig) -> SwitchUnits:
    """Only the switch family of the suite: per-switch units that pool across seeds (`switch_study`)."""
    return _switches(_new_run(world, probes, config)).units


# ---------------------------------------------------------------------------------- drift
def _drift(run: _Run, scenario: Scenario,
           long_scenario: Scenario | None) -> tuple[dict[str, Any], dict[str, Any], tuple[np.ndarray, np.ndarray]]:
    """The long rollouts window by window (see `drift`), and the single long rollout as `long_*` keys."""
    config = run.config
    reference = drift.record_reference(scenario, run.probes, config.drift_window, run.size)
    model = drift.record_model(run.world, reference, run.probes, config.seed + 3)
    found = drift.drift_measures(reference, model.stream)
    if long_scenario is not None:
        long_reference = drift.record_reference(long_scenario, run.probes, config.drift_window, run.size)
        long_found, _ = drift.long_rollout(run.world, long_reference, run.probes, config.seed + 6)
        found.update({f"long_{key}": value for key, value in long_found.items()})
    curves = {key: found[f"{key}_by_window"] for key in ("fd", "fd_real_floor", "tile_tv", "tile_tv_real_floor")}
    return found, curves, (reference.strip, model.strip)


# ---------------------------------------------------------------------------------- film strips
def _pairs_strip(truth: Trajectory, generated: Trajectory, rows: list[int], columns: list[int],
                 column_labels: list[str]) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Truth above model for each chosen rollout, at the chosen frames."""
    images, labels = [], []
    for row in rows:
        images += [truth.frames[row, columns], generated.frames[row, columns]]
        labels += [f"truth {row}", f"model {row}"]
    return images, labels, column_labels


def _powers_of_two_upto(last: int) -> list[int]:
    return [0] + [2**k for k in range(last.bit_length()) if 2**k <= last]


# ---------------------------------------------------------------------------------- the suite
def _film_strips(config: SuiteConfig, fidelity_pair: tuple[Trajectory, Trajectory],
                 switch_pair: tuple[Trajectory, Trajectory], targets: SwitchTargets,
                 drift_strips: tuple[np.ndarray, np.ndarray]
                 ) -> dict[str, tuple[list[np.ndarray], list[str], list[str]]]:
    horizon_columns = _powers_of_two_upto(config.horizons[-1])
    last_frame = config.switch_frame + config.frames_after_switch
    offsets = [-1] + _powers_of_two_upto(config.frames_after_switch)
    switch_columns = [config.switch_frame + k for k in offsets if config.switch_frame + k <= last_frame]
    # Time, weather and season change the whole frame, so their switches read best in a strip.
    frame_wide_rows = [row for row, group in enumerate(targets.groups) if group in ("time", "weather", "season")][:3]
    return {
        "filmstrip_rollout": _pairs_strip(*fidelity_pair, list(range(min(2, config.fidelity_rollouts))),
                                          horizon_columns, [f"t={c}" for c in horizon_columns]),
        "filmstrip_switch": _pairs_strip(*switch_pair, frame_wide_rows or [0], switch_columns,
                                         [f"{c - config.switch_frame:+d}" for c in switch_columns]),
        "filmstrip_drift": (list(drift_strips), ["truth 0", "model 0"],
                            [f"t={config.drift_window * (i + 1)}" for i in range(len(drift_strips[0]))]),
    }


def run_suite(world: Any, probes: Probes, config: SuiteConfig) -> SuiteResult:
    """Replay every scenario family in the truth and in `world`, and measure (see module docstring)."""
    run = _new_run(world, probes, config)
    # One tick per family of scenarios; shown on a terminal only (disable=None).
    progress = tqdm(total=4, desc="eval", unit="family", disable=None)

    fidelity_script = plain_scenario("fidelity", scenario_rng(config.seed, 0), config.fidelity_rollouts,
                                     config.horizons[-1])
    fidelity, fidelity_curves, *fidelity_pair, forced = _fidelity(run, fidelity_script)
    fidelity.update(rollout_measures.known_region(*fidelity_pair, forced, config.horizons, config.seed))
    fidelity_curves["known_psnr_by_step"] = rollout_measures.known_region_curve(*fidelity_pair)
    imagined, sprites = _imagination_and_sprites(run, fidelity_script, *fidelity_pair, forced)
    controllability = _controllability(run, fidelity_script, *fidelity_pair)
    controllability["rollout_inverse_dynamics"] = rollout_measures.rollout_inverse_dynamics(
        probes, fidelity_script.actions, *fidelity_pair, config.idm_steps)
    action_branch, collision = _branches(run)
    memory = _memory(run)
    progress.update(1)

    switches = _switches(run)
    switch_pair = switches.switch_pair
    detections = _reward_and_termination([tuple(fidelity_pair), switch_pair, switches.control_pair],
                                         config.event_tolerance)
    progress.update(1)

    drift_script = drift_scenario(scenario_rng(config.seed, DRIFT_FAMILY), config.drift_rollouts, config.drift_frames,
                                  config.drift_switch_every)
    long_script = drift_scenario(scenario_rng(config.seed, LONG_DRIFT_FAMILY), 1, config.long_rollout_frames,
                                 config.drift_switch_every) if config.long_rollout_frames else None
    drift_found, drift_curves, drift_strips = _drift(run, drift_script, long_script)
    progress.update(1)

    found = {"fidelity": fidelity, "imagined": imagined, "sprites": sprites, "drift": drift_found,
             "reactivity": switches.reactivity, "consistency": switches.consistency,
             "event_branch": _event_branch(run, switches), "controllability": controllability,
             "action_branch": action_branch, "collision": collision, "memory": memory, **detections}
    curves = {"fidelity": fidelity_curves, **switches.curves,
              "drift": drift_curves, "horizons": list(config.horizons)}
    strips = _film_strips(config, tuple(fidelity_pair), switch_pair, switches.targets, drift_strips)
    progress.update(1)
    progress.close()
    return SuiteResult(found, curves, strips)
