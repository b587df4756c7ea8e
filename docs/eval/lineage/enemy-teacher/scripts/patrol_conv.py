"""Can a plain conv net on the last K clean latents (lined up by the scroll) learn the enemies'
patrol? It regresses the next latent (MSE, sprite cells weighted) from scratch on a dataset, using
a world's frozen autoencoder, and every EVAL steps is scored like the training probe: on the same
16 true rollouts of 32 frames (seed 0) the predicted next latent is decoded and parsed, and of the
true enemy tiles it keeps the share held / stepping, and where the stepping ones went.

    K=6 STEPS=3000 python patrol_conv.py WORLD DATA        # K: predecessors seen (4 or 6)
"""
import os
import sys
import time

import torch
from torch import nn

import worldsim
from worldsim.data.reader import Dataset
from worldsim.eval import training_probe
from worldsim.eval.replay import collect, truth_steps
from worldsim.eval.rollout_measures import enemies_kept_next_frame
from worldsim.eval.scenarios import plain_scenario, scenario_rng
from worldsim.eval.true_frames import EventClasses
from worldsim.model.frames import to_frames
from worldsim.model.local_path import previous_frames
from worldsim.training import losses
from worldsim.training.batches import ClipStream, clip_sprite_cells, condition_actions, encode_latents

K = int(os.environ.get("K", "4"))
WIDTH, BLOCKS = int(os.environ.get("WIDTH", "64")), int(os.environ.get("BLOCKS", "4"))
SPRITE_WEIGHT = float(os.environ.get("SPRITE", "5"))
STEPS, EVAL = int(os.environ.get("STEPS", "3000")), int(os.environ.get("EVAL", "300"))
LR = float(os.environ.get("LR", "1e-3"))


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, width), nn.GELU(), nn.Conv2d(width, width, 3, padding=1),
                                  nn.GroupNorm(8, width), nn.GELU(), nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class PatrolNet(nn.Module):
    """Next latent = newest predecessor + a conv stack over [K predecessors ; unknown flags ; action]."""

    def __init__(self, channels: int, actions: int):
        super().__init__()
        self.actions = actions
        self.stem = nn.Conv2d(K * channels + K + actions, WIDTH, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(WIDTH) for _ in range(BLOCKS)])
        self.head = nn.Conv2d(WIDTH, channels, 3, padding=1)

    def forward(self, previous, unknown, action):
        n, _, _, h, w = previous.shape
        x = torch.cat([previous.flatten(1, 2), unknown[:, :, None, None].expand(n, K, h, w),
                       nn.functional.one_hot(action, self.actions).float()[:, :, None, None].expand(-1, -1, h, w)], 1)
        return previous[:, 0] + self.head(self.blocks(self.stem(x)))


def frame_inputs(latents, actions):
    """latents [B, F, C, h, w], actions [B, F] (the one leading to each frame) -> frames 1.. with inputs."""
    batch, frames = latents.shape[:2]
    previous, levels = previous_frames(latents, latents.new_zeros(batch, frames), count=K, align=True)
    return (previous[:, 1:].flatten(0, 1), levels[:, 1:].flatten(0, 1), actions[:, 1:].flatten(),
            latents[:, 1:].flatten(0, 1))


def main(world_path: str, data_path: str) -> None:
    torch.manual_seed(0)
    world = worldsim.load(world_path)
    autoencoder, no_action = world.autoencoder.eval(), world.config.no_action
    net = PatrolNet(world.config.transformer.latent_channels, world.config.num_actions)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LR, weight_decay=0.01)
    clips = ClipStream(Dataset(data_path), 8, 16, 0, label_boost={"blocked": 4.0, "enemies_visible": 0.25})
    probes = training_probe.Probes.load()
    scenario = plain_scenario("training-enemies", scenario_rng(0, 2), 16, 32)
    truth = collect(truth_steps(scenario, 64, EventClasses.from_world(64)))
    true_latents = encode_latents(autoencoder, torch.from_numpy(truth.frames))
    leading = torch.full(true_latents.shape[:2], no_action, dtype=torch.long)
    leading[:, 1:] = torch.as_tensor(scenario.actions)  # actions[:, t] leads from frame t to t + 1

    def score():
        with torch.no_grad():
            previous, unknown, action, _ = frame_inputs(true_latents, leading)
            frames = to_frames(autoencoder.decode(net.eval()(previous, unknown, action))).numpy()
        net.train()
        tiles = probes.parse_tiles(frames).reshape(*truth.tiles[:, 1:].shape)
        return enemies_kept_next_frame(truth, tiles)

    start = time.time()
    for step in range(1, STEPS + 1):
        clip = clips.batch(step)
        latents = encode_latents(autoencoder, torch.from_numpy(clip.frames))
        previous, unknown, action, target = frame_inputs(
            latents, condition_actions(torch.from_numpy(clip.actions), no_action))
        cells = clip_sprite_cells(torch.from_numpy(clip.frames), latents.shape[-1], 2)[:, 1:].flatten(0, 1)
        weight = losses.weight_on_cells(cells[:, None], SPRITE_WEIGHT)[:, 0]
        loss = ((net(previous, unknown, action) - target) ** 2 * weight).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVAL == 0:
            found = score()
            kept, outcomes = found["teacher_forced_enemies_kept"], found["teacher_forced_stepping_outcomes"]
            print(f"step {step} {time.time() - start:.0f}s loss {loss.item():.4f} holding {kept['holding']:.3f} "
                  f"stepping {kept['stepping']:.3f}", {name: round(share, 3) for name, share in outcomes.items()},
                  flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
