"""Stage `dmd`: Self Forcing — distribution matching on the student's own rollouts.

Per step the student (from `causal-cd`) generates F frames from scratch, frame by frame with its
KV cache, exactly as the Simulator does (first frame 4 steps, then 2), under the actions and
events of a real clip. One exit step per rollout (drawn on rank 0 and broadcast) is
differentiated, everything else runs without gradient. The DMD gradient between the real score
(the teacher: bidirectional, or with `dmd.layout = "teacher_forcing"` an autoregressive world,
which may be the student's own init) and the fake score (the critic) is applied to the frames; then the
critic takes a few flow-matching steps on the detached rollout, and the generator's EMA moves.

With `anchor_weight` > 0 (and real context frames), the generated frames are also regressed to the
clip's true frames on the cells the context already determines (`losses.carried_cells`: the map
carried over through the scroll, not new strips, moving sprites or restyles; with
`anchor_across_restyles` the map after a restyle, in its new look, too). Distribution
matching alone is mode seeking with nothing that ties a frame to the map it continues; the anchor
ties it there and leaves what must be imagined to the scores. With `dmd_on_carried = false` the
DMD gradient skips the carried cells, so they learn from the anchor alone (an ablation: it was
meant to stop coins painted on carried grass, and did not, since the weights that learn "coins
appear" on new strips are the same everywhere; a stronger anchor did, docs/generator-design.md
section 13).

`DMDStage` also holds what the streaming stages (`stream`, `delta`, `rolling`) share: the
student and teacher worlds, event conditions for both, the scores and the exit-step draw.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from worldsim.data import Clip, Dataset
from worldsim.sampling.frame_sampler import CleanFrames, Conditions, step_sigmas
from worldsim.training import losses
from worldsim.training.batches import ClipStream, clip_sprite_cells, condition_actions, encode_latents
from worldsim.training.common import StageConfig, WorldDiagnostics, ema_decay_at, freeze, load_world, save_world
from worldsim.training.config import ConfigError
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.distribution_matching import DistributionMatching, DMDSettings
from worldsim.training.ema import ema_copy, ema_update
from worldsim.training.event_conditioning import EventVocabulary, embed_texts
from worldsim.training.self_rollout import Anchor, ExitSteps, Rollout, gaussian_noise_source, rollout
from worldsim.training.teacher_forcing_term import TeacherForcingTerm, teacher_forced_loss
from worldsim.training.trainer import TrainSummary, make_adamw, optimizer_step

__all__ = ["DMDConfig", "DMDStage", "RolloutConditions", "TrueClip"]


@dataclass
class DMDConfig(StageConfig):
    # The real score and the critic's start: the `teacher` stage's final world, or an AR world
    # (`ar-teacher`) with dmd.layout = "teacher_forcing".
    teacher: str = ""
    frames: int = 8  # frames per rollout (at most the teacher's clip length)
    context_frames: int = 0  # real frames a rollout starts from (0 = from scratch, first-frame steps)
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-5
    ema_decay: float = 0.99
    dmd: DMDSettings = field(default_factory=DMDSettings)
    anchor_weight: float = 0.0  # weight of the carried-region regression (0 = pure distribution matching)
    anchor_tolerance: float = 0.05  # latent distance under which a cell counts as carried (latents ~ unit variance)
    anchor_across_restyles: bool = False  # after a restyled frame (an event switch), carry the map in its new look
    dmd_on_carried: bool = True  # false (ablation): the DMD gradient skips the carried cells, the anchor alone trains them
    # >= 0: the anchor also skips the cells within this many cells of a true sprite cell (where a
    # sprite arrived, held or left: batches.clip_sprite_cells), so it does not erase a generated
    # sprite one cell off the true one's path. -1 = off.
    anchor_sprite_margin: int = -1
    # >= 0: the DMD gradient skips the cells within this many cells of a true sprite cell, so that
    # only the teacher-forcing term and the anchor train them: tells whether distribution matching
    # itself erases the one-cell sprites along rollouts. -1 = off.
    dmd_sprite_margin: int = -1
    sprite_hold_frames: int = 2  # frames a sprite cell stays marked after a change (margin and teacher_forcing)
    # Flow matching on the real clip beside the scores (teacher_forcing_term.py), e.g. with its sprite
    # cells weighted so that distribution matching does not lose the one-cell sprites.
    teacher_forcing: TeacherForcingTerm = field(default_factory=TeacherForcingTerm)

    def validate(self) -> None:
        super().validate()
        self.require_init("the causal-cd stage's final world")
        if not self.teacher:
            raise ConfigError("teacher: set the teacher's world folder (the teacher stage's final, or an AR world "
                              "with dmd.layout=teacher_forcing)")
        if self.frames < 1 or self.context_frames < 0:
            raise ConfigError("frames must be >= 1 and context_frames >= 0")
        if self.anchor_weight < 0 or self.anchor_tolerance <= 0:
            raise ConfigError("anchor_weight must be >= 0 and anchor_tolerance positive")
        if self.anchor_weight and self.context_frames < 1:
            raise ConfigError("anchor_weight needs context_frames >= 1: the anchor holds what the context determines")
        if min(self.anchor_sprite_margin, self.dmd_sprite_margin) < -1 or self.sprite_hold_frames < 0:
            raise ConfigError("anchor_sprite_margin and dmd_sprite_margin must be >= -1, sprite_hold_frames >= 0")
        if not self.dmd_on_carried and not self.anchor_weight:
            raise ConfigError("dmd_on_carried=false needs anchor_weight > 0: otherwise nothing trains the carried cells")
        self.dmd.validate()
        self.teacher_forcing.validate()


@dataclass
class RolloutConditions:
    """Per-frame conditions of a rollout, with the events embedded for the student and the teacher."""

    actions: Tensor  # long [B, F]
    student_events: Tensor  # [B, F, E]
    teacher_events: Tensor  # [B, F, E]

    def for_student(self, frames: slice = slice(None)) -> Conditions:
        return Conditions(self.actions[:, frames], self.student_events[:, frames])

    def window(self, frames: slice) -> tuple[Tensor, Tensor]:
        """(actions, teacher events) of a window of frames, for the scores."""
        return self.actions[:, frames], self.teacher_events[:, frames]


@dataclass
class TrueClip:
    """A step's real clip as the anchor and the teacher-forcing term read it."""

    latents: Tensor  # [B, F, C, h, w]
    sprite_cells: Tensor | None  # bool [B, F, h, w] (batches.clip_sprite_cells), when a setting reads them
    event_ids: Tensor  # long [B, F]: index into the dataset's event texts, -1 = none


class DMDStage:
    name = "dmd"
    role = "few-step causal generator (Self Forcing)"

    def __init__(self, config: DMDConfig, context: DistributedContext):
        self.config, self.context = config, context
        self.dataset = Dataset(config.data)
        self.world = load_world(config.init, context.device)
        teacher_world = load_world(config.teacher, context.device)
        for module in (self.world.autoencoder, self.world.event_encoder, self.world.reward_model,
                       teacher_world.event_encoder):
            freeze(module)
        self.teacher_encoder, self.teacher_tokenizer = teacher_world.event_encoder, teacher_world.tokenizer
        self.generator = self.world.transformer.train().requires_grad_(True)
        self.ema = ema_copy(self.generator)
        self.optimizer = make_adamw(self.generator.parameters(), config)
        sampling = self.world.config.sampling
        self.scores = DistributionMatching(teacher_world.transformer, config.dmd, sampling.sigma_shift, context,
                                           config.grad_clip, config.weight_decay)
        self.sigmas = step_sigmas(sampling.num_steps, sampling.sigma_shift)
        self.first_frame_sigmas = step_sigmas(sampling.first_frame_steps, sampling.sigma_shift)
        self.vocabulary = EventVocabulary(self.dataset.event_texts, self.dataset.world)
        self.clips = ClipStream(self.dataset, self.clip_frames(), config.batch_size, config.seed, context.rank,
                                label_boost=config.label_boost)
        self.samples_per_step = config.batch_size
        self._diagnose = WorldDiagnostics(self.dataset.world, self.world.config.image_size)

    def diagnostics(self) -> dict[str, float]:
        """The action-branch test and collision probe of the generator as it is now."""
        return self._diagnose(self.world)

    # ------------------------------------------------------------------ shared by the streaming stages

    def clip_frames(self) -> int:
        """Frames of real data a step reads (conditions, and the context frames)."""
        return self.config.context_frames + self.config.frames

    def modules(self):
        return {"generator": self.generator, "ema": self.ema, "critic": self.scores.critic}

    def optimizers(self):
        return {"generator": self.optimizer, "critic": self.scores.optimizer}

    def embed_event_ids(self, event_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Dataset event ids `[B, F]` → (student, teacher) event vectors of the same paraphrases."""
        texts, index = self.vocabulary.sample_texts(event_ids)
        with torch.no_grad():
            student = embed_texts(texts, index, self.world.tokenizer, self.world.event_encoder)
            teacher = embed_texts(texts, index, self.teacher_tokenizer, self.teacher_encoder)
        return student, teacher

    def real_start(self, step: int) -> tuple[RolloutConditions, CleanFrames | None, Tensor | None]:
        """Conditions of a real clip, and its first `context_frames` frames as the rollout's start."""
        return self.start_of(self.clips.batch(step))

    def start_of(self, clip: Clip) -> tuple[RolloutConditions, CleanFrames | None, Tensor | None]:
        """`real_start` for a clip already drawn."""
        conditions = self.clip_conditions(clip)
        return (conditions, *self.context_start(clip, conditions))

    def clip_conditions(self, clip: Clip) -> RolloutConditions:
        """The clip's own actions and events, the events embedded for the student and the teacher."""
        device = self.context.device
        actions = condition_actions(torch.from_numpy(clip.actions).to(device), self.world.config.no_action)
        student_events, teacher_events = self.embed_event_ids(torch.from_numpy(clip.events).to(device))
        return RolloutConditions(actions, student_events, teacher_events)

    def context_start(self, clip: Clip, conditions: RolloutConditions) -> tuple[CleanFrames | None, Tensor | None]:
        """The clip's first `context_frames` frames as pending clean frames (and their latents)."""
        count = self.config.context_frames
        if count == 0:
            return None, None
        latents = encode_latents(self.world.autoencoder, torch.from_numpy(clip.frames[:, :count]))
        return CleanFrames(latents, conditions.for_student(slice(0, count))), latents

    def draw_exits(self) -> ExitSteps:
        """One exit step for first frames and one for the others, the same on every rank."""
        first_steps, steps = len(self.first_frame_sigmas) - 1, len(self.sigmas) - 1
        first, rest = broadcast_choice(
            lambda: [int(torch.randint(first_steps, ())), int(torch.randint(steps, ()))], self.context)
        return ExitSteps(first, rest)

    def generate(self, conditions: Conditions, cache, pending: CleanFrames | None,
                 exits: ExitSteps, anchor: Anchor | None = None) -> Rollout:
        noise = gaussian_noise_source(conditions.events)
        return rollout(self.generator, cache, conditions, self.sigmas, self.first_frame_sigmas, exits, noise,
                       pending, anchor, self.world.config.sampling.reader_start)

    def warming_up(self, step: int) -> bool:
        """During the critic warm-up the generator stays as it is."""
        return step < self.config.dmd.critic_warmup

    def update_generator(self, loss: Tensor, step: int) -> dict[str, float]:
        """One generator step on `loss` (skipped during the critic warm-up); its metrics."""
        if self.warming_up(step):
            return {}
        grad_norm = optimizer_step(loss, self.optimizer, self.context, self.config.grad_clip)
        ema_update(self.ema, self.generator, ema_decay_at(self.config.ema_decay, step))
        return {"generator_loss": loss.item(), "grad_norm": grad_norm}

    def train_critic(self, frames: Tensor, context_frames: Tensor | None, actions: Tensor,
                     events: Tensor) -> dict[str, float]:
        """The critic's updates; its flow-matching loss is the stage's logged `loss`.

        The generator's loss (DMD: ½·mean g²) is a normalised gradient, not an objective whose
        value should fall; the critic's loss on the generator's current samples is a real
        objective, and it falls as long as the critic keeps up with the generator — the
        two-time-scale regime DMD depends on (a rising critic loss means the generator outruns it).
        """
        return {"loss": self.scores.train_critic(frames, context_frames, actions, events)}

    # ------------------------------------------------------------------ the dmd step

    def true_clip(self, clip: Clip) -> TrueClip | None:
        """The clip's true latents, and its sprite cells once per step when a sprite margin or the
        term's sprite weight reads them; None when neither the anchor, the term nor the DMD margin is on."""
        config, term = self.config, self.config.teacher_forcing
        if not (config.anchor_weight or term.weight or config.dmd_sprite_margin >= 0):
            return None
        with torch.no_grad():
            latents = encode_latents(self.world.autoencoder, torch.from_numpy(clip.frames))
        sprites = None
        if ((config.anchor_weight and config.anchor_sprite_margin >= 0) or (term.weight and term.sprite_weight)
                or config.dmd_sprite_margin >= 0):
            sprites = clip_sprite_cells(torch.from_numpy(clip.frames), latents.shape[-1], config.sprite_hold_frames)
            sprites = sprites.to(latents.device)
        return TrueClip(latents, sprites, torch.from_numpy(clip.events).to(latents.device))

    def carried_truth(self, truth: TrueClip | None) -> tuple[Tensor, Tensor] | None:
        """The true latents after the context frames, and the cells the anchor holds there: those the
        context carries into them, less the margin around sprites (`anchor_sprite_margin`); None
        without an anchor (`anchor_weight` 0)."""
        config = self.config
        if not config.anchor_weight:
            return None
        with torch.no_grad():
            carried = losses.carried_cells(truth.latents, config.context_frames, config.anchor_tolerance,
                                           across_restyles=config.anchor_across_restyles)
            if config.anchor_sprite_margin >= 0:
                carried &= ~losses.near_cells(truth.sprite_cells[:, config.context_frames:], config.anchor_sprite_margin)
        return truth.latents[:, config.context_frames:], carried

    def teacher_forcing_loss(self, truth: TrueClip | None,
                             conditions: RolloutConditions) -> tuple[Tensor | float, dict[str, float]]:
        """The weighted teacher-forced flow-matching term on the whole clip and its log (0 and none
        when `teacher_forcing.weight` is 0)."""
        term = self.config.teacher_forcing
        if not term.weight:
            return 0.0, {}
        cell_weight = losses.weight_on_cells(truth.sprite_cells, term.sprite_weight) if term.sprite_weight else None
        loss = teacher_forced_loss(self.generator, truth.latents, conditions.actions, conditions.student_events,
                                   self.world.config.sampling.sigma_shift, term, cell_weight, truth.event_ids)
        return term.weight * loss, {"teacher_forcing_loss": loss.item()}

    @staticmethod
    def anchored_frames(anchored: tuple[Tensor, Tensor] | None, frames: slice) -> tuple[Tensor | None, Tensor | None]:
        """The true latents and carried cells (`carried_truth`) of some frames after the context, or Nones."""
        return (None, None) if anchored is None else (anchored[0][:, frames], anchored[1][:, frames])

    @staticmethod
    def frames_of(cells: Tensor | None, frames: slice) -> Tensor | None:
        """Some frames of per-frame cells `[B, F, h, w]` (e.g. `sprite_spared`), or None."""
        return None if cells is None else cells[:, frames]

    def sprite_spared(self, truth: TrueClip | None) -> Tensor | None:
        """bool `[B, F, h, w]` after the context frames: the cells around true sprites that the DMD
        gradient skips (`dmd_sprite_margin`); None when it is off."""
        config = self.config
        if config.dmd_sprite_margin < 0:
            return None
        return losses.near_cells(truth.sprite_cells[:, config.context_frames:], config.dmd_sprite_margin)

    def dmd_cells(self, carried: Tensor | None, spared: Tensor | None = None) -> Tensor | None:
        """The cells the DMD gradient reaches (None: all of them): not the carried ones when
        `dmd_on_carried` is off, nor the `spared` ones around true sprites (`sprite_spared`)."""
        skipped = carried if carried is not None and not self.config.dmd_on_carried else None
        if spared is not None:
            skipped = spared if skipped is None else skipped | spared
        return None if skipped is None else ~skipped

    def anchor_loss(self, frames: Tensor, truth: Tensor | None,
                    carried: Tensor | None) -> tuple[Tensor | float, dict[str, float]]:
        """The weighted carried-region regression of generated `frames` to the true ones, and its logs
        (0 and none without an anchor: `truth` None)."""
        if truth is None:
            return 0.0, {}
        loss = losses.carried_region_loss(frames, truth, carried)
        return self.config.anchor_weight * loss, {"anchor_loss": loss.item(),
                                                  "carried_share": carried.float().mean().item()}

    def train_step(self, step: int) -> dict[str, float]:
        clip = self.clips.batch(step)
        conditions, pending, context_latents = self.start_of(clip)
        count = self.config.context_frames
        cache = self.generator.new_cache(self.config.batch_size, device=self.context.device)
        new = slice(count, None)
        frames = self.generate(conditions.for_student(new), cache, pending, self.draw_exits()).frames
        true_clip = self.true_clip(clip)
        truth, carried = self.anchored_frames(self.carried_truth(true_clip), slice(None))
        scored = self.scores.score(frames, context_latents, *conditions.window(slice(None)),
                                   self.dmd_cells(carried, self.sprite_spared(true_clip)))
        anchor, anchor_metrics = self.anchor_loss(frames, truth, carried)
        teacher_forcing, teacher_forcing_metrics = self.teacher_forcing_loss(true_clip, conditions)
        metrics = self.update_generator(scored.per_sample_loss.mean() + anchor + teacher_forcing, step)
        metrics.update(self.train_critic(frames, context_latents, *conditions.window(slice(None))))
        return {**metrics, **anchor_metrics, **teacher_forcing_metrics, "fake_real_gap": scored.fake_real_gap()}

    def finish(self, out_dir: Path, summary: TrainSummary) -> None:
        self.generator.load_state_dict(self.ema.state_dict())  # ship the EMA generator
        self.world.metadata["role"] = self.role
        save_world(self.world, out_dir, summary, frames=self.config.frames)
