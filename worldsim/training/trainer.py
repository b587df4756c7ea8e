"""The shared training loop every stage runs in.

A stage (one module per stage) builds its models, optimizers and data and implements `Stage`:
one optimisation step per `train_step(step)`. `train` does everything around it: resume from the
newest checkpoint, learning-rate warm-up, bf16 autocast, the progress bar (loss and rate), the CSV
log, atomic checkpoints every `checkpoint_every` steps, and finally `stage.finish(out/final, summary)` plus
`out/summary.json` (steps, wall time, throughput, first/last losses) for the recipe's model card.
With `max_minutes` the loop ends early at a step boundary, checkpointed and finished the same way.

Exact resume: a checkpoint holds every changing tensor (modules, EMA copies, optimizers) and every
RNG state, and stages draw their batch for step s as a pure function of (seed, rank, s), so a
run killed at any point and resumed reaches bit-identical weights to an uninterrupted one.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

import numpy as np
import torch
from torch import nn

from worldsim.training.checkpoint import (
    CheckpointError,
    atomic_write_json,
    latest_step,
    load_checkpoint,
    save_checkpoint,
)
from worldsim.training.config import ConfigError, TrainConfig, config_to_dict
from worldsim.training.distributed import (
    DistributedContext,
    autocast,
    average_gradients,
    broadcast_choice,
    broadcast_parameters,
)
from worldsim.training.metrics_log import MetricLog, read_metrics

__all__ = ["Stage", "TrainSummary", "seed_everything", "optimizer_step", "make_adamw", "train", "check_resume"]

# What a resumed run may change: how long it runs, how it reports and where. Everything else
# (stage, data, model, batch size, learning rate, seed, ...) is part of what it learns from, and a
# change would silently mix two runs in one lineage.
RESUMABLE_CHANGES = frozenset({"steps", "log_every", "checkpoint_every", "keep_checkpoints", "progress",
                               "tensorboard", "diagnose_every", "device", "max_minutes"})


class Stage(Protocol):
    """What a training stage gives the shared loop."""

    name: str
    samples_per_step: int  # samples (clips or images) one step consumes on this rank

    def modules(self) -> dict[str, nn.Module]:
        """Every module whose tensors change during training (trainable ones and EMA copies)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, by name."""

    def train_step(self, step: int) -> dict[str, float]:
        """One optimisation step; returns its metrics, normally with `loss` (the stage's objective).

        A step may leave `loss` out when it does not optimise the stage's objective (e.g. a
        critic warm-up); the summary's first/last loss then start at the first step that has one.
        """

    def finish(self, out_dir: Path, summary: "TrainSummary") -> None:
        """Write the stage's result (called on rank 0 after the last step)."""


@dataclass
class TrainSummary:
    stage: str
    steps: int
    wall_time_s: float
    samples_per_s: float
    first_loss: float
    last_loss: float
    out_dir: str


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed python, numpy and torch; each rank gets its own stream."""
    seed = seed + 1_000_003 * rank
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_adamw(parameters: Iterable[nn.Parameter] | Iterable[dict[str, Any]], config: TrainConfig,
               lr: float | None = None, betas: tuple[float, float] = (0.9, 0.99)) -> torch.optim.AdamW:
    """AdamW with the config's learning rate and weight decay (the stages' default optimizer);
    `parameters` may also be parameter groups with rates of their own (`lr_scaled_groups`)."""
    return torch.optim.AdamW(list(parameters), lr=config.lr if lr is None else lr,
                             betas=betas, weight_decay=config.weight_decay)


def lr_scaled_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], scales: dict[str, float],
                     lr: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the parameters whose name starts with a prefix of `scales` at
    `lr` times its scale (the first prefix that matches), the rest at `lr`. Raises ValueError for a
    scale <= 0 or a prefix that names no parameter."""
    named = list(named_parameters)
    for prefix, scale in scales.items():
        if scale <= 0:
            raise ValueError(f"learning-rate scale of {prefix!r} must be > 0, got {scale}")
        if not any(name.startswith(prefix) for name, _ in named):
            raise ValueError(f"no parameter name starts with {prefix!r}")
    groups: dict[float, list[nn.Parameter]] = {}
    for name, parameter in named:
        scale = next((scales[prefix] for prefix in scales if name.startswith(prefix)), 1.0)
        groups.setdefault(scale, []).append(parameter)
    return [{"params": params, "lr": lr * scale} for scale, params in groups.items()]


def make_scaled_adamw(named_parameters: Iterable[tuple[str, nn.Parameter]], lr_scales: dict[str, float],
                      config: TrainConfig) -> torch.optim.AdamW:
    """`make_adamw` with the parameters named by a prefix of `lr_scales` at the config's rate times
    its scale (`lr_scaled_groups`); a bad scale or a prefix that names nothing is a ConfigError."""
    try:
        groups = lr_scaled_groups(named_parameters, lr_scales, config.lr)
    except ValueError as error:
        raise ConfigError(f"lr_scales: {error}") from None
    return make_adamw(groups, config)


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, context: DistributedContext,
                   grad_clip: float = 0.0) -> float:
    """Backward, average gradients across ranks, clip, step; returns the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    average_gradients(parameters, context)
    grads = [p for p in parameters if p.grad is not None]
    if grad_clip > 0:
        norm = torch.nn.utils.clip_grad_norm_(grads, grad_clip)
    else:
        norm = torch.linalg.vector_norm(torch.stack([g.grad.norm() for g in grads])) if grads else torch.zeros(())
    optimizer.step()
    return float(norm)


def _set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], step: int, warmup_steps: int) -> float:
    """Linear warm-up to each group's base rate (stored in the group, so it is checkpointed)."""
    factor = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * factor
    return factor


def _loss_rows(rows: list[dict[str, float]]) -> list[float]:
    return [r["loss"] for r in rows if not math.isnan(r.get("loss", math.nan))]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: nested config sections as dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def check_resume(out_dir: Path, stage_name: str, config: TrainConfig) -> None:
    """Refuse to resume `out_dir` as another stage or with changed settings (see RESUMABLE_CHANGES).

    The run's settings are the `config.json` it wrote when it started; cheap, so stages may call it
    before they load anything.
    """
    saved_path = Path(out_dir) / "config.json"
    if not saved_path.is_file():
        return
    try:
        saved = json.loads(saved_path.read_text())
    except (ValueError, OSError) as error:
        raise CheckpointError(f"{saved_path} is unreadable ({error}); the run cannot be resumed") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{saved_path} is not a run config; the run cannot be resumed")
    if saved.get("stage") != stage_name:
        raise CheckpointError(f"{out_dir} holds a {saved.get('stage')!r} run; it cannot be resumed as stage "
                              f"{stage_name!r} (use another --out for a new run)")
    before, now = _flatten(saved), _flatten({"stage": stage_name, **config_to_dict(config)})
    defaults = _flatten(config_to_dict(type(config)()))

    def added_at_default(key: str) -> bool:  # a setting the stage gained after the run started, left as is
        return key not in before and key in defaults and now.get(key) == defaults[key]

    changed = [key for key in sorted(set(before) | set(now))
               if key not in RESUMABLE_CHANGES and before.get(key) != now.get(key) and not added_at_default(key)]
    if changed:
        listing = "; ".join(f"{key} {before.get(key)!r} -> {now.get(key)!r}" for key in changed)
        raise CheckpointError(
            f"--resume {out_dir}: the run was started with other settings ({listing}); a resumed run may only "
            f"change {', '.join(sorted(RESUMABLE_CHANGES))}. Restore them, or start a new run in another folder"
        )


def train(stage: Stage, config: TrainConfig, out_dir: Path, context: DistributedContext | None = None,
          resume: bool = False) -> TrainSummary:
    """Run `stage` for `config.steps` steps into `out_dir`, resuming from its checkpoint if asked.

    Starting afresh in a folder that already holds a checkpoint is refused (pass `resume=True`),
    so an accidental re-run never overwrites a run's history.
    """
    context = context or DistributedContext()
    out_dir = Path(out_dir)
    checkpoint_dir = out_dir / "checkpoints"
    existing = latest_step(checkpoint_dir)
    if existing is not None and not resume:
        raise CheckpointError(f"{out_dir} already holds a checkpoint (step {existing}); pass --resume "
                              "to continue it or choose another output folder")
    modules, optimizers = stage.modules(), stage.optimizers()
    start_step, elapsed = 0, 0.0
    if existing is not None:
        check_resume(out_dir, stage.name, config)
        checkpoint = load_checkpoint(checkpoint_dir, modules, optimizers, context.rank, context.world_size)
        start_step, elapsed = checkpoint.step, float(checkpoint.extra.get("wall_time_s", 0.0))
        if start_step > config.steps:
            raise CheckpointError(f"checkpoint step {start_step} is past the configured {config.steps} steps")
    else:
        broadcast_parameters(modules.values(), context)
    log = None
    if context.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "config.json", {"stage": stage.name, **config_to_dict(config)})
        tensorboard_dir = out_dir / "tensorboard" if config.tensorboard else None
        log = MetricLog(out_dir / "metrics.csv", resume_step=start_step if existing is not None else None,
                        tensorboard_dir=tensorboard_dir)
    progress = _progress_bar(config, stage.name, start_step, context)
    pending: dict[str, list[float]] = {}
    step_time, interval_steps, done = 0.0, 0, start_step
    run_started = time.monotonic()
    for step in range(start_step, config.steps):
        started = time.perf_counter()
        lr_factor = _set_learning_rates(optimizers, step, config.warmup_steps)
        with autocast(context.device, config.precision):
            metrics = stage.train_step(step)
        for key, value in metrics.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"stage {stage.name}: {key} is {value} at step {step + 1}")
        took = time.perf_counter() - started
        elapsed += took
        step_time += took
        interval_steps += 1
        for key, value in metrics.items():
            pending.setdefault(key, []).append(float(value))
        done = step + 1
        out_of_time = _out_of_time(config, time.monotonic() - run_started, context)
        if done % config.log_every == 0 or done == config.steps or out_of_time:
            rate = interval_steps * stage.samples_per_step * context.world_size / max(step_time, 1e-9)
            means = {key: _mean(values) for key, values in pending.items()}
            if log is not None:
                log.log(done, {**means, "lr_factor": lr_factor, "samples_per_s": rate})
            if progress is not None:
                shown = means.get("loss", next(iter(means.values()), math.nan))
                progress.set_postfix(loss=f"{shown:.4g}", samples_s=f"{rate:.1f}")
            pending, step_time, interval_steps = {}, 0.0, 0
        if progress is not None:
            progress.update(1)
        if log is not None and config.diagnose_every and (done % config.diagnose_every == 0 or done == config.steps
                                                          or out_of_time):
            _log_diagnostics(stage, done, log)
        if done % config.checkpoint_every == 0 or done == config.steps or out_of_time:
            save_checkpoint(checkpoint_dir, done, modules, optimizers, {"wall_time_s": elapsed},
                            keep=config.keep_checkpoints, rank=context.rank,
                            world_size=context.world_size, barrier=context.barrier)
        if out_of_time:
            break
    if progress is not None:
        progress.close()
    if log is not None:
        log.close()
    return _finish(stage, config, out_dir, context, elapsed, steps_done=done)


def _out_of_time(config: TrainConfig, seconds_this_run: float, context: DistributedContext) -> bool:
    """Whether this invocation (diagnostics included) has run `max_minutes`, decided on rank 0 so
    every rank stops at the same step."""
    if not config.max_minutes:
        return False
    return bool(broadcast_choice(lambda: int(seconds_this_run >= 60.0 * config.max_minutes), context))


def _log_diagnostics(stage: Stage, step: int, log: MetricLog) -> None:
    """Log the stage's `diagnostics()` (a dict of floats), for stages that have them; a game
    without a ground truth gives none, and an empty row would say nothing."""
    diagnostics = getattr(stage, "diagnostics", None)
    found = diagnostics() if diagnostics is not None else {}
    if found:
        log.log(step, found)


def _progress_bar(config: TrainConfig, name: str, start_step: int, context: DistributedContext):
    if not (config.progress and context.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start_step, desc=name, unit="step", dynamic_ncols=True)


def _finish(stage: Stage, config: TrainConfig, out_dir: Path, context: DistributedContext,
            elapsed: float, steps_done: int) -> TrainSummary:
    rows = read_metrics(out_dir / "metrics.csv") if context.is_main else []
    losses = _loss_rows(rows)
    head = max(1, len(losses) // 5)
    # diagnostics rows share the file and leave the rate empty (NaN), which would break the median
    rates = [r["samples_per_s"] for r in rows if not math.isnan(r.get("samples_per_s", math.nan))]
    summary = TrainSummary(
        stage=stage.name, steps=steps_done, wall_time_s=round(elapsed, 3),
        samples_per_s=round(sorted(rates)[len(rates) // 2], 3) if rates else math.nan,
        first_loss=_mean(losses[:head]), last_loss=_mean(losses[-head:]), out_dir=str(out_dir),
    )
    if context.is_main:
        stage.finish(out_dir / "final", summary)
        # strict JSON has no NaN: a loss that was never logged is null
        atomic_write_json(out_dir / "summary.json",
                          {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.__dict__.items()})
    context.barrier()
    return summary
