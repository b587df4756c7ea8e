"""`worldsim eval ...` with frames started from the history reader's guess (session 34 experiment).

Every frame after the first is sampled from the reader's guess of it, noised to READER_START
(default: the schedule's second level, 0.667 for 2 steps at shift 2), and denoised by the steps
below that level: one generator pass instead of two. With SWITCH_FULL=1 (default) a row whose
event changed at this frame is sampled from noise by the full schedule, since the reader does
not see events. READER_START=off runs the stock sampler (the baseline, same process).

    READER_START=0.667 python reader_start.py eval --checkpoint WORLD --suite quick --out DIR
"""
import os
import sys

import torch

import worldsim.eval.next_frame as next_frame_module
import worldsim.eval.replay as replay_module
import worldsim.sampling.simulator as simulator_module
from worldsim.cli import main
from worldsim.model import flow
from worldsim.sampling import frame_sampler

SETTING = os.environ.get("READER_START", "")
SWITCH_FULL = os.environ.get("SWITCH_FULL", "1") == "1"
original = frame_sampler.sample_frames


def reader_guess(net, cache, pending, conditions):
    """The reader's guess of the one new frame that follows the cache and `pending`."""
    blank = torch.zeros_like(pending.latents[:, :1])
    latents = torch.cat((pending.latents, blank), dim=1)
    sigma = torch.cat((latents.new_zeros(latents.shape[0], pending.num_frames),
                       latents.new_ones(latents.shape[0], 1)), dim=1)
    previous, previous_sigma = net._previous(latents, sigma, cache)
    actions = torch.cat((pending.conditions.actions, conditions.actions), dim=1)
    return net.local.read_next(previous[:, -1:], previous_sigma[:, -1:], actions[:, -1:])


def sample_frames(net, cache, conditions, sigmas, noise, pending=None, fresh_noise=1.0):
    usable = (SETTING not in ("", "off") and pending is not None and net.local is not None
              and net.local.reader is not None and conditions.actions.shape[1] == 1 and len(sigmas) >= 3)
    if not usable:
        return original(net, cache, conditions, sigmas, noise, pending, fresh_noise)
    start = float(SETTING) if SETTING != "second" else sigmas[1]
    below = [s for s in sigmas if s < start]  # ends with 0
    guess = reader_guess(net, cache, pending, conditions)
    batch = guess.shape[0]
    if SWITCH_FULL:
        switched = (conditions.events[:, -1] != pending.conditions.events[:, -1]).any(dim=-1)
    else:
        switched = torch.zeros(batch, dtype=torch.bool, device=guess.device)
    # Per-row schedules of equal length: a switched row runs the full one, the others the steps
    # below `start` padded with zeros (a step at level 0 returns its input).
    full = list(sigmas)
    short = [start] + below
    length = max(len(full), len(short))
    full += [0.0] * (length - len(full))
    short += [0.0] * (length - len(short))
    rows = torch.tensor([full, short], dtype=guess.dtype, device=guess.device)
    schedule = torch.where(switched[:, None], rows[0], rows[1])  # [B, L]
    first = noise(guess.shape[1:])
    x = torch.where(switched.view(-1, 1, 1, 1, 1), first, flow.add_noise(guess, first, schedule[:, :1]))
    for step in range(length - 1):
        level, level_next = schedule[:, step], schedule[:, step + 1]
        if bool((level == 0).all()):
            break
        velocity = frame_sampler.predict_velocity(net, cache, x, level[:, None].contiguous(),
                                                  conditions, pending if step == 0 else None)
        x0 = flow.x0_from_velocity(x, level[:, None], velocity)
        fresh = noise(x.shape[1:])
        x = torch.where((level_next > 0).view(-1, 1, 1, 1, 1), flow.add_noise(x0, fresh, level_next[:, None]), x0)
    return x


for module in (frame_sampler, simulator_module, replay_module, next_frame_module):
    module.sample_frames = sample_frames
sys.exit(main(sys.argv[1:]))
