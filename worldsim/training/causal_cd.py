"""Stage `causal-cd`: Causal Forcing++ — causal consistency distillation.

The student starts as a copy of the AR teacher and learns to jump from any noise level straight
to the end of the teacher's ODE, so that it can sample in 2 (first frame: 4) steps. Per frame,
pick adjacent levels (t, t') of an N-step grid (N = 48 puts the 2- and 4-step sampling levels on
grid points); noise the real clip to t; one no-grad Euler step of the frozen AR teacher (with
classifier-free guidance on the event) gives x_{t'}; the target is the x0 that an EMA copy of the
student predicts at (x_{t'}, t'); the loss is the MSE between the student's x0 at (x_t, t) and
the target. Teacher, student and target all see the real clean prefix (teacher-forcing layout),
exactly the context a causal sampler gives them.

`target="ode"` replaces the one-step target by the end of the teacher's ODE, integrated in
`ode_steps` Euler steps from the level the student is trained at (drawn from the levels the
few-step sampler visits) down to clean: a direct regression of the many-step ODE sampler, whose
target does not depend on the student (the EMA is then only the weights shipped). With
`ode_region="new"` the ODE end is the target only where the true frame before does not determine
a cell (new ground, a moved sprite, a restyle); carried cells regress onto the true frame, which
the context fixes, so the student keeps the map while it learns to commit on new ground.
`ode_region="new+sprites"` also keeps the ODE end on carried cells near a true sprite (one that
arrived, held or left within `sprite_hold_frames`): a standing enemy is carried ground, and its
regression onto the truth teaches the mean of "stays" and "steps", which fades it.
`sprite_weight` puts `1 + sprite_weight` on those same cells near a true sprite in the loss (any
target): a sprite is a cell or two of 256 in a frame, so without it the student spends its
capacity on the map and learns the teacher's sprites last. `switch_weight` puts `1 + switch_weight`
on the frames where the event switches (`losses.switch_weight`, as the ar-teacher stage's): the
restyle, the coin shower or the enemies of a new event appear in that one frame of a clip.
`reader_start` trains the student for a sampler that starts each frame from the history reader's
guess (`sampling.reader_start`): on the frames that sampler starts from the guess (every frame
after the first, unless the event switches at it), the student's input is the guess of the true
context noised to that level, or, at the levels below it, the student's own sampler steps from
there, exactly as the sampler runs; the target is the teacher's ODE end from that same input. A
student only ever trained on noised truth meets the guess's errors (blurred new ground, a sprite
stepped the wrong way) for the first time while sampling; this one learns to correct them.
`guess_share` < 1 gives only that share of those frames the guess and the rest the truth noised to
the same levels: a student trained on the guess also learns to doubt it, and fades the enemies it
shows (the mean of where they might be), while one trained on truth keeps what its input shows.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from worldsim.data import Clip, Dataset
from worldsim.model import flow
from worldsim.sampling.frame_sampler import denoise_step, levels_from_guess
from worldsim.training import losses
from worldsim.training.batches import ClipStream, clip_sprite_cells, to_model_batch
from worldsim.training.common import StageConfig, freeze, load_grown_world, load_world, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext
from worldsim.training.ema import ema_copy, ema_update
from worldsim.training.event_conditioning import EventVocabulary, embed_texts
from worldsim.training.self_rollout import gaussian_noise_source
from worldsim.training.trainer import TrainSummary, make_scaled_adamw, optimizer_step

__all__ = ["CausalCDConfig", "CausalCDStage", "started_from_guess"]

TARGETS = ("consistency", "ode")
ODE_REGIONS = ("all", "new", "new+sprites")


@dataclass
class CausalCDConfig(StageConfig):
    clip_frames: int = 16
    steps: int = 10000
    batch_size: int = 16
    lr: float = 5e-5
    grid_steps: int = 48
    guidance: float = 1.5  # classifier-free guidance of the teacher on the event condition
    ema_decay: float = 0.99  # the target network's decay (this stage always keeps an EMA)
    # The teacher's world folder; empty: a frozen copy of `init` (the AR teacher distils itself).
    # Another world, e.g. the AR teacher of a student that is already few-step, lends only its
    # transformer and event encoder.
    teacher: str = ""
    target: str = "consistency"  # "consistency" (teacher step + EMA student) or "ode" (teacher ODE end)
    ode_steps: int = 8  # "ode": the teacher's Euler steps from the training level down to clean
    # "ode": where the ODE end is the target. "all": every cell; "new": the cells the true frame
    # before does not carry (losses.carried_from_previous), the truth on the rest; "new+sprites":
    # those and the cells within `sprite_margin` of a true sprite (batches.clip_sprite_cells)
    ode_region: str = "all"
    carried_tolerance: float = 0.05  # "new", "new+sprites": a cell is carried below this latent distance
    sprite_margin: int = 1  # "new+sprites", sprite_weight: cells around a sprite cell that count as near it
    sprite_hold_frames: int = 2  # "new+sprites", sprite_weight: frames a sprite cell stays marked after it changed
    sprite_weight: float = 0.0  # extra loss weight on the cells near a true sprite (losses.weight_on_cells)
    switch_weight: float = 0.0  # extra loss weight on the frames where the event switches (losses.switch_weight)
    # "ode": train for the sampler that starts frames from the history reader's guess noised to
    # this level (0 = from noise); the saved world samples that way. Needs a world with a reader.
    reader_start: float = 0.0
    guess_share: float = 1.0  # reader_start: share of the frames started from the guess whose input is it
    # Grow the init world's generator before training, keeping its weights (common.with_grown_transformer),
    # e.g. ["event_change=true"] to distil a teacher that reads the event's change.
    transformer_changes: list[str] = field(default_factory=list)
    # Learning-rate multipliers of the student's parameters by name prefix, e.g. {"event_change_proj":
    # 10}: a grown part starts at zero and only rare frames (an event switch) train it.
    lr_scales: dict[str, float] = field(default_factory=dict)

    def validate(self) -> None:
        super().validate()
        self.require_init("the ar-teacher stage's final world")
        if self.ema_decay <= 0:
            raise ConfigError("ema_decay must be > 0: the consistency target is the EMA student")
        if self.guidance < 0:
            raise ConfigError(f"guidance must be >= 0, got {self.guidance}")
        if self.target not in TARGETS:
            raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.ode_steps < 1:
            raise ConfigError(f"ode_steps must be >= 1, got {self.ode_steps}")
        if self.ode_region not in ODE_REGIONS:
            raise ConfigError(f"ode_region must be one of {', '.join(ODE_REGIONS)}, got {self.ode_region!r}")
        if self.ode_region != "all" and self.target != "ode":
            raise ConfigError("ode_region applies to target=ode only")
        if self.carried_tolerance <= 0:
            raise ConfigError(f"carried_tolerance must be > 0, got {self.carried_tolerance}")
        if self.sprite_margin < 0 or self.sprite_hold_frames < 0:
            raise ConfigError(f"sprite_margin and sprite_hold_frames must be >= 0, got "
                              f"{self.sprite_margin} and {self.sprite_hold_frames}")
        if self.sprite_weight < 0:
            raise ConfigError(f"sprite_weight must be >= 0, got {self.sprite_weight}")
        if self.switch_weight < 0:
            raise ConfigError(f"switch_weight must be >= 0, got {self.switch_weight}")
        if not 0.0 <= self.reader_start < 1.0:
            raise ConfigError(f"reader_start must be in [0, 1), got {self.reader_start}")
        if self.reader_start and self.target != "ode":
            raise ConfigError("reader_start applies to target=ode only")
        if not 0.0 <= self.guess_share <= 1.0:
            raise ConfigError(f"guess_share must be in [0, 1], got {self.guess_share}")
        if self.guess_share < 1.0 and not self.reader_start:
            raise ConfigError("guess_share applies with reader_start only")

    @property
    def uses_sprites(self) -> bool:
        """Whether a step needs the cells near the clip's true sprites."""
        return self.ode_region == "new+sprites" or self.sprite_weight > 0


class CausalCDStage:
    name = "causal-cd"

    def __init__(self, config: CausalCDConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        self.world = load_grown_world(config.init, config.transformer_changes, context.device)
        for module in (self.world.autoencoder, self.world.event_encoder, self.world.reward_model):
            freeze(module)
        self.student = self.world.transformer.train()
        teacher_world = load_world(config.teacher, context.device) if config.teacher else None
        self.teacher = freeze(copy.deepcopy(self.student) if teacher_world is None else teacher_world.transformer)
        self.teacher_text = (None if teacher_world is None
                             else (teacher_world.tokenizer, freeze(teacher_world.event_encoder)))
        self.target = ema_copy(self.student)
        self.optimizer = make_scaled_adamw(self.student.named_parameters(), config.lr_scales, config)
        sampling = self.world.config.sampling
        levels = math.lcm(sampling.num_steps, sampling.first_frame_steps)
        if config.grid_steps % levels:
            raise ConfigError(f"grid_steps ({config.grid_steps}) must be a multiple of {levels} so that the "
                              f"{sampling.num_steps}- and {sampling.first_frame_steps}-step levels are grid points")
        grid = losses.consistency_grid(config.grid_steps, levels)
        self.grid = flow.shift_sigma(grid, sampling.sigma_shift).to(context.device)
        visited = set(sampling.step_sigmas()) | set(sampling.step_sigmas(first_frame=True))
        self.sampler_levels = torch.tensor(sorted(visited - {0.0}, reverse=True), device=context.device)
        self.ode_fractions = flow.sigma_grid(config.ode_steps, sampling.sigma_shift).to(context.device)
        self.reader_levels = self._reader_levels()
        self.vocabulary = EventVocabulary(self.dataset.event_texts, self.dataset.world)
        self.clips = ClipStream(self.dataset, config.clip_frames, config.batch_size, config.seed, context.rank,
                                label_boost=config.label_boost)
        self.samples_per_step = config.batch_size

    def _reader_levels(self) -> list[float]:
        """The levels a frame started from the reader's guess takes: the start, then the sampler's
        levels below it (empty without `reader_start`)."""
        start = self.config.reader_start
        if not start:
            return []
        if self.world.config.transformer.local_reader_channels == 0:
            raise ConfigError(f"reader_start needs a world with a history reader; {self.config.init} has none "
                              "(the reader stage gives it one)")
        return [sigma for sigma in levels_from_guess(self.world.config.sampling.step_sigmas(), start) if sigma > 0.0]

    def modules(self):
        return {"student": self.student, "target": self.target}

    def optimizers(self):
        return {"student": self.optimizer}

    def train_step(self, step: int) -> dict[str, float]:
        clip = self.clips.batch(step)
        batch = to_model_batch(clip, self.world.autoencoder, self.world.config.no_action)
        clean, actions = batch.latents, batch.actions
        with torch.no_grad():
            texts, index = self.vocabulary.sample_texts(batch.event_ids)  # one paraphrase per frame for both
            events = embed_texts(texts, index, self.world.tokenizer, self.world.event_encoder)
            teacher_events = events if self.teacher_text is None else embed_texts(texts, index, *self.teacher_text)
        near_sprites = self._near_sprite_cells(clip, clean)
        noisy, sigma, target = self._targets(clean, actions, events, teacher_events, batch.event_ids,
                                             self._truth_cells(clean, near_sprites))
        student_x0 = flow.x0_from_velocity(
            noisy, sigma, self.student.forward_teacher_forcing(clean, noisy, sigma, actions, events))
        loss = self._loss(student_x0, target, batch.event_ids, near_sprites)
        grad_norm = optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        ema_update(self.target, self.student, self.config.ema_decay)
        with torch.no_grad():
            error_to_data = (student_x0 - clean).pow(2).mean().item()
        return {"loss": loss.item(), "grad_norm": grad_norm, "x0_mse_to_data": error_to_data}

    def _loss(self, student_x0: Tensor, target: Tensor, event_ids: Tensor, near_sprites: Tensor | None) -> Tensor:
        """The consistency loss with the stage's weights: `switch_weight` on the frames where the
        event switches, `sprite_weight` on the cells near a true sprite."""
        config = self.config
        frame_weight = losses.switch_weight(event_ids, config.switch_weight) if config.switch_weight else None
        cell_weight = losses.weight_on_cells(near_sprites, config.sprite_weight) if config.sprite_weight else None
        return losses.consistency_loss(student_x0, target, weight=frame_weight, cell_weight=cell_weight)

    def _near_sprite_cells(self, clip: Clip, clean: Tensor) -> Tensor | None:
        """bool `[B, F, h, w]`: the cells within `sprite_margin` of a true sprite (None: not needed)."""
        if not self.config.uses_sprites:
            return None
        sprites = clip_sprite_cells(torch.from_numpy(clip.frames), clean.shape[-1], self.config.sprite_hold_frames)
        return losses.near_cells(sprites.to(clean.device), self.config.sprite_margin)

    def _truth_cells(self, clean: Tensor, near_sprites: Tensor | None) -> Tensor | None:
        """bool `[B, F, h, w]`: the cells whose target is the true frame, not the ODE end (None: none)."""
        if self.config.ode_region == "all":
            return None
        carried = losses.carried_from_previous(clean, self.config.carried_tolerance)
        if self.config.ode_region == "new":
            return carried
        return carried & ~near_sprites

    def _targets(self, clean: Tensor, actions: Tensor, events: Tensor, teacher_events: Tensor,
                 event_ids: Tensor, truth_cells: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """(noisy frames, their levels [B, F], the x0 the student regresses onto) for one batch;
        `truth_cells` (target="ode") take the true frame as their target."""
        shape = clean.shape[:2]

        def teacher_velocity(x: Tensor, s: Tensor, conditioned: bool) -> Tensor:
            return self.teacher.forward_teacher_forcing(clean, x, s, actions, teacher_events if conditioned else None)

        if self.config.target == "ode":
            sigma = self.sampler_levels[torch.randint(0, len(self.sampler_levels), shape, device=clean.device)]
            noisy = flow.add_noise(clean, torch.randn_like(clean), sigma)
            if self.reader_levels:
                noisy, sigma = self._reader_started(clean, actions, events, event_ids, noisy, sigma)
            target = losses.ode_target(teacher_velocity, noisy, sigma, self.ode_fractions, self.config.guidance)
            if truth_cells is not None:
                target = losses.target_on_new_cells(target, clean, truth_cells)
            return noisy, sigma, target
        index = torch.randint(0, self.config.grid_steps, shape, device=clean.device)
        sigma, sigma_next = self.grid[index], self.grid[index + 1]
        noisy = flow.add_noise(clean, torch.randn_like(clean), sigma)

        def target_x0(x: Tensor, s: Tensor) -> Tensor:
            return flow.x0_from_velocity(x, s, self.target.forward_teacher_forcing(clean, x, s, actions, events))

        target = losses.consistency_target(teacher_velocity, target_x0, noisy, sigma, sigma_next,
                                           self.config.guidance)
        return noisy, sigma, target

    def _reader_started(self, clean: Tensor, actions: Tensor, events: Tensor, event_ids: Tensor, noisy: Tensor,
                        sigma: Tensor) -> tuple[Tensor, Tensor]:
        """`noisy` and `sigma` with the frames a reader-started sampler starts from the guess
        replaced by what that sampler feeds the student there (`_guess_inputs`, the level drawn per
        frame); on `1 - guess_share` of those frames (drawn per frame) the truth noised to that level
        instead. With `guess_share=0` the guess is never computed."""
        levels = self.reader_levels
        guess_inputs = (self._guess_inputs(clean, actions, events, sigma) if self.config.guess_share > 0.0
                        else None)
        depth = torch.randint(0, len(levels), sigma.shape, device=sigma.device)
        started = started_from_guess(event_ids)
        level = torch.tensor(levels, dtype=sigma.dtype, device=sigma.device)[depth]
        from_guess = started & (torch.rand(sigma.shape, device=sigma.device) < self.config.guess_share)
        inputs_at_level = flow.add_noise(clean, torch.randn_like(clean), level)
        per_frame = (*sigma.shape, 1, 1, 1)  # a frame's choice covers all of its latent
        if guess_inputs is not None:
            picked = guess_inputs[depth, torch.arange(sigma.shape[0], device=sigma.device)[:, None],
                                  torch.arange(sigma.shape[1], device=sigma.device)]
            inputs_at_level = torch.where(from_guess.view(per_frame), picked, inputs_at_level)
        return (torch.where(started.view(per_frame), inputs_at_level, noisy), torch.where(started, level, sigma))

    def _guess_inputs(self, clean: Tensor, actions: Tensor, events: Tensor, sigma: Tensor) -> Tensor:
        """`[L, B, F, C, h, w]`: for each of the reader levels, what the sampler feeds the student
        there: the guess of the true context noised to the start, then the student's own sampler
        steps from it (`denoise_step` with the world's `fresh_noise`)."""
        levels = self.reader_levels
        with torch.no_grad():
            guess = self.student.read_next(clean, torch.zeros_like(sigma), actions)
            inputs = [flow.add_noise(guess, torch.randn_like(guess), levels[0])]
            noise = gaussian_noise_source(guess)
            for now, later in zip(levels[:-1], levels[1:]):
                velocity = self.student.forward_teacher_forcing(clean, inputs[-1], torch.full_like(sigma, now),
                                                                actions, events)
                inputs.append(denoise_step(inputs[-1], now, later, velocity, noise,
                                           self.world.config.sampling.fresh_noise))
        return torch.stack(inputs)

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.student.load_state_dict(self.target.state_dict())  # ship the EMA student
        self.world.metadata["role"] = "few-step causal student (Causal Forcing++)"
        if self.config.reader_start:
            self.world.config.sampling.reader_start = self.config.reader_start
        save_world(self.world, out_dir, summary, grid_steps=self.config.grid_steps, guidance=self.config.guidance,
                   target=self.config.target, ode_steps=self.config.ode_steps, teacher=self.config.teacher,
                   **self._settings_record())

    def _settings_record(self) -> dict[str, object]:
        """The settings that chose the ODE target's cells and weighed the loss, for the training record."""
        record: dict[str, object] = {"ode_region": self.config.ode_region}
        if self.config.uses_sprites:
            record.update(sprite_margin=self.config.sprite_margin, sprite_hold_frames=self.config.sprite_hold_frames)
        if self.config.sprite_weight:
            record["sprite_weight"] = self.config.sprite_weight
        if self.config.switch_weight:
            record["switch_weight"] = self.config.switch_weight
        if self.config.reader_start:
            record.update(reader_start=self.config.reader_start, guess_share=self.config.guess_share)
        return record


def started_from_guess(event_ids: Tensor) -> Tensor:
    """bool `[B, F]`: the frames of clips with `event_ids` `[B, F]` that a reader-started sampler
    starts from the history reader's guess: every frame after the first whose event is the one
    before it (at a switch the sampler starts from noise, since the reader does not see events)."""
    started = torch.zeros_like(event_ids, dtype=torch.bool)
    started[:, 1:] = event_ids[:, 1:] == event_ids[:, :-1]
    return started
