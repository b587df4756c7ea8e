"""Stage `stream`: streaming long tuning with event switches.

A step generates one long sequence per row, chunk by chunk, with the persistent KV cache (its
sink + ring window keep memory bounded however long the sequence is). Each chunk's scoring window
is a few overlap frames (the end of the previous chunk, clean, no gradient) followed by the
chunk's new frames; the DMD loss on the new frames updates the generator after every chunk, and
the critic follows. At random chunk boundaries (the same on every rank) the event switches to a
random other event, so the model learns to react to switches deep into a rollout. Actions are
sticky random (held for a random number of frames), like the data's exploration policy.

This is the baseline that Delta Forcing (`delta`) improves; `chunk_loss` is what it overrides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldsim.sampling.frame_sampler import CleanFrames
from worldsim.training.batches import condition_actions
from worldsim.training.common import save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.distribution_matching import ScoredWindow
from worldsim.training.dmd import DMDConfig, DMDStage, RolloutConditions
from worldsim.training.self_rollout import Anchor
from worldsim.training.trainer import TrainSummary

__all__ = ["StreamConfig", "StreamStage", "sticky_actions", "switched_event_ids"]


@dataclass
class StreamConfig(DMDConfig):
    frames: int = 4  # new frames per chunk
    chunks: int = 16  # chunks per sequence
    overlap_frames: int = 2  # earlier frames in each chunk's scoring window
    context_frames: int = 1  # real frames each sequence starts from (0 = from scratch)
    switch_prob: float = 0.3  # chance of an event switch at each chunk boundary
    max_hold: int = 8  # sticky actions are held 1..max_hold frames
    steps: int = 1000
    batch_size: int = 4

    def validate(self) -> None:
        super().validate()
        if self.chunks < 1 or self.overlap_frames < 0 or self.max_hold < 1:
            raise ConfigError("chunks and max_hold must be >= 1 and overlap_frames >= 0")
        if not 0.0 <= self.switch_prob <= 1.0:
            raise ConfigError(f"switch_prob must be in [0, 1], got {self.switch_prob}")


def sticky_actions(batch: int, frames: int, num_actions: int, max_hold: int, device: torch.device) -> Tensor:
    """Random actions `[B, F]`, each held for 1..max_hold frames (global torch RNG)."""
    actions = torch.empty(batch, frames, dtype=torch.long)
    for row in range(batch):
        frame = 0
        while frame < frames:
            hold = int(torch.randint(1, max_hold + 1, ()))
            actions[row, frame:frame + hold] = int(torch.randint(num_actions, ()))
            frame += hold
    return actions.to(device)


def switched_event_ids(start_ids: Tensor, frames: int, switch_frames: list[int], num_texts: int) -> Tensor:
    """Event ids `[B, F]`: each row's start id, switching to a random other text at `switch_frames`.

    A dataset without event texts (a recorded game) has nothing to switch to: its rows keep "no event".
    """
    batch = start_ids.shape[0]
    ids = start_ids[:, None].repeat(1, frames)
    if num_texts == 0:
        return ids
    for frame in switch_frames:
        current = ids[:, frame]
        # a uniformly random *different* id (no-event rows may switch to any text)
        offset = torch.randint(1, num_texts, (batch,), device=ids.device) if num_texts > 1 else torch.zeros_like(current)
        new = torch.where(current < 0, torch.randint(num_texts, (batch,), device=ids.device), (current + offset) % num_texts)
        ids[:, frame:] = new[:, None]
    return ids


class StreamStage(DMDStage):
    name = "stream"
    role = "few-step causal generator (streaming long tuning)"

    def __init__(self, config: StreamConfig, context: DistributedContext):
        super().__init__(config, context)
        self.samples_per_step = config.batch_size * config.chunks  # chunk windows per step

    def clip_frames(self) -> int:
        return max(self.config.context_frames, 1)

    def sequence_conditions(self, step: int) -> tuple[RolloutConditions, CleanFrames | None, Tensor | None, list[int]]:
        """Conditions of a whole sequence (context frames first), its start, and the switch chunks."""
        config = self.config
        clip = self.clips.batch(step)
        device = self.context.device
        context_count, total = config.context_frames, config.context_frames + config.chunks * config.frames
        switch_chunks = broadcast_choice(
            lambda: [k for k in range(1, config.chunks) if float(torch.rand(())) < config.switch_prob], self.context)
        start_ids = torch.from_numpy(clip.events[:, -1]).to(device)
        switch_frames = [context_count + k * config.frames for k in switch_chunks]
        event_ids = switched_event_ids(start_ids, total, switch_frames, len(self.dataset.event_texts))
        actions = sticky_actions(config.batch_size, total, self.world.config.num_actions, config.max_hold, device)
        real_actions = condition_actions(torch.from_numpy(clip.actions).to(device), self.world.config.no_action)
        actions[:, :context_count] = real_actions[:, :context_count]  # the context frames keep their real actions
        actions[:, 0] = self.world.config.no_action
        student_events, teacher_events = self.embed_event_ids(event_ids)
        conditions = RolloutConditions(actions, student_events, teacher_events)
        return (conditions, *self.context_start(clip, conditions), switch_chunks)

    def anchor(self) -> Anchor | None:
        """A network that follows the rollout at the same inputs (Delta Forcing's M3 uses the EMA)."""
        return None

    def chunk_loss(self, scored: ScoredWindow, frames: Tensor, history: Tensor | None, anchor_frames: Tensor | None,
                   chunks_since_switch: int | None) -> tuple[Tensor, dict[str, float]]:
        """The generator's loss for one chunk (plain DMD here).

        `history` holds the clean frames before the chunk (None at a from-scratch start),
        `chunks_since_switch` is 0 for the chunk that starts at a switch, 1 for the next, ...,
        None before the first switch.
        """
        return scored.per_sample_loss.mean(), {}

    def train_step(self, step: int) -> dict[str, float]:
        config = self.config
        conditions, pending, history, switch_chunks = self.sequence_conditions(step)
        cache = self.generator.new_cache(config.batch_size, device=self.context.device)
        anchor = self.anchor()
        totals: dict[str, list[float]] = {}
        since_switch = None
        for chunk in range(config.chunks):
            since_switch = 0 if chunk in switch_chunks else (None if since_switch is None else since_switch + 1)
            start = config.context_frames + chunk * config.frames
            new = slice(start, start + config.frames)
            result = self.generate(conditions.for_student(new), cache, pending, self.draw_exits(), anchor)
            pending = result.pending
            overlap = None if history is None or config.overlap_frames == 0 else history[:, -config.overlap_frames:]
            window = slice(start - (0 if overlap is None else overlap.shape[1]), new.stop)
            scored = self.scores.score(result.frames, overlap, *conditions.window(window))
            loss, metrics = self.chunk_loss(scored, result.frames, history, result.anchor_frames, since_switch)
            metrics.update(self.update_generator(loss, step))
            metrics.update(self.train_critic(result.frames, overlap, *conditions.window(window)))
            metrics["fake_real_gap"] = scored.fake_real_gap()
            for key, value in metrics.items():
                totals.setdefault(key, []).append(value)
            recent = result.frames.detach()
            history = recent if history is None else torch.cat([history, recent], dim=1)[:, -self.history_frames():]
        return {key: sum(values) / len(values) for key, values in totals.items()}

    def history_frames(self) -> int:
        """Clean frames kept from earlier chunks (for the overlap and the continuity terms)."""
        return max(self.config.overlap_frames, self.config.frames, 1)

    def record(self) -> dict[str, Any]:
        """What this stage adds to the world's training record."""
        return {"chunks": self.config.chunks, "chunk_frames": self.config.frames}

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.generator.load_state_dict(self.ema.state_dict())
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, **self.record())
