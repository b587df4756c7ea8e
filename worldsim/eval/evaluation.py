"""Evaluate one checkpoint, or compare several on identical scenarios, and write the report.

    from worldsim.eval.evaluation import evaluate
    evaluate(["explorer-64"], suite="quick", out="eval/")             # one checkpoint
    evaluate(["runs/dmd", "runs/delta"], suite="quick", out="ablation/", compare=True)
"""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import torch

from worldsim.data.machine import describe_machine
from worldsim.eval.probes import BUNDLED_PROBES, Probes
from worldsim.eval.report import write_comparison, write_single
from worldsim.eval.suite import SUITES, SuiteConfig, run_suite

# Generator stages in recipe order (docs/ARCHITECTURE.md, worldsim/training); the latest one names a checkpoint.
GENERATOR_STAGES = ("teacher", "ar-teacher", "causal-cd", "dmd", "stream", "delta", "rolling")


def _folder_name(name: str) -> str:
    """`runs/delta-m2/final` → `delta-m2`: stage runs keep their weights in a `final` subfolder."""
    path = Path(str(name).rstrip("/"))
    return (path.parent.name if path.name == "final" else path.name) or str(name)


def checkpoint_label(world: Any, name: str) -> str:
    """The row label of a checkpoint: the generator stage it ships — the recipe's
    `generator_stage` when recorded (a recipe runs later stages than the one it ships), else the
    latest generator stage of its training history — with the Delta Forcing variant when recorded,
    else its folder or repo name."""
    history = [record for record in world.metadata.get("training", []) if record.get("stage") in GENERATOR_STAGES]
    shipped = (world.metadata.get("recipe") or {}).get("generator_stage")
    if shipped:
        history = [record for record in history if record.get("stage") == shipped] or [{"stage": shipped}]
    if history:
        latest = history[-1]
        variant = _variant(latest)
        return f"{latest['stage']}-{variant}" if variant else latest["stage"]
    return _folder_name(name)


def _variant(record: dict[str, Any]) -> str:
    """A Delta Forcing record's variant, with ρ and λ where they differ from the stage's defaults."""
    from worldsim.training.delta import DeltaSettings

    variant = record.get("variant") or ""
    for name in ("rho", "lam"):
        default = getattr(DeltaSettings, name)
        if variant and record.get(name, default) != default:
            variant += f"-{name}{record[name]:g}"
    return variant


def _safe_folder_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label) or "checkpoint"


def distinct_labels(labels: list[str], names: list[str]) -> list[str]:
    """Labels that several checkpoints share (two delta runs without a recorded variant) get the
    checkpoint's folder name appended; any still equal get a counter."""
    repeated = {label for label in labels if labels.count(label) > 1}
    labels = [f"{label} ({_folder_name(name)})" if label in repeated else label for label, name in zip(labels, names)]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def suite_config(suite: str | SuiteConfig, seed: int | None = None) -> SuiteConfig:
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
        suite = SUITES[suite]
    return suite if seed is None else dataclasses.replace(suite, seed=seed)


def evaluate(checkpoints: list[str], suite: str | SuiteConfig, out: str | Path, compare: bool = False,
             probes_folder: str | Path | None = None, device: str = "auto", seed: int | None = None,
             revision: str | None = None) -> dict[str, Any]:
    """Run the suite on each checkpoint and write the report into `out`; returns metrics.json's content.

    `revision` pins the Hub branch, tag or commit of checkpoints given as Hub repo ids.
    """
    if not checkpoints:
        raise ValueError("no checkpoint to evaluate")
    if len(checkpoints) > 1 and not compare:
        raise ValueError("several checkpoints need compare=True (the ablation table)")
    started = time.time()
    config = suite_config(suite, seed)
    torch_device = resolve_device(device)
    probes = Probes.load(probes_folder, device=torch_device)
    shared = {
        "format_version": 1,
        "suite": dataclasses.asdict(config),
        "probes": {"folder": str(probes_folder or BUNDLED_PROBES), "held_out": probes.metadata.get("held_out", {}),
                   "targets": probes.metadata.get("targets", {})},
        "machine": describe_machine(torch_device),
    }
    worlds, labels = load_labelled(checkpoints, str(torch_device), revision)
    runs = []
    for name, world, label in zip(checkpoints, worlds, labels):
        run_started = time.time()
        result = run_suite(world, probes, config)
        document = {**shared, "checkpoint": {"path": str(name), "label": label,
                                             "parameters": sum(world.parameter_counts().values())},
                    "wall_time_s": round(time.time() - run_started, 1)}
        runs.append((_safe_folder_name(label), result, document))
    out = Path(out)
    if not compare:
        return write_single(out, runs[0][1], runs[0][2])
    return write_comparison(out, runs, {**shared, "wall_time_s": round(time.time() - started, 1)})


def load_labelled(checkpoints: list[str], device: str, revision: str | None = None) -> tuple[list[Any], list[str]]:
    """The checkpoints as worlds that the suite's ground truth can measure, with distinct row labels."""
    import worldsim

    worlds = [worldsim.load(name, device=device, revision=revision) for name in checkpoints]
    for name, world in zip(checkpoints, worlds):
        check_ground_truth(world, name)
    labels = [checkpoint_label(world, name) for world, name in zip(worlds, checkpoints)]
    return worlds, distinct_labels(labels, [str(name) for name in checkpoints])


def check_ground_truth(world, name) -> None:
    """The suite replays scenarios in its game's true simulator (`worldsim.eval.truth`): a recorded
    game has none, and another shipped game is not the one its scenarios and probes are built for."""
    from worldsim.eval.truth import TRUTH
    from worldsim.games import game_for_world

    game = game_for_world(world)
    if game.ground_truth is None:
        raise ValueError(f"{name}: its game ({game.display_name}) has no ground-truth simulator for this suite; "
                         "measure it against held-out recorded play: worldsim eval --checkpoint CKPT --data DIR")
    if game.name != TRUTH.name:
        raise ValueError(f"{name}: its game ({game.display_name}) is not the one this suite's scenarios and "
                         f"probes are built for ({TRUTH.display_name})")
