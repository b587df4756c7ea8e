"""What training logs every few hundred steps to show, within minutes, whether a world is learning
its moves, its events and its enemies: the action-branch test and the collision probe on a fixed
set of true contexts, the event-branch test on a fixed set of switches (four per event group), and
the enemies the teacher-forced next frame keeps on a fixed set of true rollouts. `reader_diagnostics`
runs the enemy probe on a history reader's guess instead (stage `reader`).

    diagnose = training_diagnostics(game=dataset.world, image_size=64)   # None: no ground truth
    diagnose(world)  # -> {"branch/move_spread": ..., "branch/idm_moved": ..., "branch/collision_noop": ...,
                     #     "events/effect_ratio": ..., "events/coins_effect_ratio": ..., ...,
                     #     "sprites/enemies_kept_holding": ..., "sprites/enemies_kept_stepping": ...,
                     #     "sprites/stepping_held": ..., "sprites/stepping_wrong_way": ..., "sprites/stepping_missing": ...}

Only games with a ground truth can be probed this way; for the others there is nothing to call.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from worldsim.eval.action_branch import action_branch_test
from worldsim.eval.branch_contexts import sample_branch_contexts
from worldsim.eval.event_branch import event_effects, summarise_effects
from worldsim.eval.probes import Probes
from worldsim.eval.replay import collect, reader_guessed_frames, teacher_forced_frames, truth_steps
from worldsim.eval.rollout_measures import enemies_kept_next_frame
from worldsim.eval.scenarios import plain_scenario, scenario_rng, switch_scenarios
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import events

# Small enough for a few seconds of CPU per call, large enough that a broken world shows.
TRAINING_CONTEXTS = 24
SWITCHES_PER_GROUP = 4
SWITCH_FRAME = 2  # the switch frame's true past: two frames under the old event
# Teacher-forced rollouts for the enemy probe: about 320 true enemy tiles of each motion (seed 0), so a
# 10-point move of the stepping share (the one that decides whether enemies last along rollouts) shows.
ENEMY_ROLLOUTS, ENEMY_FRAMES = 16, 32

Diagnose = Callable[[object], dict[str, float]]


def training_diagnostics(game: str, image_size: int, seed: int = 0) -> Diagnose | None:
    """A function of a world that returns the action-branch measures with "branch/" keys, or None
    when `game` has no ground truth (its `GameSpec.ground_truth`) or its probes are for another frame size."""
    probes = _probes_for(game, image_size)
    if probes is None:
        return None
    contexts = sample_branch_contexts(TRAINING_CONTEXTS, context_frames=2, size=image_size, seed=seed)
    event_branch = _event_branch(image_size, seed)
    enemies_kept = _enemies_kept(probes, image_size, seed)

    def diagnose(world) -> dict[str, float]:
        with torch.no_grad():
            measures = action_branch_test(world, contexts, seed=seed, probes=probes)
        return {**{f"branch/{key}": float(value) for key, value in measures.items()}, **event_branch(world),
                **enemies_kept(world)}

    return diagnose


def reader_diagnostics(game: str, image_size: int, seed: int = 0) -> Diagnose | None:
    """The enemy probe on a history reader's guess of each next frame (the world's
    `transformer.read_next`, decoded) rather than on the sampled frame, with "reader/" keys; None
    where `training_diagnostics` is None. What the reader keeps is what the stem can read from it."""
    probes = _probes_for(game, image_size)
    if probes is None:
        return None
    enemies_kept = _enemies_kept(probes, image_size, seed, forced_frames=reader_guessed_frames)

    def diagnose(world) -> dict[str, float]:
        with torch.no_grad():
            found = enemies_kept(world)
        return {key.replace("sprites/", "reader/"): value for key, value in found.items()}

    return diagnose


def _probes_for(game: str, image_size: int) -> Probes | None:
    """The frame parser for `game`'s frames of `image_size`, or None: no ground truth, or probes
    trained on another frame size."""
    from worldsim.games import shipped_game

    spec = shipped_game(game)
    if spec is None or spec.ground_truth is None:
        return None
    probes = Probes.load()
    return probes if probes.metadata.get("training", {}).get("size") == image_size else None


def _event_branch(image_size: int, seed: int) -> Diagnose:
    """The event-branch test on fixed switches, replayed in the true game once: the effect ratio
    overall and per group, with "events/" keys."""
    classes = EventClasses.from_world(image_size)
    switched, control, targets = switch_scenarios(scenario_rng(seed, 1), SWITCHES_PER_GROUP * len(events.GROUPS),
                                                  SWITCH_FRAME, SWITCH_FRAME, classes)
    truth, truth_control = (collect(truth_steps(script, image_size, classes)) for script in (switched, control))

    def diagnose(world) -> dict[str, float]:
        effects = event_effects(world, switched, control, truth, truth_control, SWITCH_FRAME, seed)
        found = summarise_effects(*effects, targets.groups, seed)
        return {"events/effect_ratio": found["effect_ratio"],
                **{f"events/{group}_effect_ratio": block["effect_ratio"] for group, block in found["by_group"].items()}}

    return diagnose


def _enemies_kept(probes: Probes, image_size: int, seed: int, forced_frames=None) -> Diagnose:
    """Of the true enemy tiles along fixed true rollouts, the share the world's teacher-forced next
    frame (or what `forced_frames` makes of the true past instead) shows too, for enemies holding their tile and enemies stepping onto it, and where the
    stepping ones went instead (held, the wrong way, missing), with "sprites/" keys
    (`rollout_measures.enemies_kept_next_frame`; the stepping share needs the enemy's past)."""
    classes = EventClasses.from_world(image_size)
    scenario = plain_scenario("training-enemies", scenario_rng(seed, 2), ENEMY_ROLLOUTS, ENEMY_FRAMES)
    truth = collect(truth_steps(scenario, image_size, classes))
    texts = scenario.texts_in_force()

    def diagnose(world) -> dict[str, float]:
        forced = (forced_frames or teacher_forced_frames)(world, truth.frames, scenario.actions, texts, seed)
        tiles = probes.parse_tiles(forced.reshape(-1, *forced.shape[2:]))
        found = enemies_kept_next_frame(truth, tiles.reshape(*forced.shape[:2], *tiles.shape[1:]))
        outcomes = {f"sprites/stepping_{name}": float(share)
                    for name, share in found["teacher_forced_stepping_outcomes"].items() if name != "kept"}
        return {**{f"sprites/enemies_kept_{motion}": float(share)
                   for motion, share in found["teacher_forced_enemies_kept"].items()}, **outcomes}

    return diagnose
