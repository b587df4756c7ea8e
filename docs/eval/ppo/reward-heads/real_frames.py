"""Reward models read on real frames: the real Explorer's coins and episode ends on random-policy
episodes, against what each world's reward model predicts from the same real frames and actions.

    python docs/eval/ppo/reward-heads/real_frames.py OUT.json CHECKPOINT [CHECKPOINT ...]

1 024 episodes of 32 random steps under "coins rain from the sky" (seed 3 000 000) and 512 with no
event (seed 3 100 000); a step counts while its episode runs; exact steps (no tolerance). Episode
ends are split by cause: the tile the move enters is hot lava (read from the game's tile classes),
or not (an enemy). Also reported: the share of lava ends caught where the action repeats the one
before (the data policy holds its moves, so a model can read the move from the scroll instead).
"""
import json
import sys

import gymnasium as gym
import numpy as np
import torch

import worldsim
from worldsim.model.frames import to_pixels
from worldsim.model.reward import advance_window, predict_outcomes, start_window

MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]])  # (dx, dy) per Explorer action
LAVA, PLAYER_ROW_COL = 6, 8


def episodes(count: int, steps: int, seed: int, event: str | None) -> dict[str, np.ndarray]:
    real = gym.make_vec("worldsim/Explorer-v0", num_envs=count, vectorization_mode="vector_entry_point",
                        max_episode_steps=None, event=event)
    frame, _ = real.reset(seed=seed)
    actions = np.random.default_rng(seed).integers(5, size=(steps, count))
    out = {name: [] for name in ("frames", "coin", "ended", "lava", "running")}
    out["frames"].append(frame)
    running = np.ones(count, dtype=bool)
    for step in range(steps):
        tiles = real.unwrapped._sim.tile_classes()
        entered = tiles[np.arange(count), PLAYER_ROW_COL + MOVES[actions[step], 1], PLAYER_ROW_COL + MOVES[actions[step], 0]]
        out["lava"].append(entered == LAVA)
        out["running"].append(running.copy())
        frame, rewards, terminated, _, _ = real.step(actions[step])
        out["frames"].append(frame)
        out["coin"].append(rewards > 0.5)
        out["ended"].append(terminated)
        running &= ~terminated
    return {**{name: np.stack(value) for name, value in out.items()}, "actions": actions}


@torch.no_grad()
def read(world, run: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(coin, end) flags [steps, episodes] predicted from each step's real reward window."""
    latents = [world.autoencoder.encode(to_pixels(frames)).float() for frames in run["frames"]]
    window = start_window(latents[0], world.config.reward.context_frames)
    coins, ends = [], []
    for step, actions in enumerate(run["actions"]):
        rewards, ended = predict_outcomes(world.reward_model, window, torch.as_tensor(actions).long())
        coins.append((rewards > 0.5).numpy())
        ends.append(ended.numpy())
        window = advance_window(window, latents[step + 1])
    return np.stack(coins), np.stack(ends)


def share(hits: int, total: int) -> float | None:
    return round(hits / total, 3) if total else None


def main(out: str, checkpoints: list[str]) -> None:
    torch.set_num_threads(1)  # beside a training run; the measure does not depend on it
    runs = [episodes(1024, 32, 3_000_000, "coins rain from the sky"), episodes(512, 32, 3_100_000, None)]
    results = {}
    for checkpoint in checkpoints:
        world = worldsim.load(checkpoint, device="cpu")
        totals: dict[str, int] = {}
        for run in runs:
            coins, ends = read(world, run)
            running = run["running"]
            ended, coin, lava = run["ended"] & running, run["coin"] & running, run["lava"]
            repeat = np.vstack([np.zeros_like(run["actions"][:1], dtype=bool), run["actions"][1:] == run["actions"][:-1]])
            predicted_end, predicted_coin = ends & running, coins & running
            for name, flags in {"end_hits": predicted_end & ended, "end_predicted": predicted_end, "ends": ended,
                                "lava_ends": ended & lava, "lava_hits": predicted_end & ended & lava,
                                "repeat_ends": ended & lava & repeat, "repeat_hits": predicted_end & ended & lava & repeat,
                                "coin_hits": predicted_coin & coin, "coin_predicted": predicted_coin,
                                "coins": coin}.items():
                totals[name] = totals.get(name, 0) + int(flags.sum())
        t = totals
        results[checkpoint] = {
            "ends": {"precision": share(t["end_hits"], t["end_predicted"]), "recall": share(t["end_hits"], t["ends"]),
                     "actual": t["ends"]},
            "lava_ends": {"recall": share(t["lava_hits"], t["lava_ends"]), "actual": t["lava_ends"],
                          "recall_action_repeated": share(t["repeat_hits"], t["repeat_ends"]),
                          "recall_action_changed": share(t["lava_hits"] - t["repeat_hits"],
                                                         t["lava_ends"] - t["repeat_ends"])},
            "enemy_ends": {"recall": share(t["end_hits"] - t["lava_hits"], t["ends"] - t["lava_ends"]),
                           "actual": t["ends"] - t["lava_ends"]},
            "coins": {"precision": share(t["coin_hits"], t["coin_predicted"]), "recall": share(t["coin_hits"], t["coins"]),
                      "actual": t["coins"]},
        }
        print(checkpoint, json.dumps(results[checkpoint]), flush=True)
    with open(out, "w") as file:
        json.dump(results, file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
