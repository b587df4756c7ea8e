"""`worldsim train STAGE`: run one training stage, or `recipe` for the whole chain."""
from __future__ import annotations

import argparse
import json
import sys

from worldsim.games import DEFAULT_GAME

_EPILOG = """\
stages, each starting from the previous stage's <out>/final world:
  autoencoder   frame autoencoder (creates the world; --size tiny|compact|small|base)
  teacher       bidirectional clip model (real score for DMD)
  reader        history reader of the local path: the next latent from past frames (optional, before ar-teacher;
                with reader_feeds_stem=false reader_start=0.8 the world's frames start from its guess)
  ar-teacher    teacher-forcing autoregressive model (teacher of causal-cd)
  causal-cd     Causal Forcing++ consistency distillation (few-step causal student)
  dmd           Self Forcing: distribution matching on the student's own rollouts
  stream        streaming long tuning with event switches
  delta         Delta Forcing on top of stream (trust-region weight + continuity variant)
  rolling       Rolling Forcing: rolling windows with an attention sink
  reward        reward/termination model
  events        event text encoder from the events' paraphrases (any world; keeps its event vectors)
  recipe        the whole chain; writes a Hub-ready world folder
  probes        the evaluation probes, trained on frames of the default game's ground truth (no --data needed)

examples:
  worldsim train recipe --size tiny --out runs/tiny
  worldsim train probes --set parser_steps=3000 --out runs/probes
  worldsim train teacher --data data/game --set init=runs/ae/final --set steps=2000 --out runs/teacher
  torchrun --nproc_per_node 8 -m worldsim.cli train dmd --config configs/dmd.toml --resume

A stage killed at any point continues exactly where its last checkpoint left it with --resume.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from worldsim.training.stages import STAGES

    parser = subparsers.add_parser(
        "train", help="train a world stage by stage, or the whole recipe",
        description="Train one stage of a world (dataclass config + --set overrides, resumable "
                    "checkpoints, CSV log, progress bar; bf16 and torchrun DDP on CUDA).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=[*STAGES, "recipe", "probes"], metavar="STAGE", help="stage to run (see below)")
    parser.add_argument("--config", help="config file (.json or .toml) with any of the stage's keys")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (dotted for nested keys); repeatable")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--data", help="dataset folder (same as --set data=DIR)")
    parser.add_argument("--out", help="output folder (default: runs/STAGE)")
    parser.add_argument("--size", choices=["tiny", "compact", "small", "base"],
                        help="model size (autoencoder and recipe; same as --set size=...)")
    parser.add_argument("--world", metavar="GAME",
                        help="recipe: the game rolled out into <out>/data when --data is not given: a game "
                             f"shipped in worldsim.envs (default: {DEFAULT_GAME}) or a Gymnasium env id, recorded")
    parser.add_argument("--chain", choices=["full", "playable"],
                        help="recipe: the stages to run (same as --set chain=...; a dataset without event "
                             "texts skips the events stage)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from worldsim.runtime import check_output_folder
    from worldsim.training.checkpoint import CheckpointError
    from worldsim.training.config import ConfigError

    overrides = list(args.overrides)
    for key in ("data", "size", "world", "chain"):
        if getattr(args, key) is not None:
            overrides.insert(0, f"{key}={getattr(args, key)}")
    out_dir = args.out or f"runs/{args.stage}"
    try:
        check_output_folder(out_dir)  # before any work: a file in the way is found now, not after a stage
        if args.stage == "recipe":
            from worldsim.training.recipe import build_recipe_config, run_recipe

            result = run_recipe(build_recipe_config(args.config, overrides), out_dir, resume=args.resume)
            print(json.dumps({"world": str(result.world_dir), "wall_time_s": result.wall_time_s}, indent=2))
            return 0
        if args.stage == "probes":
            return _train_probes(args.config, overrides, out_dir)
        from worldsim.training.stages import build_config, run_stage

        config = build_config(args.stage, args.config, overrides)
        summary = run_stage(args.stage, config, out_dir, resume=args.resume)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as error:
        print(f"worldsim train: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary.__dict__, indent=2))
    return 0


def _train_probes(config_path: str | None, overrides: list[str], out_dir: str) -> int:
    """The probes live with the evaluation (worldsim.eval.probes); they share the config handling."""
    from worldsim.eval.probes import ProbeTrainingConfig, train_probes
    from worldsim.training.config import load_config

    _, metadata = train_probes(load_config(ProbeTrainingConfig, config_path, overrides), out=out_dir)
    print(json.dumps({"held_out": metadata["held_out"], "targets": metadata["targets"]}, indent=2))
    return 0

