"""Does the world pay what the game pays? Fixed policies played in both, step by step, side by side.

The real Explorer and the neural world start from the same first frames (real maps under the task's
event) and take the same actions: a held direction ("up", "right", ...), uniformly random moves,
two directions in turn ("up-down", "left-right": back and forth over the same tiles, where the
game pays a coin once and a world that redraws a collected coin pays it again), or, as "agent", a
trained agent acting on each side's own frames (`--agent`, saved by `ppo_in_imagination.py
--save-agents`): a world that pays fixed policies what the game pays may still not pay a policy
that steers by what it sees.
For each policy and stretch of steps the script reports, in the game and in the world, the coins
collected per step, the episodes ended, and the share of steps the inverse-dynamics probe reads as
a move (the view scrolled): in the game a held direction soon stops at a wall, so a world that
keeps scrolling there lets the player through walls. The coin ledger of the parsed views tells
where a world's coins come from: in the game coins come into view with the scroll and vanish only
under the player, so coins that appear on ground already in view are the world's own invention, and
pay a coin-seeker what the game never would. An agent trained inside the world learns
whatever the world pays for, so this is the first check when imagination-trained RL does not
transfer (README, "Reinforcement learning inside the world").

    python examples/world_vs_game.py --event "coins rain from the sky" --episodes 128 --steps 128 \
        --out runs/world_vs_game.json
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the worldsim/ environments)
from worldsim.data.atomic import atomic_write_json
from worldsim.envs.explorer import ACTIONS
from worldsim.data.machine import describe_machine
from worldsim.eval.probes import Probes
from worldsim.eval.report import json_ready
from worldsim.eval.tile_ledger import tile_ledger, view_steps

ALTERNATING = ("up-down", "left-right")  # two moves in turn, back and forth
FIXED = (*ACTIONS, "random", *ALTERNATING)  # a held action by name, uniformly random, or alternating;
# "agent" is the policy of --agent, acting on what it sees
Policy = Callable[[np.ndarray, int], np.ndarray]  # (frames [N, H, W, 3], step) -> actions [N]
STRETCHES = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128))
LEDGER = ("visible", "revealed", "appeared", "vanished")  # coins in view, and where they came from


@dataclass
class Args:
    checkpoint: str | None = None  # the neural world (None: the default one)
    device: str = "cpu"
    event: str = ""  # every episode starts under this event
    episodes: int = 128  # per policy, played as one batch in each env
    steps: int = 128
    policies: str = "up,right,random"
    seed: int = 1_000_000  # the maps (the PPO example evaluates on these)
    agent: str = ""  # the policy "agent": weights saved by ppo_in_imagination.py --save-agents
    out: str = "runs/world_vs_game.json"


def policy_actions(name: str, steps: int, episodes: int, seed: int) -> np.ndarray:
    """Actions [steps, episodes] of a held action (by name), of uniformly random moves, or of two
    moves in turn (the first one first)."""
    if name not in FIXED:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(FIXED)}")
    if name == "random":
        return np.random.default_rng(seed).integers(len(ACTIONS), size=(steps, episodes))
    if name in ALTERNATING:
        pair = np.array([ACTIONS.index(move) for move in name.split("-")])
        return np.repeat(pair[np.arange(steps) % 2][:, None], episodes, axis=1)
    return np.full((steps, episodes), ACTIONS.index(name))


def saved_agent_policy(path: str, frame_shape: tuple[int, ...], seed: int) -> Policy:
    """A saved PPO agent (examples/ppo_in_imagination.py) sampling its actions from the frames it is
    given, with its own seeded generator so that game and world draw alike."""
    examples = str(Path(__file__).resolve().parent)  # the agent's network lives in the PPO example
    if examples not in sys.path:
        sys.path.insert(0, examples)
    from ppo_in_imagination import load_agent

    agent = load_agent(path, frame_shape, len(ACTIONS))
    generator = torch.Generator().manual_seed(seed)

    def choose(frames: np.ndarray, step: int) -> np.ndarray:
        with torch.no_grad():
            return agent.act(torch.as_tensor(np.asarray(frames)), generator).numpy()
    return choose


def fixed_policy(actions: np.ndarray) -> Policy:
    """Play the precomputed actions [steps, episodes], whatever the frames show."""
    return lambda frames, step: actions[step]


def play(envs: gym.vector.VectorEnv, policy: Policy, steps: int, probes: Probes,
         **reset: Any) -> dict[str, np.ndarray]:
    """Per step and episode [T, N]: coin collected, -1 paid (in the game only with an episode's end;
    a world's reward model may pay it alone), episode ended, view scrolled (probe reads a move), and
    the coin ledger of the parsed views (coins in view, revealed by the scroll, appeared in ground
    in view before, vanished; `worldsim.eval.tile_ledger`); steps after an episode's end count as
    nothing."""
    previous, _ = envs.reset(**reset)
    count, coin = envs.num_envs, probes.spec.tile_classes.index("coin")
    found = {name: np.zeros((steps, count), dtype=bool) for name in ("coin", "penalty", "ended", "moved")}
    found.update({f"coins_{name}": np.zeros((steps, count), dtype=np.int64) for name in LEDGER})
    running = np.ones(count, dtype=bool)
    tiles_before = probes.parse_tiles(previous)
    for t in range(steps):
        frames, rewards, terminated, _, _ = envs.step(policy(previous, t))
        tiles_after = probes.parse_tiles(frames)
        ledger = tile_ledger(tiles_before, tiles_after, view_steps(tiles_before, tiles_after), coin)
        for name in LEDGER:
            found[f"coins_{name}"][t] = np.where(running, ledger[name], 0)
        found["coin"][t] = running & (rewards > 0.5)
        found["penalty"][t] = running & (rewards < -0.5)
        found["ended"][t] = running & terminated
        found["moved"][t] = running & (probes.infer_actions(previous, frames) != 0)
        running &= ~terminated
        previous, tiles_before = frames, tiles_after
    envs.close()
    return found


def stretch_summary(found: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Coins and -1s per step, episodes ended, scrolled share and the coin ledger per step, per
    stretch of steps."""
    steps = len(found["coin"])
    summary = {}
    for begin, end in STRETCHES:
        if begin < steps:
            part = {name: values[begin:end] for name, values in found.items()}
            summary[f"{begin}-{min(end, steps)}"] = {
                "coins_per_step": float(part["coin"].mean()), "penalties_per_step": float(part["penalty"].mean()),
                "episodes_ended": int(part["ended"].sum()), "moved_share": float(part["moved"].mean()),
                **{f"coins_{name}_per_step": float(part[f"coins_{name}"].mean()) for name in LEDGER}}
    return summary


def returns(found: dict[str, np.ndarray]) -> dict[str, float]:
    """Coins collected per episode, mean and standard error: the Explorer's +1 rewards (the -1 of an
    episode's end is left out, the ends are counted apart)."""
    coins = found["coin"].sum(axis=0)
    return {"mean": float(coins.mean()), "stderr": float(coins.std(ddof=1) / np.sqrt(len(coins)))}


def policy_for(name: str, args: Args, frame_shape: tuple[int, ...]) -> Policy:
    """A fresh policy of that name for one side (the agent's sampling restarts from its seed)."""
    if name == "agent":
        if not args.agent:
            raise ValueError("the policy 'agent' needs --agent PATH (ppo_in_imagination.py --save-agents)")
        return saved_agent_policy(args.agent, frame_shape, args.seed)
    return fixed_policy(policy_actions(name, args.steps, args.episodes, args.seed))


def run(args: Args) -> dict[str, Any]:
    start = time.perf_counter()
    probes = Probes.load(device=args.device)
    make = {"game": lambda: gym.make_vec("worldsim/Explorer-v0", num_envs=args.episodes, max_episode_steps=None,
                                         vectorization_mode="vector_entry_point", event=args.event),
            "world": lambda: gym.make_vec("worldsim/NeuralExplorer-v0", num_envs=args.episodes, max_episode_steps=None,
                                          vectorization_mode="vector_entry_point", checkpoint=args.checkpoint,
                                          device=args.device, event=args.event)}
    game = make["game"]()
    first, _ = game.reset(seed=args.seed)
    game.close()
    results = {}
    for name in args.policies.split(","):
        found = {"game": play(make["game"](), policy_for(name, args, first.shape[1:]), args.steps, probes,
                              seed=args.seed),
                 "world": play(make["world"](), policy_for(name, args, first.shape[1:]), args.steps, probes,
                               seed=args.seed, options={"context": first})}
        results[name] = {side: {"return": returns(f), "by_steps": stretch_summary(f)} for side, f in found.items()}
        print(name, {side: round(r["return"]["mean"], 2) for side, r in results[name].items()}, flush=True)
    return {"policies": results, "args": asdict(args), "wall_s": round(time.perf_counter() - start, 2),
            "machine": describe_machine(torch.device(args.device))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, value in asdict(Args()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value) if value is not None else str, default=value)
    args = Args(**vars(parser.parse_args(argv)))
    report = run(args)
    atomic_write_json(args.out, json_ready(report))
    return report


if __name__ == "__main__":
    main()
