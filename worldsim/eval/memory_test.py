"""The memory test: walk N tiles out along a free path and N back, then compare the frames of the
way back with the frames of the way out at the same positions.

Paths are found in the truth: from a world's start tile, N moves in one direction and N in the
opposite one, kept only where every move scrolls and the player survives. With N at most half the
model's cache window, every frame of the way out is still in the cache on the way back, so a
world that remembers draws the same tiles again. Agreement is read by the frame parser:
generated way back vs generated way out (memory), generated way back vs the true tiles, and the
truth's own agreement (below 1 because enemies walk and coins may be collected).

A world that ignores its moves also repeats its frames; read this test next to inverse dynamics.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from worldsim.eval import metrics
from worldsim.eval.replay import Trajectory, collect, truth_steps
from worldsim.eval.scenarios import Scenario, held_out_text, map_seeds
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import events

OPPOSITE = {1: 2, 2: 1, 3: 4, 4: 3}  # up <-> down, left <-> right
_CANDIDATES_PER_ROLLOUT = 4
_ROUNDS = 3  # candidate rounds, each larger, before giving up


def out_and_back(rng: np.random.Generator, num_rollouts: int, steps_out: int, size: int,
                 event_classes: EventClasses) -> tuple[Scenario, Trajectory]:
    """`num_rollouts` out-and-back walks of `steps_out` tiles on free paths, and their truth replay.

    Candidates (a start tile, a direction, an event or none) are drawn in rounds, each larger,
    until enough paths are free; a ValueError says so when they never are."""
    for attempt in range(1, _ROUNDS + 1):
        candidates, truth = _candidate_walks(rng, _CANDIDATES_PER_ROLLOUT * attempt * num_rollouts, steps_out, size,
                                             event_classes)
        free = np.flatnonzero((truth.moved[:, 1:] & truth.alive[:, 1:]).all(axis=1))[:num_rollouts]
        if len(free) == num_rollouts:
            chosen = Scenario(candidates.name, candidates.seeds[free], candidates.actions[free],
                              [candidates.switches[i] for i in free])
            return chosen, _rows(truth, free)
    raise ValueError(f"memory test: found only {len(free)} free out-and-back paths of {steps_out} tiles, "
                     f"needed {num_rollouts}")


def _candidate_walks(rng: np.random.Generator, count: int, steps_out: int, size: int,
                     event_classes: EventClasses) -> tuple[Scenario, Trajectory]:
    directions = rng.integers(1, 5, count)
    back = np.array([OPPOSITE[int(d)] for d in directions])
    actions = np.concatenate([np.repeat(directions[:, None], steps_out, axis=1),
                              np.repeat(back[:, None], steps_out, axis=1)], axis=1).astype(np.int64)
    switches = []
    for _ in range(count):
        event = events.EVENT_TYPES[int(rng.integers(len(events.EVENT_TYPES)))]
        switches.append({0: held_out_text(rng, event)} if rng.random() < 0.5 else {})
    candidates = Scenario(f"memory-{steps_out}", map_seeds(rng, count), actions, switches)
    return candidates, collect(truth_steps(candidates, size, event_classes))


def _rows(trajectory: Trajectory, rows: np.ndarray) -> Trajectory:
    return Trajectory(*(None if value is None else (
        {k: v[rows] for k, v in value.items()} if isinstance(value, dict) else value[rows])
        for value in (getattr(trajectory, name) for name in Trajectory.__dataclass_fields__)))


def memory_agreement(generated_tiles: np.ndarray, true_tiles: np.ndarray, steps_out: int, seed: int) -> dict[str, Any]:
    """Tile agreement of the way back with the way out at the same positions.

    generated_tiles: the parser's tiles of the generated frames, true_tiles: the truth's tiles, both
    `[N, 2 * steps_out + 1, h, w]`; frame 2N - k is where frame k was (k = 0..N-1).
    """
    out = np.arange(steps_out)
    back = 2 * steps_out - out
    per_rollout = {
        "agreement_with_outgoing": metrics.tile_agreement(generated_tiles[:, back], generated_tiles[:, out]),
        "agreement_with_truth": metrics.tile_agreement(generated_tiles[:, back], true_tiles[:, back]),
        "truth_agreement": metrics.tile_agreement(true_tiles[:, back], true_tiles[:, out]),
    }
    found: dict[str, Any] = {"rollouts": len(generated_tiles), "frames_compared": steps_out}
    for name, table in per_rollout.items():
        means = table.mean(axis=1)
        found[name], found[f"{name}_ci95"] = metrics.ratio_with_interval(means, np.ones(len(means)), seed=seed)
    return found
