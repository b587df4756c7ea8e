"""How fast does a generator design learn to use its action? A minutes-long check on 2 CPU cores.

Each design (transformer overrides on a world with a trained autoencoder) is trained by teacher
forcing on short real clips (3 frames, flow matching, uniform loss weight, noisy context as the
`ar-teacher` stage does) from a fixed pool of batches. Every `--every` steps it predicts x0 of
the next frame at sigma 1 — the first step of few-step sampling — from held-out clips, with the
true action and with a wrong move, and prints the latent MSE of both beside "copy the previous
frame". A design that uses its action shows a gap between the two early.

    python benchmarks/action_learning.py --world runs/ae/final --data /work/data/explorer-v2 \
        --designs local48 local48-action-conv --out benchmarks/results/action_learning.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from worldsim.data.machine import describe_machine
from worldsim.data import Dataset
from worldsim.model import flow, to_pixels
from worldsim.training.common import load_world, sample_sigma, with_new_transformer

LOCAL = {"transformer.local_channels": 48, "transformer.local_frames": 2, "transformer.depth": 2}
DESIGNS = {
    "tokens": {"transformer.local_channels": 0, "transformer.local_frames": 0, "transformer.depth": 2},
    "local48-shared-kernel": {**LOCAL, "transformer.local_action_conv": False},
    "local48-action-conv": LOCAL,
    "local48-action-conv-blocks2": {**LOCAL, "transformer.local_blocks": 2},
}
CLIP_FRAMES = 3


def real_batches(world, dataset: Dataset, count: int, batch_size: int, seed: int) -> list[tuple]:
    """`count` batches of (latents [B, F, C, h, w], the action that led to each frame [B, F])."""
    clips = iter(dataset.clips(CLIP_FRAMES, batch_size, seed=seed))
    batches = []
    for _ in range(count):
        clip = next(clips)
        rows = clip.actions.shape[0]
        pixels = to_pixels(torch.from_numpy(clip.frames.reshape(rows * CLIP_FRAMES, *clip.frames.shape[2:])))
        with torch.no_grad():
            latents = world.autoencoder.encode(pixels)
        led = torch.full((rows, CLIP_FRAMES), world.config.no_action, dtype=torch.long)
        led[:, 1:] = torch.from_numpy(clip.actions[:, :-1])
        batches.append((latents.view(rows, CLIP_FRAMES, *latents.shape[1:]), led))
    return batches


def x0_errors(net, latents: torch.Tensor, led: torch.Tensor) -> dict[str, float]:
    """Latent MSE of the sigma-1 x0 prediction of frames 1.. with the true and a wrong move."""
    sigma = torch.ones(latents.shape[:2])
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    wrong = led.clone()
    wrong[:, 1:] = led[:, 1:] % 4 + 1  # another move (1..4) than the one taken
    errors = {}
    with torch.no_grad():
        for name, actions in (("true_action", led), ("wrong_action", wrong)):
            velocity = net.forward_teacher_forcing(latents, noise, sigma, actions, None)
            x0 = flow.x0_from_velocity(noise, sigma, velocity)
            errors[name] = (x0[:, 1:] - latents[:, 1:]).pow(2).mean().item()
    errors["copy_previous"] = (latents[:, :-1] - latents[:, 1:]).pow(2).mean().item()
    return errors


def train_design(world, overrides: dict, batches: list, held_out: tuple, args) -> list[dict]:
    net = with_new_transformer(world, overrides).transformer.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    curve, cpu_start = [], time.process_time()
    for step in range(1, args.steps + 1):
        latents, led = batches[step % len(batches)]
        sigma = sample_sigma(tuple(latents.shape[:2]), world.config.sampling.sigma_shift, latents.device)
        noise = torch.randn_like(latents)
        context_sigma = args.context_noise * torch.rand_like(sigma)
        context = flow.add_noise(latents, torch.randn_like(latents), context_sigma)
        velocity = net.forward_teacher_forcing(context, flow.add_noise(latents, noise, sigma), sigma, led, None,
                                               clean_sigma=context_sigma)
        loss = (velocity - (noise - latents)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0:
            point = {"step": step, "cpu_s": round(time.process_time() - cpu_start, 1), "loss": loss.item(),
                     **x0_errors(net, *held_out)}
            curve.append(point)
            print(json.dumps(point), flush=True)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True, help="world folder with the trained autoencoder")
    parser.add_argument("--data", required=True)
    parser.add_argument("--designs", nargs="+", choices=sorted(DESIGNS), default=sorted(DESIGNS))
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--context-noise", type=float, default=0.1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = load_world(args.world, torch.device("cpu"))
    dataset = Dataset(args.data)
    batches = real_batches(world, dataset, 12, args.batch_size, seed=7)
    held_out = real_batches(world, dataset, 1, 64, seed=8)[0]
    results = {"machine": describe_machine(torch.device("cpu")), "settings": vars(args), "designs": {}}
    for name in args.designs:
        torch.manual_seed(0)
        results["designs"][name] = {"overrides": DESIGNS[name],
                                    "curve": train_design(world, DESIGNS[name], batches, held_out, args)}
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
