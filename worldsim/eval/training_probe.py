"""What training logs every few hundred steps to show, within minutes, whether a world is learning
its moves and its events: the action-branch test and the collision probe on a fixed set of true
contexts, and the event-branch test on a fixed set of switches (four per event group).

    diagnose = training_diagnostics(game=dataset.world, image_size=64)   # None: no ground truth
    diagnose(world)  # -> {"branch/move_spread": ..., "branch/idm_moved": ..., "branch/collision_noop": ...,
                     #     "events/effect_ratio": ..., "events/coins_effect_ratio": ..., ...}

Only games with a ground truth can be probed this way; for the others there is nothing to call.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from worldsim.eval.action_branch import action_branch_test
from worldsim.eval.branch_contexts import sample_branch_contexts
from worldsim.eval.event_branch import event_effects, summarise_effects
from worldsim.eval.probes import Probes
from worldsim.eval.replay import collect, truth_steps
from worldsim.eval.scenarios import scenario_rng, switch_scenarios
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import events

# Small enough for a few seconds of CPU per call, large enough that a broken world shows.
TRAINING_CONTEXTS = 24
SWITCHES_PER_GROUP = 4
SWITCH_FRAME = 2  # the switch frame's true past: two frames under the old event

Diagnose = Callable[[object], dict[str, float]]


def training_diagnostics(game: str, image_size: int, seed: int = 0) -> Diagnose | None:
    """A function of a world that returns the action-branch measures with "branch/" keys, or None
    when `game` has no ground truth (its `GameSpec.ground_truth`) or its probes are for another frame size."""
    from worldsim.games import shipped_game

    spec = shipped_game(game)
    if spec is None or spec.ground_truth is None:
        return None
    probes = Probes.load()
    if probes.metadata.get("training", {}).get("size") != image_size:
        return None
    contexts = sample_branch_contexts(TRAINING_CONTEXTS, context_frames=2, size=image_size, seed=seed)
    event_branch = _event_branch(image_size, seed)

    def diagnose(world) -> dict[str, float]:
        with torch.no_grad():
            measures = action_branch_test(world, contexts, seed=seed, probes=probes)
        return {**{f"branch/{key}": float(value) for key, value in measures.items()}, **event_branch(world)}

    return diagnose


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
