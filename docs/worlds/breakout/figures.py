"""The Breakout world's film strip and paddle-control check (docs/worlds/breakout/README.md).

    python docs/worlds/breakout/figures.py --checkpoint runs/breakout/world --data data/breakout-test \
        --out docs/worlds/breakout

autoencoder.png: held-out frames with the ball in mid-field above their autoencoder reconstructions
(ball.json: the ball's peak redness in both). filmstrip.png: held-out recorded clips (first frame
given) above the world's frames under the same recorded actions. paddle.json: the paddle's column
after k frames of RIGHT minus after k frames of LEFT, from the held-out episodes' first frames, for
the world and for the real game (ALE, same crop and resize): "the paddle follows the keys" in numbers.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import worldsim
from worldsim.data import Dataset
from worldsim.data.atomic import atomic_write_json
from worldsim.data.record import FrameTransform, RecordConfig, make_image_env
from worldsim.eval import metrics
from worldsim.eval.plots import film_strip, stack
from worldsim.eval.recorded import rollout
from worldsim.imaging.png import write_png
from worldsim.model.frames import to_frames, to_pixels

COLUMNS = (0, 1, 2, 4, 8, 12, 16, 24, 32)  # rollout frames shown (0: the true start frame)
PADDLE_ROWS = slice(-4, None)  # the paddle's rows at 64 px with the 0,14,8,8 crop
MIDFIELD_ROWS = slice(30, 58)  # below the bricks, above the paddle: only the ball is red there
PRESS = {"RIGHT": 2, "LEFT": 3}


def redness(frames: np.ndarray) -> np.ndarray:
    """Red minus green per pixel (paddle and ball are red, nothing else is), int [..., H, W]."""
    return np.clip(frames[..., 0].astype(np.int64) - frames[..., 1], 0, None)


def paddle_column(frames: np.ndarray) -> np.ndarray:
    """Mean column of the red paddle pixels in the bottom rows (frames [..., H, W, 3]); NaN without any."""
    red = redness(frames[..., PADDLE_ROWS, :, :]).sum(axis=-2)  # [..., W]
    total = red.sum(axis=-1)
    columns = (red * np.arange(red.shape[-1])).sum(axis=-1)
    return np.where(total > 0, columns / np.maximum(total, 1e-9), np.nan)


@torch.inference_mode()
def autoencoder_check(world, dataset: Dataset, count: int) -> tuple[np.ndarray, dict[str, float]]:
    """`count` held-out frames with the ball in mid-field, recorded above reconstructed, and the
    ball's peak redness in both (the ball is 1-2 px at 64 px: the first thing a blurry autoencoder loses)."""
    frames = dataset.load_shard(0).frames
    peak = redness(frames[..., MIDFIELD_ROWS, :, :]).max(axis=(-2, -1))
    with_ball = np.flatnonzero(peak > 40)
    chosen = frames[with_ball[:: max(1, len(with_ball) // count)][:count]]
    decoded = to_frames(world.autoencoder.decode(world.autoencoder.encode(to_pixels(chosen, world.device)))).cpu().numpy()
    image = film_strip([chosen, decoded], ["recorded", "decoded"], [""] * len(chosen), scale=3)
    ball = {"frames": len(chosen), "psnr_db": float(metrics.psnr(decoded, chosen).mean()),
            "ball_redness_recorded": float(redness(chosen[..., MIDFIELD_ROWS, :, :]).max(axis=(-2, -1)).mean()),
            "ball_redness_decoded": float(redness(decoded[..., MIDFIELD_ROWS, :, :]).max(axis=(-2, -1)).mean())}
    return image, ball


def film(world, dataset: Dataset, clips: int, seed: int) -> np.ndarray:
    clip = next(dataset.clips(num_frames=max(COLUMNS) + 1, batch_size=clips, seed=seed))
    generated = rollout(world, clip.frames, clip.actions, max(COLUMNS), seed)
    labels = [str(c) for c in COLUMNS]
    strips = [film_strip([clip.frames[i, list(COLUMNS)], generated[i, list(COLUMNS)]],
                         ["recorded", "world"], labels, scale=3) for i in range(clips)]
    return stack(strips)


def episode_starts(dataset: Dataset, count: int) -> np.ndarray:
    shard = dataset.load_shard(0)
    starts = np.flatnonzero(np.r_[True, shard.episode[1:] != shard.episode[:-1]])[:count]
    return shard.frames[starts]


def world_shift(world, starts: np.ndarray, frames: int, seed: int) -> dict[str, list[float]]:
    columns = {}
    for name, action in PRESS.items():
        actions = np.full((len(starts), frames), action, dtype=np.int64)
        generated = rollout(world, starts[:, None], actions, frames, seed)
        columns[name] = np.nanmean(paddle_column(generated), axis=0)
    return {"right_minus_left": (columns["RIGHT"] - columns["LEFT"]).round(2).tolist()}


def real_shift(env_id: str, crop: tuple[int, ...], size: int, episodes: int, frames: int) -> dict[str, list[float]]:
    env = make_image_env(env_id)
    transform = FrameTransform(env.observation_space.shape, RecordConfig(env_id, 1, size=size, crop=tuple(crop)))
    columns = {}
    for name, action in PRESS.items():
        runs = []
        for seed in range(episodes):
            frame, _ = env.reset(seed=seed)
            frame, *_ = env.step(1)  # FIRE, as the recording does after each reset
            seen = [transform(frame)]
            for _ in range(frames):
                frame, *_ = env.step(action)
                seen.append(transform(frame))
            runs.append(paddle_column(np.stack(seen)))
        columns[name] = np.nanmean(np.stack(runs), axis=0)
    env.close()
    return {"right_minus_left": (columns["RIGHT"] - columns["LEFT"]).round(2).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", required=True, help="held-out recording")
    parser.add_argument("--out", required=True)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--press-frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    world, dataset, out = worldsim.load(args.checkpoint), Dataset(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image, ball = autoencoder_check(world, dataset, 10)
    write_png(out / "autoencoder.png", image)
    atomic_write_json(out / "ball.json", ball)
    write_png(out / "filmstrip.png", film(world, dataset, args.clips, args.seed))
    starts = episode_starts(dataset, 8)
    generator = dataset.manifest["generator"]
    result = {"frames": args.press_frames, "episodes": len(starts),
              "world": world_shift(world, starts, args.press_frames, args.seed),
              "real": real_shift(generator["env"], generator["crop"], generator["size"], len(starts),
                                 args.press_frames)}
    atomic_write_json(out / "paddle.json", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
