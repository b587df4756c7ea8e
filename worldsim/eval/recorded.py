"""Evaluation of a world against recorded play, for games without a ground-truth simulator.

    python -m worldsim.eval.recorded --checkpoint runs/breakout/world --data data/breakout-test --out m.json

The dataset should be a recording the world was not trained on (another `--seed`). Measures:
  - teacher-forced PSNR/SSIM: the next frame generated after `context` true frames and the true
    action, against the recorded frame (`next_frame.generate_next_frames`);
  - rollout PSNR/SSIM at each horizon: the Simulator started from a clip's first true frame and
    driven by its recorded actions, frame h against recorded frame h;
  - reward precision/recall: the reward model on the true frames of every episode (its K latents
    ending with frame i and action i, as trained) against the recorded rewards, positive and
    negative separately.
No measure needs a probe trained on a game's ground truth, so this runs for any recorded game.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch

from worldsim.eval import metrics
from worldsim.eval.next_frame import generate_next_frames
from worldsim.model.frames import to_pixels

__all__ = ["RecordedEvalConfig", "evaluate_recorded", "teacher_forced", "rollout_scores", "reward_detection"]


@dataclass(frozen=True)
class RecordedEvalConfig:
    clips: int = 16  # clips drawn from the dataset (seeded)
    context: int = 4  # true frames before a teacher-forced frame
    horizon: int = 32  # rollout frames after the first true frame
    reward_frames: int = 4096  # frames scanned for reward precision/recall (whole episodes, in order)
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.clips, self.context, self.horizon, self.reward_frames) < 1:
            raise ValueError(f"clips, context, horizon and reward_frames must be >= 1, got {self}")


def teacher_forced(world, frames: np.ndarray, actions: np.ndarray, context: int, seed: int) -> dict[str, float]:
    """Mean PSNR/SSIM of the frame after `context` true frames (frames [N, >context, H, W, 3])."""
    count = len(frames)
    generated = generate_next_frames(world, frames[:, :context], actions[:, : context - 1], [""] * count,
                                     np.arange(count), actions[:, context - 1], seed)
    truth = frames[:, context]
    return {"psnr": float(metrics.psnr(generated, truth).mean()), "ssim": float(metrics.ssim(generated, truth).mean())}


@torch.inference_mode()
def rollout_scores(world, frames: np.ndarray, actions: np.ndarray, horizon: int, seed: int) -> dict[str, list[float]]:
    """PSNR/SSIM per rollout step 1..horizon, started from frames[:, 0] under the recorded actions."""
    simulator = world.simulator(batch_size=len(frames), seed=seed)
    simulator.reset(context=torch.from_numpy(frames[:, 0]).to(world.device))
    psnr, ssim = [], []
    for step in range(1, horizon + 1):
        generated, _, _ = simulator.step(torch.from_numpy(actions[:, step - 1]).to(world.device))
        generated = generated.cpu().numpy()
        psnr.append(float(metrics.psnr(generated, frames[:, step]).mean()))
        ssim.append(float(metrics.ssim(generated, frames[:, step]).mean()))
    return {"psnr": psnr, "ssim": ssim}


@torch.inference_mode()
def reward_detection(world, dataset, max_frames: int) -> dict[str, dict[str, float | int]]:
    """Precision/recall of the reward model's positive and negative rewards on the recorded frames."""
    from worldsim.model.reward import class_to_reward

    window = world.config.reward.context_frames
    predicted, actual = [], []
    for shard in dataset.iter_shards():
        for episode in np.unique(shard.episode):
            rows = np.flatnonzero(shard.episode == episode)
            if len(rows) < window:
                continue
            latents = world.autoencoder.encode(to_pixels(torch.from_numpy(shard.frames[rows]).to(world.device)))
            stacks = latents.unfold(0, window, 1).permute(0, 4, 1, 2, 3)  # [n - K + 1, K, C, h, w]
            taken = torch.from_numpy(shard.actions[rows[window - 1:]]).to(world.device)
            logits, _ = world.reward_model(stacks, taken)
            predicted.append(class_to_reward(logits.argmax(-1)).cpu().numpy())
            actual.append(shard.rewards[rows[window - 1:]])
        if sum(len(values) for values in actual) >= max_frames:
            break
    predicted_all = np.concatenate(predicted)[:max_frames] if predicted else np.zeros(0)
    actual_all = np.concatenate(actual)[:max_frames] if actual else np.zeros(0)
    result = {}
    for name, sign in (("positive", 1), ("negative", -1)):
        score = metrics.precision_recall(np.sign(predicted_all) == sign, np.sign(actual_all) == sign)
        result[name] = {"precision": _finite_or_none(score.precision), "recall": _finite_or_none(score.recall),
                        "actual": score.actual, "predicted": score.predicted}
    return result


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a share of nothing (no predicted or no actual rewards) is stored as null."""
    return value if np.isfinite(value) else None


def evaluate_recorded(world, dataset, config: RecordedEvalConfig = RecordedEvalConfig()) -> dict:
    """Every measure above for `world` on recorded `dataset` (same frame size and action count)."""
    if tuple(dataset.frame_shape) != (world.config.image_size, world.config.image_size, 3):
        raise ValueError(f"the dataset's frames are {dataset.frame_shape}, the world makes "
                         f"{world.config.image_size}x{world.config.image_size}")
    if dataset.num_actions != world.config.num_actions:
        raise ValueError(f"the dataset has {dataset.num_actions} actions, the world {world.config.num_actions}")
    length = max(config.context, config.horizon) + 1
    clip = next(dataset.clips(num_frames=length, batch_size=config.clips, seed=config.seed))
    rollout = rollout_scores(world, clip.frames, clip.actions, config.horizon, config.seed)
    return {
        "config": asdict(config),
        "teacher_forced": teacher_forced(world, clip.frames, clip.actions, config.context, config.seed),
        "rollout": rollout,
        "psnr_at": {str(h): rollout["psnr"][h - 1] for h in (1, 8, 32) if h <= config.horizon},
        "reward": reward_detection(world, dataset, config.reward_frames),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldsim.eval.recorded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="world folder, bundled name or Hub repo id")
    parser.add_argument("--data", required=True, help="a recording of the world's game it was not trained on")
    parser.add_argument("--out", default=None, help="write the measures as JSON here (default: print them)")
    parser.add_argument("--clips", type=int, default=RecordedEvalConfig.clips)
    parser.add_argument("--horizon", type=int, default=RecordedEvalConfig.horizon)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import worldsim
    from worldsim.data import Dataset
    from worldsim.data.atomic import atomic_write_json

    try:
        config = RecordedEvalConfig(clips=args.clips, horizon=args.horizon, seed=args.seed)
        result = evaluate_recorded(worldsim.load(args.checkpoint), Dataset(args.data), config)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps({"teacher_forced": result["teacher_forced"], "psnr_at": result["psnr_at"],
                      "reward": result["reward"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
