"""Does the world follow its actions? The action-branch test and the collision probe, cheap enough
for training logs and used by `worldsim eval` on more contexts.

    from worldsim.eval.action_branch import action_branch_test, collision_probe
    from worldsim.eval.branch_contexts import sample_branch_contexts
    contexts = sample_branch_contexts(24, context_frames=2, size=world.config.image_size, seed=0)  # once
    logs = action_branch_test(world, contexts, seed=0, probes=probes)    # dict of floats
    noop_share = collision_probe(world, contexts, probes, seed=0)        # float
    pushes = held_collision(world, contexts, probes, num_frames=8)      # bool [pushes, frames]

From each true context the world generates the next frame under every action with the *same*
noise, and once more under the true move with other noise:
- spread between moves: mean pixel MSE between the frames of two different moves (same noise);
- spread between seeds: mean pixel MSE between two noise draws under the same move. A world that
  ignores its actions has a move spread far below its seed spread; the truth's own spread between
  moves is reported beside them;
- teacher-forced PSNR against the true next frame with the true move and with a wrong move, and
  their difference (wrong minus true: clearly negative when the move matters);
- with the probes: inverse dynamics (IDM) on the generated pairs (last context frame, branch),
  for moves that scroll the view in the truth, for moves into a wall (should read noop: the
  collision test) and for noop (should read noop), each beside the same reading of the true pairs.

The held collision test pushes each move into a wall for several frames, every frame following
the world's own: in the game the wall stays shut for as long as the key is held, so each step
should read noop. A world can pass the one-frame test and still give way under a long push, which
is what an agent that learns inside the world finds and exploits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsim.eval import metrics
from worldsim.eval.branch_contexts import MOVES, NOOP, NUM_ACTIONS, BranchContexts
from worldsim.eval.next_frame import generate_held_frames, generate_next_frames


@dataclass(frozen=True)
class BranchFrames:
    """The generated branches of N contexts."""

    by_action: np.ndarray  # uint8 [N, A, H, W, 3]: under each action, one shared noise per context
    reseeded: np.ndarray  # uint8 [N, H, W, 3]: under the true move, other noise


def generate_branches(world, contexts: BranchContexts, seed: int = 0) -> BranchFrames:
    """Every action's next frame (noise `seed`) and the true move's again (noise `seed + 1`)."""
    n = contexts.num_contexts
    rows = np.concatenate([np.repeat(np.arange(n), NUM_ACTIONS), np.arange(n)])
    actions = np.concatenate([np.tile(np.arange(NUM_ACTIONS), n), contexts.true_action])
    # Two calls, one per seed: each call's rows share its seed's noise per context.
    shared = generate_next_frames(world, contexts.frames, contexts.actions, contexts.texts, rows[: n * NUM_ACTIONS],
                                  actions[: n * NUM_ACTIONS], seed)
    other = generate_next_frames(world, contexts.frames, contexts.actions, contexts.texts, rows[n * NUM_ACTIONS :],
                                 actions[n * NUM_ACTIONS :], seed + 1)
    return BranchFrames(shared.reshape(n, NUM_ACTIONS, *shared.shape[1:]), other)


def move_spread(frames: np.ndarray) -> np.ndarray:
    """Mean pixel MSE over pairs of different moves, per context: `[N, A, H, W, 3]` → `[N]`."""
    pairs = [(a, b) for i, a in enumerate(MOVES) for b in MOVES[i + 1 :]]
    return np.mean([metrics.mean_squared_error(frames[:, a], frames[:, b]) for a, b in pairs], axis=0)


@dataclass(frozen=True)
class IdmReading:
    """Inverse dynamics on one kind of branch: generated pairs and the matching true pairs."""

    correct: np.ndarray  # bool [M]: the IDM read the expected action from the generated pair
    truth_correct: np.ndarray  # bool [M]: ... from the true pair
    contexts: np.ndarray  # int [M]: context of each pair (for intervals over contexts)

    @property
    def pairs(self) -> int:
        return len(self.correct)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if self.pairs else float("nan")


@dataclass(frozen=True)
class BranchMeasures:
    """Per-context numbers behind the summary (so callers can put intervals on them)."""

    move_spread: np.ndarray  # float [N]
    seed_spread: np.ndarray  # float [N]
    truth_move_spread: np.ndarray  # float [N]
    psnr_true_move: np.ndarray  # float [N] dB
    psnr_wrong_move: np.ndarray  # float [N] dB
    idm: dict[str, IdmReading]  # "moved", "blocked", "still"

    def summary(self) -> dict[str, float]:
        moves, seeds = float(self.move_spread.mean()), float(self.seed_spread.mean())
        found = {
            "contexts": float(len(self.move_spread)),
            "move_spread_mse": moves,
            "seed_spread_mse": seeds,
            "move_to_seed_spread": moves / seeds if seeds > 0 else float("nan"),
            "truth_move_spread_mse": float(self.truth_move_spread.mean()),
            "psnr_true_move_db": float(self.psnr_true_move.mean()),
            "psnr_wrong_move_db": float(self.psnr_wrong_move.mean()),
            "wrong_minus_true_psnr_db": float((self.psnr_wrong_move - self.psnr_true_move).mean()),
        }
        for name, reading in self.idm.items():
            found[f"idm_{name}_accuracy"] = reading.accuracy
            found[f"idm_{name}_pairs"] = float(reading.pairs)
        return found


def idm_reading(probes, contexts: BranchContexts, generated: np.ndarray, select: np.ndarray,
                expected: np.ndarray) -> IdmReading:
    """IDM on the pairs (last context frame, branch) where `select` `[N, A]` holds; `expected` `[N, A]`
    is the action each pair should read as."""
    context_rows, actions = np.nonzero(select)
    before = contexts.frames[context_rows, -1]
    read = probes.infer_actions(before, generated[context_rows, actions])
    read_truth = probes.infer_actions(before, contexts.next_frames[context_rows, actions])
    wanted = expected[context_rows, actions]
    return IdmReading(read == wanted, read_truth == wanted, context_rows)


def idm_readings(probes, contexts: BranchContexts, generated: np.ndarray) -> dict[str, IdmReading]:
    """moved: scrolling moves read as themselves; blocked: moves into walls read as noop; still: noop as noop."""
    n = contexts.num_contexts
    every_action = np.tile(np.arange(NUM_ACTIONS), (n, 1))
    still = np.zeros((n, NUM_ACTIONS), dtype=bool)
    still[:, NOOP] = contexts.alive[:, NOOP]
    scrolling = contexts.moved & contexts.alive
    return {"moved": idm_reading(probes, contexts, generated, scrolling, every_action),
            "blocked": idm_reading(probes, contexts, generated, contexts.blocked, np.full_like(every_action, NOOP)),
            "still": idm_reading(probes, contexts, generated, still, every_action)}


def branch_measures(world, contexts: BranchContexts, seed: int = 0, probes=None) -> BranchMeasures:
    """Generate the branches and measure them (see the module docstring)."""
    branches = generate_branches(world, contexts, seed)
    rows = np.arange(contexts.num_contexts)
    true_frames = contexts.next_frames[rows, contexts.true_action]
    return BranchMeasures(
        move_spread=move_spread(branches.by_action),
        seed_spread=metrics.mean_squared_error(branches.by_action[rows, contexts.true_action], branches.reseeded),
        truth_move_spread=move_spread(contexts.next_frames),
        psnr_true_move=metrics.psnr(branches.by_action[rows, contexts.true_action], true_frames),
        psnr_wrong_move=metrics.psnr(branches.by_action[rows, contexts.wrong_action], true_frames),
        idm={} if probes is None else idm_readings(probes, contexts, branches.by_action),
    )


def action_branch_test(world, contexts: BranchContexts, seed: int = 0, probes=None) -> dict[str, float]:
    """The action-branch test as a flat dict of floats for training logs (see the module docstring);
    without probes the IDM entries are left out."""
    return branch_measures(world, contexts, seed, probes).summary()


def collision_probe(world, contexts: BranchContexts, probes, seed: int = 0) -> float:
    """Share of generated moves into walls that the IDM reads as noop (NaN if no context has a wall).

    Generates only the blocked branches, so it costs one frame per forced move: a one-frame push.
    """
    read = held_collision(world, contexts, probes, num_frames=1, seed=seed)
    return float(read.mean()) if len(read) else float("nan")


def held_collision(world, contexts: BranchContexts, probes, num_frames: int = 8, seed: int = 0) -> np.ndarray:
    """bool `[pushes, num_frames]`: whether the IDM reads each step of a move into a wall held for
    `num_frames` frames as noop (one row per blocked context and move, as `contexts.blocked` lists them)."""
    context_rows, actions = np.nonzero(contexts.blocked)
    if not len(context_rows):
        return np.zeros((0, num_frames), dtype=bool)
    held = generate_held_frames(world, contexts.frames, contexts.actions, contexts.texts, context_rows, actions, seed,
                                num_frames)
    before = np.concatenate([contexts.frames[context_rows, -1][:, None], held[:, :-1]], axis=1)
    pushes, frame_shape = held.shape[0], held.shape[2:]
    read = probes.infer_actions(before.reshape(-1, *frame_shape), held.reshape(-1, *frame_shape))
    return read.reshape(pushes, num_frames) == NOOP
