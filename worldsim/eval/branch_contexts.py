"""True contexts with the truth's outcome of every action: what the action-branch and collision
tests start from (pure numpy, the suite's true game: `worldsim.eval.truth`).

    contexts = sample_branch_contexts(num_contexts=24, context_frames=2, size=64, seed=0)

Each context is `context_frames` consecutive real frames of a world played with the datasets'
exploration policy, under a held-out event paraphrase or none; the true game is deterministic, so
replaying the same seed, events and actions in one copy per action gives the truth's next frame
under every action, and whether that action moved the player (a move into a wall does not) or
ended the episode. Contexts are chosen so that every one has a move that scrolls
and about `blocked_share` of them also have a move into a wall.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsim.eval.scenarios import exploration_actions, held_out_text, map_seeds
from worldsim.eval.truth import TRUTH, events

NUM_ACTIONS = TRUTH.num_actions
NOOP = 0
MOVES = tuple(range(1, NUM_ACTIONS))


@dataclass(frozen=True)
class BranchContexts:
    """N true contexts and the truth's next frame under each of the A actions."""

    frames: np.ndarray  # uint8 [N, K, H, W, 3]; the branches continue from the last frame
    actions: np.ndarray  # int64 [N, K - 1]: the action taken after each context frame but the last
    texts: list[str]  # [N] event text in force over the whole context ("" = none)
    next_frames: np.ndarray  # uint8 [N, A, H, W, 3]: the truth's next frame under each action
    moved: np.ndarray  # bool [N, A]: the action moved the player
    alive: np.ndarray  # bool [N, A]: the player survived the action
    true_action: np.ndarray  # int64 [N]: a move that scrolls the view (the "true" continuation)
    wrong_action: np.ndarray  # int64 [N]: another move, for the wrong-action test

    def __post_init__(self) -> None:
        if self.frames.ndim != 5 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [N, K, H, W, 3], got {self.frames.dtype} {self.frames.shape}")
        n, k = self.frames.shape[:2]
        expected = {"actions": (n, k - 1), "next_frames": (n, NUM_ACTIONS, *self.frames.shape[2:]),
                    "moved": (n, NUM_ACTIONS), "alive": (n, NUM_ACTIONS), "true_action": (n,), "wrong_action": (n,)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"BranchContexts.{name} must have shape {shape}, got {getattr(self, name).shape}")
        if len(self.texts) != n:
            raise ValueError(f"BranchContexts.texts needs one text per context ({n}), got {len(self.texts)}")

    @property
    def num_contexts(self) -> int:
        return self.frames.shape[0]

    @property
    def blocked(self) -> np.ndarray:
        """bool [N, A]: moves into a wall (the player stays and survives); noop is never blocked."""
        blocked = ~self.moved & self.alive
        blocked[:, NOOP] = False
        return blocked

    def select(self, rows: np.ndarray) -> "BranchContexts":
        """The contexts at `rows` (int indices or a bool mask)."""
        return BranchContexts(self.frames[rows], self.actions[rows], [self.texts[i] for i in np.arange(
            self.num_contexts)[rows]], self.next_frames[rows], self.moved[rows], self.alive[rows],
            self.true_action[rows], self.wrong_action[rows])


@dataclass(frozen=True)
class _Played:
    """Candidate contexts played in the true game: one world copy per action."""

    frames: np.ndarray  # uint8 [C, K, H, W, 3]
    actions: np.ndarray  # int64 [C, K - 1]
    texts: list[str]
    next_frames: np.ndarray  # uint8 [C, A, H, W, 3]
    moved: np.ndarray  # bool [C, A]
    alive: np.ndarray  # bool [C, A]
    warmed_up: np.ndarray  # bool [C]: alive through the whole context


def _play_candidates(rng: np.random.Generator, count: int, context_frames: int, warmup: int,
                     size: int) -> _Played:
    seeds = map_seeds(rng, count)
    steps = warmup + context_frames - 1
    script = exploration_actions(rng, count, steps)
    texts = []
    for _ in range(count):
        event = events.EVENT_TYPES[int(rng.integers(len(events.EVENT_TYPES)))]
        texts.append(held_out_text(rng, event) if rng.random() < 0.5 else "")
    copies = np.repeat(np.arange(count), NUM_ACTIONS)  # world row -> candidate
    world = TRUTH.ground_truth(count * NUM_ACTIONS, size, 0)
    world.reset(seeds[copies])
    world.apply_events(events.parse_events([texts[c] for c in copies]))
    frames = []
    for step in range(steps):
        if step >= warmup:
            frames.append(world.render()[::NUM_ACTIONS])
        world.step(script[copies, step])
    frames.append(world.render()[::NUM_ACTIONS])
    warmed_up = ~world.terminated[::NUM_ACTIONS]
    before = np.array([world.state(i)["position"] for i in range(0, count * NUM_ACTIONS)])
    _, terminated = world.step(np.tile(np.arange(NUM_ACTIONS), count))
    after = np.array([world.state(i)["position"] for i in range(0, count * NUM_ACTIONS)])
    shape = (count, NUM_ACTIONS)
    return _Played(np.stack(frames, axis=1), script[:, warmup:], texts,
                   world.render().reshape(count, NUM_ACTIONS, size, size, 3),
                   np.any(after != before, axis=1).reshape(shape), (~terminated).reshape(shape), warmed_up)


def _choose(played: _Played, num_contexts: int, blocked_share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of the chosen candidates: alive, with a scrolling move, about `blocked_share` with a wall."""
    moves = list(MOVES)
    scrolls = (played.moved & played.alive)[:, moves].any(axis=1)
    walled = (~played.moved & played.alive)[:, moves].any(axis=1)
    usable = played.warmed_up & scrolls
    with_wall = np.flatnonzero(usable & walled)
    without_wall = np.flatnonzero(usable & ~walled)
    walls = min(len(with_wall), int(round(blocked_share * num_contexts)))
    rest = min(len(without_wall), num_contexts - walls)
    walls = min(len(with_wall), num_contexts - rest)  # fill up with walled contexts if too few open ones
    chosen = np.concatenate([with_wall[:walls], without_wall[:rest]])
    return np.sort(rng.permutation(chosen))


def sample_branch_contexts(num_contexts: int, context_frames: int = 2, size: int = 64, seed: int = 0,
                           blocked_share: float = 0.5, warmup: tuple[int, int] = (2, 12)) -> BranchContexts:
    """`num_contexts` true contexts of `context_frames` frames (see the module docstring).

    The worlds play `warmup` (a range of steps) before their context starts, so the contexts sit
    at varied places; candidates are drawn until enough qualify (a ValueError if they never do).
    """
    if num_contexts < 1 or context_frames < 1:
        raise ValueError(f"need num_contexts >= 1 and context_frames >= 1, got {num_contexts}, {context_frames}")
    if not 0.0 <= blocked_share <= 1.0:
        raise ValueError(f"blocked_share must be in [0, 1], got {blocked_share}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB7A4C4]))
    pieces: list[_Played] = []
    found = 0
    for _ in range(8):
        played = _play_candidates(rng, 2 * num_contexts, context_frames,
                                  int(rng.integers(warmup[0], warmup[1] + 1)), size)
        pieces.append(played)
        found += int((played.warmed_up & (played.moved & played.alive)[:, list(MOVES)].any(axis=1)).sum())
        if found >= 2 * num_contexts:
            break
    played = _Played(*(np.concatenate([getattr(p, name) for p in pieces]) if name != "texts"
                       else [t for p in pieces for t in p.texts] for name in _Played.__dataclass_fields__))
    chosen = _choose(played, num_contexts, blocked_share, rng)
    if len(chosen) < num_contexts:
        raise ValueError(f"found only {len(chosen)} usable contexts of the {num_contexts} asked for")
    return _with_continuations(played, chosen, rng)


def _with_continuations(played: _Played, chosen: np.ndarray, rng: np.random.Generator) -> BranchContexts:
    """A scrolling move as the true continuation of each context and a different move as the wrong one."""
    true_action, wrong_action = [], []
    for row in chosen:
        scrolling = [a for a in MOVES if played.moved[row, a] and played.alive[row, a]]
        true = scrolling[int(rng.integers(len(scrolling)))]
        others = [a for a in MOVES if a != true]
        true_action.append(true)
        wrong_action.append(others[int(rng.integers(len(others)))])
    return BranchContexts(played.frames[chosen], played.actions[chosen], [played.texts[i] for i in chosen],
                          played.next_frames[chosen], played.moved[chosen], played.alive[chosen],
                          np.array(true_action, dtype=np.int64), np.array(wrong_action, dtype=np.int64))
