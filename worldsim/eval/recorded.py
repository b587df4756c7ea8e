"""Evaluation of a world against recorded play, for games without a ground-truth simulator.

    python -m worldsim.eval.recorded --checkpoint runs/breakout/world --data data/breakout-test --out m.json

The dataset should be a recording the world was not trained on (another `--seed`). Measures:
  - teacher-forced PSNR/SSIM: the next frame generated after `context` true frames and the true
    action, against the recorded frame (`next_frame.generate_next_frames`);
  - rollout PSNR/SSIM at each horizon: the Simulator started from a clip's first true frame and
    driven by its recorded actions, frame h against recorded frame h;
  - reward precision/recall: the reward model on the true frames of every episode (its K latents
    ending with frame i and action i, as trained) against the recorded rewards, positive and
    negative separately;
  - with `--idm-data DIR` (e.g. the training recording): an inverse-dynamics probe trained there
    (`probe_nets.InverseDynamics`) names the action between consecutive frames, on the held-out
    recorded pairs and on the rollout's generated pairs. A world whose generated frames show the
    effect of its actions scores near the recorded accuracy (which is below 1 where actions look
    alike, e.g. NOOP and FIRE while the ball is in play).
No measure needs a probe trained on a game's ground truth, so this runs for any recorded game.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from worldsim.eval import metrics
from worldsim.eval.next_frame import generate_next_frames
from worldsim.model.frames import to_pixels
from worldsim.model.reward import predict_outcomes

if TYPE_CHECKING:
    from worldsim.eval.probe_nets import InverseDynamics

__all__ = ["RecordedEvalConfig", "SUITES", "evaluate_recorded", "evaluate_checkpoint", "headline", "teacher_forced", "rollout", "rollout_scores",
           "reward_detection", "train_inverse_dynamics", "inverse_dynamics_accuracy"]


@dataclass(frozen=True)
class RecordedEvalConfig:
    clips: int = 16  # clips drawn from the dataset (seeded)
    context: int = 4  # true frames before a teacher-forced frame
    horizon: int = 32  # rollout frames after the first true frame
    reward_frames: int = 4096  # frames scanned for reward precision/recall (whole episodes, in order)
    # inverse-dynamics probe training steps (when a dataset for it is given): on Breakout at 64 px, 300
    # steps still named one action for every pair; 1500 reached 49 % on recorded pairs (chance 25 %)
    idm_steps: int = 1500
    idm_batch: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.clips, self.context, self.horizon, self.reward_frames, self.idm_steps, self.idm_batch) < 1:
            raise ValueError(f"clips, context, horizon and reward_frames must be >= 1, got {self}")


# `worldsim eval --data DIR --suite NAME`: a smoke test in seconds, or the measures of a report.
SUITES = {"tiny": RecordedEvalConfig(clips=3, horizon=8, reward_frames=512, idm_steps=20),
          "quick": RecordedEvalConfig(), "full": RecordedEvalConfig(clips=64, horizon=64, reward_frames=16384)}


def teacher_forced(world, frames: np.ndarray, actions: np.ndarray, context: int, seed: int) -> dict[str, float]:
    """Mean PSNR/SSIM of the frame after `context` true frames (frames [N, >context, H, W, 3])."""
    count = len(frames)
    generated = generate_next_frames(world, frames[:, :context], actions[:, : context - 1], [""] * count,
                                     np.arange(count), actions[:, context - 1], seed)
    truth = frames[:, context]
    return {"psnr": float(metrics.psnr(generated, truth).mean()), "ssim": float(metrics.ssim(generated, truth).mean())}


@torch.inference_mode()
def rollout(world, frames: np.ndarray, actions: np.ndarray, horizon: int, seed: int) -> np.ndarray:
    """uint8 [N, horizon + 1, H, W, 3]: frames[:, 0], then the world's frames under the recorded actions."""
    simulator = world.simulator(batch_size=len(frames), seed=seed)
    simulator.reset(context=torch.from_numpy(frames[:, 0]).to(world.device))
    generated = [frames[:, 0]]
    for step in range(1, horizon + 1):
        frame, _, _ = simulator.step(torch.from_numpy(actions[:, step - 1]).to(world.device))
        generated.append(frame.cpu().numpy())
    return np.stack(generated, axis=1)


def rollout_scores(generated: np.ndarray, frames: np.ndarray) -> dict[str, list[float]]:
    """PSNR/SSIM per rollout step 1..horizon of `rollout`'s frames against the recorded ones."""
    steps = range(1, generated.shape[1])
    return {"psnr": [float(metrics.psnr(generated[:, h], frames[:, h]).mean()) for h in steps],
            "ssim": [float(metrics.ssim(generated[:, h], frames[:, h]).mean()) for h in steps]}


def train_inverse_dynamics(dataset, steps: int, batch: int, seed: int) -> "InverseDynamics":
    """An inverse-dynamics probe trained on consecutive recorded frames of `dataset` (CPU-sized)."""
    from worldsim.eval.probe_nets import InverseDynamics, frames_to_input

    torch.manual_seed(seed)
    probe = InverseDynamics(dataset.num_actions)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-3)
    pairs = dataset.clips(num_frames=2, batch_size=batch, seed=seed)
    for _ in range(steps):
        clip = next(pairs)
        logits = probe(frames_to_input(clip.frames[:, 0]), frames_to_input(clip.frames[:, 1]))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(clip.actions[:, 0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return probe.eval()


@torch.inference_mode()
def inverse_dynamics_accuracy(probe, frames: np.ndarray, actions: np.ndarray) -> float:
    """Share of steps t whose action the probe names from frames t and t + 1 (frames [N, T + 1, ...])."""
    from worldsim.eval.probe_nets import frames_to_input

    before = frames[:, :-1].reshape(-1, *frames.shape[2:])
    after = frames[:, 1:].reshape(-1, *frames.shape[2:])
    predicted = probe(frames_to_input(before), frames_to_input(after)).argmax(dim=1).numpy()
    return float((predicted == actions[:, : frames.shape[1] - 1].reshape(-1)).mean())


@torch.inference_mode()
def reward_detection(world, dataset, max_frames: int) -> dict[str, dict[str, float | int]]:
    """Precision/recall of the reward model's positive and negative rewards on the recorded frames."""
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
            rewards, _ = predict_outcomes(world.reward_model, stacks, taken)
            predicted.append(rewards.cpu().numpy())
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


def evaluate_recorded(world, dataset, config: RecordedEvalConfig = RecordedEvalConfig(), idm_dataset=None) -> dict:
    """Every measure above for `world` on recorded `dataset` (same frame size and action count);
    the inverse-dynamics measure only with `idm_dataset` (a recording of the same game to train it on)."""
    if tuple(dataset.frame_shape) != (world.config.image_size, world.config.image_size, 3):
        raise ValueError(f"the dataset's frames are {dataset.frame_shape}, the world makes "
                         f"{world.config.image_size}x{world.config.image_size}")
    if dataset.num_actions != world.config.num_actions:
        raise ValueError(f"the dataset has {dataset.num_actions} actions, the world {world.config.num_actions}")
    length = max(config.context, config.horizon) + 1
    clip = next(dataset.clips(num_frames=length, batch_size=config.clips, seed=config.seed))
    generated = rollout(world, clip.frames, clip.actions, config.horizon, config.seed)
    scores = rollout_scores(generated, clip.frames[:, : config.horizon + 1])
    result = {
        "config": asdict(config),
        "teacher_forced": teacher_forced(world, clip.frames, clip.actions, config.context, config.seed),
        "rollout": scores,
        "psnr_at": {str(h): scores["psnr"][h - 1] for h in (1, 8, 32) if h <= config.horizon},
        "reward": reward_detection(world, dataset, config.reward_frames),
    }
    if idm_dataset is not None:
        probe = train_inverse_dynamics(idm_dataset, config.idm_steps, config.idm_batch, config.seed)
        result["inverse_dynamics"] = {
            "recorded": inverse_dynamics_accuracy(probe, clip.frames[:, : config.horizon + 1], clip.actions),
            "generated": inverse_dynamics_accuracy(probe, generated, clip.actions),
            "chance": 1.0 / dataset.num_actions,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worldsim.eval.recorded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="world folder, bundled name or Hub repo id")
    parser.add_argument("--data", required=True, help="a recording of the world's game it was not trained on")
    parser.add_argument("--idm-data", default=None, metavar="DIR",
                        help="a recording to train the inverse-dynamics probe on (e.g. the training data); "
                             "without it that measure is skipped")
    parser.add_argument("--idm-steps", type=int, default=RecordedEvalConfig.idm_steps)
    parser.add_argument("--out", default=None, help="write the measures as JSON here (default: print them)")
    parser.add_argument("--clips", type=int, default=RecordedEvalConfig.clips)
    parser.add_argument("--horizon", type=int, default=RecordedEvalConfig.horizon)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from worldsim.data.atomic import atomic_write_json

    try:
        config = RecordedEvalConfig(clips=args.clips, horizon=args.horizon, seed=args.seed, idm_steps=args.idm_steps)
        result = evaluate_checkpoint(args.checkpoint, args.data, args.idm_data, config)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(headline(result), indent=1))
    return 0


def evaluate_checkpoint(checkpoint: str, data: str, idm_data: str | None = None,
                        config: RecordedEvalConfig = RecordedEvalConfig(), revision: str | None = None) -> dict:
    """`evaluate_recorded` of a checkpoint (folder, bundled name or Hub id) on dataset folders."""
    import worldsim
    from worldsim.data import Dataset

    idm_dataset = Dataset(idm_data) if idm_data else None
    return evaluate_recorded(worldsim.load(checkpoint, revision=revision), Dataset(data), config, idm_dataset)


def headline(result: dict) -> dict:
    """The measures a person reads first."""
    return {key: result[key] for key in ("teacher_forced", "psnr_at", "reward", "inverse_dynamics") if key in result}


if __name__ == "__main__":
    sys.exit(main())
