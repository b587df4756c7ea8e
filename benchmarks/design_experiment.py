"""Equal-budget comparison of generator designs: the same data, autoencoder, steps and batch.

Each design is a set of transformer overrides on top of a world folder that holds the trained
autoencoder (and event encoder). For each design the script trains the `ar-teacher` stage for the
same number of steps, then measures on true Explorer contexts what decides whether the world
plays: inverse dynamics on generated moved pairs, the collision share (moves into walls read as
noop), still frames read as noop, next-frame PSNR per kind of move, and frames per second at batch 1.

    python benchmarks/design_experiment.py --data /work/data/explorer-v2 --ae-world runs/ae/final \
        --steps 600 --out runs/design --designs tokens local48
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldsim.envs.explorer import ExplorerBatch, ExplorerConfig
from worldsim.eval import metrics
from worldsim.eval.action_branch import move_spread
from worldsim.eval.probes import Probes
from worldsim.training.common import load_world, with_new_transformer
from worldsim.training.stages import build_config, run_stage

DESIGNS: dict[str, dict[str, Any]] = {
    # The landed design: patch-2 tokens, the action only in AdaLN.
    "tokens": {"transformer.local_channels": 0, "transformer.local_frames": 0},
    # A conv local path at latent-cell resolution around the same transformer.
    "local32": {"transformer.local_channels": 32, "transformer.local_frames": 2},
    "local48": {"transformer.local_channels": 48, "transformer.local_frames": 2},
    "local64": {"transformer.local_channels": 64, "transformer.local_frames": 2},
    # Half the transformer: how much do memory and events need its depth?
    "local48-depth2": {"transformer.local_channels": 48, "transformer.local_frames": 2,
                       "transformer.depth": 2},
    "local48-blocks2": {"transformer.local_channels": 48, "transformer.local_frames": 2,
                        "transformer.local_blocks": 2},
}

MOVES = (1, 2, 3, 4)  # up, down, left, right; 0 is noop


def true_branches(num_contexts: int, walk: int, seed: int) -> dict[str, np.ndarray]:
    """Explorer contexts after a short random walk, and the true next frame under each action.

    Row (i, a) of the batch holds context i followed by action a (a = 0..4)."""
    num_actions = 1 + len(MOVES)
    batch = ExplorerBatch(num_contexts * num_actions, ExplorerConfig(size=64), seed=0)
    batch.reset(np.repeat(seed + np.arange(num_contexts), num_actions).astype(np.int64))
    rng = np.random.default_rng(seed)
    for _ in range(walk):
        batch.step(np.repeat(rng.integers(0, num_actions, num_contexts), num_actions))
    before = batch.render()
    positions = np.array([batch.state(i)["position"] for i in range(len(before))])
    actions = np.tile(np.arange(num_actions), num_contexts)
    batch.step(actions)
    after = batch.render()
    moved = np.any(np.array([batch.state(i)["position"] for i in range(len(after))]) != positions, axis=1)
    alive = ~batch.terminated
    return {"before": before, "after": after, "actions": actions, "moved": moved, "alive": alive}


def share_with_interval(hits: np.ndarray) -> dict[str, float]:
    """Share of True with its 95 % Wilson interval."""
    low, high = metrics.wilson_interval(int(hits.sum()), len(hits))
    return {"share": float(hits.mean()) if len(hits) else float("nan"), "low": low, "high": high, "n": len(hits)}


def controllability(world, probes: Probes, truth: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """Next frames generated from each true context under each action, read by the probes."""
    sim = world.simulator(batch_size=len(truth["before"]), seed=seed)
    sim.reset(context=torch.from_numpy(truth["before"]))
    generated, _, _ = sim.step(torch.from_numpy(truth["actions"]))
    generated = generated.cpu().numpy()
    read = probes.infer_actions(truth["before"], generated)
    actions, moved, alive = truth["actions"], truth["moved"], truth["alive"]
    is_move = (actions > 0) & alive
    frame_psnr = metrics.psnr(generated, truth["after"])
    return {
        "idm_moved": share_with_interval(read[is_move & moved] == actions[is_move & moved]),
        "collision_noop": share_with_interval(read[is_move & ~moved] == 0),
        "still_noop": share_with_interval(read[(actions == 0) & alive] == 0),
        "psnr_moved_db": float(frame_psnr[is_move & moved].mean()),
        "psnr_blocked_db": float(frame_psnr[is_move & ~moved].mean()),
        "psnr_still_db": float(frame_psnr[(actions == 0) & alive].mean()),
        # mean pixel MSE between the frames of one context under different moves (same noise)
        "action_spread_mse": float(move_spread(generated.reshape(-1, 5, *generated.shape[1:])).mean()),
    }


def frames_per_second(world, frames: int = 60) -> float:
    """Median-free quick figure: steady frames per second at batch 1 including decode."""
    sim = world.simulator(batch_size=1, seed=0)
    sim.reset()
    actions = torch.ones(1, dtype=torch.long)
    for _ in range(5):
        sim.step(actions)
    start = time.perf_counter()
    for _ in range(frames):
        sim.step(actions)
    return frames / (time.perf_counter() - start)


def run_design(name: str, args: argparse.Namespace, probes: Probes, truth: dict) -> dict[str, Any]:
    out = Path(args.out) / f"{name}-{args.loss_weight}"
    init = out / "init"
    if not (init / "config.json").exists():
        world = with_new_transformer(load_world(args.ae_world, torch.device("cpu")), DESIGNS[name], seed=0)
        world.save_pretrained(init)
    overrides = [f"data={args.data}", f"init={init}", f"steps={args.steps}",
                 f"batch_size={args.batch_size}", f"clip_frames={args.clip_frames}",
                 f"context_noise={args.context_noise}", f"lr={args.lr}", "warmup_steps=50",
                 f"checkpoint_every={max(args.steps // 4, 1)}", f"loss_weight={args.loss_weight}"]
    config = build_config("ar-teacher", None, overrides)
    cpu_start = time.process_time()
    summary = run_stage("ar-teacher", config, out / "ar-teacher", resume=(out / "ar-teacher").exists())
    cpu_seconds = time.process_time() - cpu_start
    world = load_world(str(out / "ar-teacher" / "final"), torch.device("cpu"))
    with torch.inference_mode():
        result = controllability(world, probes, truth, seed=1)
        result["fps_batch1"] = frames_per_second(world)
    result.update(design=name, overrides=DESIGNS[name], loss_weight=args.loss_weight,
                  clip_frames=args.clip_frames, steps=args.steps, batch_size=args.batch_size,
                  train_cpu_s=cpu_seconds, train_wall_s=summary.wall_time_s, last_loss=summary.last_loss,
                  transformer_params=sum(p.numel() for p in world.transformer.parameters()))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--ae-world", required=True, help="world folder with the trained autoencoder")
    parser.add_argument("--designs", nargs="+", default=["tokens", "local48"], choices=sorted(DESIGNS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--clip-frames", type=int, default=8)
    parser.add_argument("--context-noise", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--loss-weight", choices=("bell", "uniform"), default="bell")
    parser.add_argument("--contexts", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probes = Probes.load()
    truth = true_branches(args.contexts, walk=12, seed=50_000)
    results = []
    for name in args.designs:
        results.append(run_design(name, args, probes, truth))
        print(json.dumps(results[-1], indent=1), flush=True)
    Path(args.out, f"results-{'-'.join(args.designs)}-{args.loss_weight}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
