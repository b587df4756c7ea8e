"""What training logs every few hundred steps to show, within minutes, whether a world is learning
its moves: the action-branch test and the collision probe on a fixed set of true contexts.

    diagnose = training_diagnostics(game=dataset.world, image_size=64)   # None: no ground truth
    diagnose(world)  # -> {"branch/move_spread": ..., "branch/idm_moved": ..., "branch/collision_noop": ...}

Only games with a ground truth can be probed this way; for the others there is nothing to call.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from worldsim.eval.action_branch import action_branch_test
from worldsim.eval.branch_contexts import sample_branch_contexts
from worldsim.eval.probes import Probes

# Small enough for a few seconds of CPU per call, large enough that a broken world shows.
TRAINING_CONTEXTS = 24

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

    def diagnose(world) -> dict[str, float]:
        with torch.no_grad():
            measures = action_branch_test(world, contexts, seed=seed, probes=probes)
        return {f"branch/{key}": float(value) for key, value in measures.items()}

    return diagnose
