"""Reward-model windows on the world's own frames, labelled by the real game.

A reward model fitted on real latents only reads the world's generated frames worse than real
ones (softer sprites, coins a little off), so inside the world it misses coins and episode ends
that the real game would have paid. These windows calibrate it where it is used: each clip of
recorded play starts the world's simulator from its first real frame, under the event in force
there, and the clip's actions and event switches drive it. Before every step the simulator's
reward window (the K latents its reward model reads there) is kept, labelled with the real step's
reward and termination. Window j of a clip thus holds j generated frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from worldsim.data.clips import Clip
from worldsim.sampling.simulator import Simulator


@dataclass
class GeneratedWindows:
    """The world's latents along `N` clips of `H + 1` frames and the real labels of their steps."""

    latents: Tensor  # float16 [N, K - 1 + H + 1, C, h, w]: K - 1 copies of the first frame, then every frame
    actions: np.ndarray  # int64 [N, H + 1]: the action taken after each frame
    rewards: np.ndarray  # float32 [N, H + 1]: the real game's reward of that step
    terminated: np.ndarray  # bool [N, H + 1]

    @property
    def window(self) -> int:
        """K, the frames of each window: the latents hold K - 1 more frames than the steps."""
        return self.latents.shape[1] - self.actions.shape[1] + 1

    @property
    def count(self) -> int:
        """Windows held: one per step of every clip."""
        return self.actions.size

    def windows(self, picks: np.ndarray) -> tuple[Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """Windows `picks` (flat indices over [N, H + 1]) → (latents float [n, K, C, h, w], actions,
        rewards, terminated)."""
        clip, step = np.divmod(picks, self.actions.shape[1])
        frames = torch.from_numpy(step[:, None] + np.arange(self.window))
        latents = self.latents[torch.from_numpy(clip)[:, None], frames].float()
        return latents, self.actions[clip, step], self.rewards[clip, step], self.terminated[clip, step]


@torch.no_grad()
def generate_windows(world, clips: Clip, event_texts: Sequence[str], batch_size: int, seed: int) -> GeneratedWindows:
    """Drive the world along `clips` (real frames, actions and events; `event_texts` names the
    dataset's event ids, -1 = none) `batch_size` clips at a time; see the module docstring."""
    num_clips, num_frames = clips.actions.shape

    def texts(event_ids: np.ndarray) -> list[str]:
        return [event_texts[i] if i >= 0 else "" for i in event_ids.tolist()]

    parts = []
    for begin in range(0, num_clips, batch_size):
        rows = slice(begin, min(begin + batch_size, num_clips))
        simulator = Simulator(world, batch_size=rows.stop - rows.start, seed=seed + begin)
        simulator.reset(event=texts(clips.events[rows, 0]), context=clips.frames[rows, 0])
        sequence = [simulator.reward_window]  # K copies of the first frame: K - 1 pads and frame 0
        for step in range(num_frames - 1):
            simulator.step(clips.actions[rows, step], events=texts(clips.events[rows, step + 1]))
            sequence.append(simulator.reward_window[:, -1:])
        parts.append(torch.cat(sequence, dim=1).half().cpu())
    return GeneratedWindows(latents=torch.cat(parts), actions=clips.actions, rewards=clips.rewards,
                            terminated=clips.terminated)
