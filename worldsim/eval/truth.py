"""The game the ground-truth suite measures against, reached through its `GameSpec` (worldsim.games).

The suite's scenarios, probes and measures replay one game's true simulator: its actions, event
vocabulary (groups, paraphrases), tile classes and batched simulator all come from the spec.
"""
from __future__ import annotations

from types import ModuleType

from worldsim.games import DEFAULT_GAME, GameSpec, shipped_game

# The game the suite's scenarios and the bundled probes are built for.
SUITE_GAME = DEFAULT_GAME


def suite_game() -> GameSpec:
    """The spec of `SUITE_GAME`, checked to have what the suite replays and labels."""
    game = shipped_game(SUITE_GAME)
    if game is None or game.ground_truth is None or game.events is None or not game.tile_classes:
        raise RuntimeError(f"the ground-truth suite needs game {SUITE_GAME!r} shipped with its ground_truth, "
                           "events and tile_classes")
    return game


TRUTH = suite_game()
events: ModuleType = TRUTH.events  # type: ignore[assignment]  # its event vocabulary (checked above)
