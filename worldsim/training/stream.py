"""Stage `stream`: streaming long tuning with event switches.

A step generates one long sequence per row, chunk by chunk, with the persistent KV cache (its
sink + ring window keep memory bounded however long the sequence is). Each chunk's scoring window
is a few overlap frames (the end of the previous chunk, clean, no gradient) followed by the
chunk's new frames; the DMD loss on the new frames updates the generator after every chunk, and
the critic follows. Two scripts give a sequence its conditions:

- `random` (default): sticky random actions (held for a random number of frames, like the data's
  exploration policy), and at random chunk boundaries (the same on every rank) the event switches
  to a random other event, so the model learns to react to switches deep into a rollout;
- `clip`: a real clip as long as the sequence gives the actions and the events, with the switches
  where the game had them (per row, anywhere in a chunk). There are true frames then, so the
  carried-map anchor of `dmd` (`anchor_weight`) applies to every chunk: without it, distribution
  matching on long rollouts lets the map drift (nothing ties a frame to the map it continues).

This is the baseline that Delta Forcing (`delta`) improves; `chunk_loss` is what it overrides.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldsim.data import Clip
from worldsim.training import losses
from worldsim.training.batches import condition_actions, pixel_sprite_cells
from worldsim.training.common import save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.distribution_matching import ScoredWindow
from worldsim.training.dmd import DMDConfig, DMDStage, RolloutConditions
from worldsim.training.self_rollout import Anchor
from worldsim.training.trainer import TrainSummary

__all__ = ["StreamConfig", "StreamStage", "sticky_actions", "switched_event_ids", "chunks_since_switch"]

SCRIPTS = ("random", "clip")


@dataclass
class StreamConfig(DMDConfig):
    frames: int = 4  # new frames per chunk
    chunks: int = 16  # chunks per sequence
    overlap_frames: int = 2  # earlier frames in each chunk's scoring window
    context_frames: int = 1  # real frames each sequence starts from (0 = from scratch)
    switch_prob: float = 0.3  # chance of an event switch at each chunk boundary
    max_hold: int = 8  # sticky actions are held 1..max_hold frames
    script: str = "random"  # random: sticky actions, synthetic switches | clip: a real clip's actions and events
    # >= 0: the anchor also skips the cells within this many cells of where the *generated* frames
    # change in a way the scroll does not explain (losses.sprite_cells of the decoded rollout), so a
    # sprite the generator moves off the true one's path is not painted out, while a still
    # invention (a coin) is held to the truth once sprite_hold_frames have passed. -1 = off.
    anchor_motion_margin: int = -1
    # > 0: the anchor holds only the first this many chunks of a sequence, where the rollout still
    # follows the clip; later chunks, whose carried cells a drifted rollout may not determine, are
    # left to the scores. 0 = every chunk.
    anchor_chunks: int = 0
    steps: int = 1000
    batch_size: int = 4

    def validate(self) -> None:
        super().validate()
        if self.chunks < 1 or self.overlap_frames < 0 or self.max_hold < 1:
            raise ConfigError("chunks and max_hold must be >= 1 and overlap_frames >= 0")
        if not 0.0 <= self.switch_prob <= 1.0:
            raise ConfigError(f"switch_prob must be in [0, 1], got {self.switch_prob}")
        if self.script not in SCRIPTS:
            raise ConfigError(f"script must be one of {SCRIPTS}, got {self.script!r}")
        if self.anchor_weight and self.script != "clip":
            raise ConfigError("anchor_weight needs script=clip: only a real clip has true frames to anchor to")
        if self.teacher_forcing.weight and self.script != "clip":
            raise ConfigError("teacher_forcing.weight needs script=clip: the term trains on the real clip")
        if self.anchor_chunks < 0:
            raise ConfigError(f"anchor_chunks must be >= 0, got {self.anchor_chunks}")
        if self.anchor_motion_margin < -1:
            raise ConfigError(f"anchor_motion_margin must be >= -1, got {self.anchor_motion_margin}")
        if self.anchor_motion_margin >= 0 and not self.anchor_weight:
            raise ConfigError("anchor_motion_margin needs anchor_weight > 0: it takes cells out of the anchor")
        if self.dmd_sprite_margin >= 0 and self.script != "clip":
            raise ConfigError("dmd_sprite_margin needs script=clip: only a real clip shows where its sprites are")


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


def chunks_since_switch(event_ids: Tensor, first_frame: int, chunk_frames: int) -> Tensor:
    """long `[chunks, B]`: per chunk and row, how many chunks ago the row's event last switched (0:
    a switch into one of this chunk's frames), -1 before the row's first switch.

    `event_ids` `[B, F]` hold the whole sequence; chunks start at `first_frame` (the frames before
    are the real context, whose switches the generator was shown rather than made) and tile the rest.
    """
    batch, total = event_ids.shape
    num_chunks = (total - first_frame) // chunk_frames
    switched = torch.zeros(batch, total, dtype=torch.bool, device=event_ids.device)
    switched[:, 1:] = event_ids[:, 1:] != event_ids[:, :-1]
    in_chunk = switched[:, first_frame:first_frame + num_chunks * chunk_frames]
    in_chunk = in_chunk.reshape(batch, num_chunks, chunk_frames).any(dim=2).T  # [chunks, B]
    since = torch.full((batch,), -1, dtype=torch.long, device=event_ids.device)
    rows = []
    for switches in in_chunk:
        since = torch.where(switches, 0, since + (since >= 0).long())  # -1 stays -1 until a switch
        rows.append(since)
    return torch.stack(rows)


class StreamStage(DMDStage):
    name = "stream"
    role = "few-step causal generator (streaming long tuning)"

    def __init__(self, config: StreamConfig, context: DistributedContext):
        super().__init__(config, context)
        self.samples_per_step = config.batch_size * config.chunks  # chunk windows per step

    def clip_frames(self) -> int:
        if self.config.script == "clip":
            return self.sequence_frames()
        return max(self.config.context_frames, 1)

    def sequence_frames(self) -> int:
        return self.config.context_frames + self.config.chunks * self.config.frames

    def sequence_conditions(self, clip: Clip) -> tuple[RolloutConditions, Tensor]:
        """Conditions of a whole sequence (context frames first) and its event ids `[B, F]`."""
        if self.config.script == "clip":
            event_ids = torch.from_numpy(clip.events).to(self.context.device)
            return self.clip_conditions(clip), event_ids
        return self.random_conditions(clip)

    def random_conditions(self, clip: Clip) -> tuple[RolloutConditions, Tensor]:
        """Sticky random actions after the clip's context, and synthetic switches at chunk boundaries."""
        config, device = self.config, self.context.device
        context_count, total = config.context_frames, self.sequence_frames()
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
        return RolloutConditions(actions, student_events, teacher_events), event_ids

    def anchor(self) -> Anchor | None:
        """A network that follows the rollout at the same inputs (Delta Forcing's M3 uses the EMA)."""
        return None

    def chunk_loss(self, scored: ScoredWindow, frames: Tensor, history: Tensor | None, anchor_frames: Tensor | None,
                   since_switch: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The generator's loss for one chunk (plain DMD here).

        `history` holds the clean frames before the chunk (None at a from-scratch start),
        `since_switch` (long `[B]`) how many chunks ago each row's event switched: 0 for the chunk
        a switch falls in, 1 for the next, ..., -1 before the row's first switch.
        """
        return scored.per_sample_loss.mean(), {}

    def train_step(self, step: int) -> dict[str, float]:
        config = self.config
        clip = self.clips.batch(step)
        conditions, event_ids = self.sequence_conditions(clip)
        pending, history = self.context_start(clip, conditions)
        true_clip = self.true_clip(clip)
        anchored, spared = self.carried_truth(true_clip), self.sprite_spared(true_clip)
        # Once per sequence, with the first chunk's update: the term reads the whole clip.
        teacher_forcing, teacher_forcing_metrics = self.teacher_forcing_loss(true_clip, conditions)
        since_switch = chunks_since_switch(event_ids, config.context_frames, config.frames)
        cache = self.generator.new_cache(config.batch_size, device=self.context.device)
        anchor = self.anchor()
        totals: dict[str, list[float]] = {}
        for chunk in range(config.chunks):
            start = config.context_frames + chunk * config.frames
            new = slice(start, start + config.frames)
            result = self.generate(conditions.for_student(new), cache, pending, self.draw_exits(), anchor)
            pending = result.pending
            overlap = None if history is None or config.overlap_frames == 0 else history[:, -config.overlap_frames:]
            window = slice(start - (0 if overlap is None else overlap.shape[1]), new.stop)
            chunk_frames = slice(chunk * config.frames, (chunk + 1) * config.frames)  # counted after the context
            truth, carried = self.chunk_anchor(anchored, chunk, chunk_frames, result.frames, history)
            scored = self.scores.score(result.frames, overlap, *conditions.window(window),
                                       self.dmd_cells(carried, self.frames_of(spared, chunk_frames)))
            loss, metrics = self.chunk_loss(scored, result.frames, history, result.anchor_frames, since_switch[chunk])
            anchor_term, anchor_metrics = self.anchor_loss(result.frames, truth, carried)
            metrics.update(anchor_metrics)
            if chunk == 0:
                loss, metrics = loss + teacher_forcing, {**metrics, **teacher_forcing_metrics}
            metrics.update(self.update_generator(loss + anchor_term, step))
            metrics.update(self.train_critic(result.frames, overlap, *conditions.window(window)))
            metrics["fake_real_gap"] = scored.fake_real_gap()
            for key, value in metrics.items():
                totals.setdefault(key, []).append(value)
            recent = result.frames.detach()
            history = recent if history is None else torch.cat([history, recent], dim=1)[:, -self.history_frames():]
        return {key: sum(values) / len(values) for key, values in totals.items()}

    def chunk_anchor(self, anchored: tuple[Tensor, Tensor] | None, chunk: int, chunk_frames: slice, frames: Tensor,
                     history: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """The true latents and the cells the anchor holds in chunk `chunk` (`chunk_frames` after the
        context; its generated `frames` after the clean `history`), or Nones: none past
        `anchor_chunks`, and not the cells where the rollout moves (`anchor_motion_margin`)."""
        config = self.config
        if config.anchor_chunks and chunk >= config.anchor_chunks:
            return None, None
        truth, carried = self.anchored_frames(anchored, chunk_frames)
        if carried is not None and config.anchor_motion_margin >= 0:
            carried = carried & ~self.generated_motion(frames, history)
        return truth, carried

    def generated_motion(self, frames: Tensor, history: Tensor | None) -> Tensor:
        """bool `[B, F, h, w]`: the cells within `anchor_motion_margin` of where the generated chunk
        `frames` (latents) changes unexplained by the scroll, read from its decoded pixels after the
        clean frames before it (`history`); of those only the last `sprite_hold_frames` + 1 are
        decoded, the most that can carry the hold of a change into the chunk."""
        config = self.config
        with torch.no_grad():
            rollout = frames if history is None else torch.cat(
                [history[:, -(config.sprite_hold_frames + 1):], frames], dim=1)
            batch, num_frames, _, grid = rollout.shape[:4]
            pixels = self.world.autoencoder.decode(rollout.detach().flatten(0, 1)).clamp(-1, 1)
            moved = pixel_sprite_cells(pixels.view(batch, num_frames, *pixels.shape[1:]), grid,
                                       config.sprite_hold_frames)
            return losses.near_cells(moved[:, -frames.shape[1]:], config.anchor_motion_margin)

    def history_frames(self) -> int:
        """Clean frames kept from earlier chunks (for the overlap and the continuity terms)."""
        return max(self.config.overlap_frames, self.config.frames, 1)

    def record(self) -> dict[str, Any]:
        """What this stage adds to the world's training record."""
        config = self.config
        record = {"chunks": config.chunks, "chunk_frames": config.frames, "script": config.script}
        if config.anchor_weight:
            record.update(anchor_weight=config.anchor_weight, anchor_across_restyles=config.anchor_across_restyles,
                          dmd_on_carried=config.dmd_on_carried)
        if config.teacher_forcing.weight:
            record["teacher_forcing"] = asdict(config.teacher_forcing)
        if config.dmd_sprite_margin >= 0:
            record["dmd_sprite_margin"] = config.dmd_sprite_margin
        if config.anchor_motion_margin >= 0:
            record["anchor_motion_margin"] = config.anchor_motion_margin
        if config.anchor_chunks:
            record["anchor_chunks"] = config.anchor_chunks
        return record

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.generator.load_state_dict(self.ema.state_dict())
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, **self.record())
