"""`worldsim eval`: measure a checkpoint against its game's truth (report.md, metrics.json, PNGs)."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from worldsim.eval.suite_config import SUITES
from worldsim.pretrained import DEFAULT_WORLD

_EPILOG = """\
examples:
  worldsim eval --checkpoint explorer-64 --suite quick --out eval/explorer-64
  worldsim eval --compare runs/ar-teacher runs/causal-cd runs/dmd runs/stream runs/delta runs/rolling \\
                --suite full --out eval/ablation
  worldsim eval --checkpoint runs/breakout/world --data data/breakout-test --idm-data data/breakout --out eval/breakout
  worldsim eval --switch-study runs/stream/final runs/delta/final --seeds 0 1 2 3 --out eval/delta-vs-stream
  worldsim eval --drift-study explorer-64 --samplers frame rolling --out docs/eval/drift --device cpu

With --data the world is measured against held-out recorded play instead (any game; the only way
for a game recorded from Gymnasium, which has no ground-truth simulator): teacher-forced and
rollout PSNR/SSIM, reward precision/recall and, with --idm-data, inverse dynamics on generated
frames (--suite sizes them: tiny 3 clips of 8 frames, quick 16 of 32, full 64 of 64);
<out>/metrics.json holds them.

Rows of the ablation table are labelled by each checkpoint's latest training stage (from its
metadata), else by its folder name. The keys of metrics.json are documented in docs/METRICS.md.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `worldsim eval` to the `worldsim` command."""
    parser = subparsers.add_parser(
        "eval", help="evaluate checkpoints against their game's ground truth",
        description="Replay seeded scenarios in the real game and in the neural world, then "
                    "measure fidelity (whole frame and known region), imagined tiles, sprites, drift, "
                    "event reactivity and consistency, control (action branches, walls, inverse dynamics), "
                    "memory and reward/termination with probes trained on real frames; every share with a "
                    "95 % interval and a table of targets in report.md.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", default=DEFAULT_WORLD,
                       help=f"bundled name, folder or Hub repo id (default: {DEFAULT_WORLD})")
    which.add_argument("--compare", nargs="+", metavar="CHECKPOINT",
                       help="evaluate several checkpoints on identical seeds and write the ablation table")
    which.add_argument("--switch-study", nargs="+", metavar="CHECKPOINT",
                       help="only the event switches, pooled over --seeds: consistency drop and reactivity with "
                            "95 %% intervals per checkpoint, Delta Forcing's default chosen against stream "
                            "(summary.json, report.md)")
    which.add_argument("--drift-study", nargs="+", metavar="CHECKPOINT",
                       help="long rollouts only: per-window Frechet and tile-histogram distances against the real "
                            "floor, slopes and differences with 95 %% intervals over rollouts, per checkpoint and "
                            "--samplers, plus one --long-frames rollout (summary.json, report.md, PNGs)")
    parser.add_argument("--suite", choices=list(SUITES), default="quick",
                        help="quick: minutes on a CPU; full: >= 2000-frame drift rollouts, for a GPU; "
                             "tiny: seconds, a smoke test (default: quick)")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of Hub repo ids")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--probes", default=None, help="probe folder (default: the bundled probes)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto = cuda if available)")
    parser.add_argument("--seed", type=int, default=None, help="scenario seed (default: the suite's, 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="with --switch-study: the scenario seeds whose switches are pooled (default: 0 1 2 3, "
                             "144 switches in the quick suite)")
    study = parser.add_argument_group("--drift-study sizes (defaults: 8 rollouts of 2000 frames, windows of 100, "
                                      "a switch every 100-300 frames, one 10000-frame rollout, 1000 resamples)")
    study.add_argument("--samplers", nargs="+", choices=("frame", "rolling"), default=None,
                       help="samplers compared on the same rollouts (default: frame rolling)")
    study.add_argument("--rollouts", type=int, default=None, help="rollouts R, the units of every interval")
    study.add_argument("--frames", type=int, default=None, help="frames per rollout")
    study.add_argument("--window", type=int, default=None, help="frames per window")
    study.add_argument("--switch-every", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                       help="frames between event switches, drawn in LO..HI")
    study.add_argument("--long-frames", type=int, default=None, help="frames of the single long rollout (0: none)")
    study.add_argument("--resamples", type=int, default=None, help="bootstrap resamples")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="measure against this held-out recording instead of the ground-truth suite")
    parser.add_argument("--idm-data", default=None, metavar="DIR",
                        help="with --data: a recording to train the inverse-dynamics probe on (e.g. the training data)")
    parser.add_argument("--update-card", action="store_true",
                        help="store the headline measures in the checkpoint folder's metadata and model card "
                             "(one local checkpoint folder; its weights are not touched)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from worldsim.eval.evaluation import evaluate
    from worldsim.eval.report import json_ready
    from worldsim.runtime import check_device, check_output_folder

    checkpoints = args.compare or [args.checkpoint]
    if args.data or args.idm_data:
        return _run_recorded(args)
    if args.drift_study or any(getattr(args, name) is not None for name in _DRIFT_OPTIONS):
        return _run_drift_study(args)
    if args.switch_study or args.seeds:
        return _run_switch_study(args)
    if args.update_card and (args.compare or not (Path(args.checkpoint) / "config.json").is_file()):
        print("worldsim eval: error: --update-card needs one local checkpoint folder (not --compare, "
              f"not a bundled name or Hub id); got {' '.join(checkpoints)}", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)  # before any work: a file in the way is found now, not after the suite
        if args.device != "auto":
            check_device(args.device)
        document = evaluate(checkpoints, args.suite, args.out, compare=bool(args.compare), probes_folder=args.probes,
                            device=args.device, seed=args.seed, revision=args.revision)
    except (ValueError, FileNotFoundError) as error:  # unknown checkpoint, bad probes or config: say what, no trace
        print(f"worldsim eval: error: {error}", file=sys.stderr)
        return 2
    families = ("fidelity", "reactivity", "consistency")
    summary = document.get("ablation_table") or {key: document[key] for key in families}
    print(json.dumps(json_ready(summary), indent=2))
    print(f"wrote {args.out}/report.md, metrics.json and {len(document['plots'])} plots")
    if args.update_card:
        _update_card(Path(args.checkpoint), document)
        print(f"stored the measures in {args.checkpoint}/config.json and README.md")
    return 0


def _run_recorded(args: argparse.Namespace) -> int:
    """`worldsim eval --data DIR`: the recorded-play measures of one checkpoint."""
    from worldsim.data.atomic import atomic_write_json
    import dataclasses

    from worldsim.eval.recorded import SUITES as RECORDED_SUITES
    from worldsim.eval.recorded import evaluate_checkpoint, headline
    from worldsim.runtime import check_output_folder

    if args.compare or args.update_card or not args.data:
        print("worldsim eval: error: --data measures one --checkpoint against a recording (no --compare, "
              "--update-card; --idm-data needs --data)", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)
        config = RECORDED_SUITES[args.suite]
        config = config if args.seed is None else dataclasses.replace(config, seed=args.seed)
        result = evaluate_checkpoint(args.checkpoint, args.data, args.idm_data, config, revision=args.revision)
    except (ValueError, OSError) as error:
        print(f"worldsim eval: error: {error}", file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out) / "metrics.json", result)
    print(json.dumps(headline(result), indent=1))
    print(f"wrote {args.out}/metrics.json")
    return 0


def _run_study(args: argparse.Namespace, study: Callable[[], dict]) -> dict | None:
    """Check the output folder and device, run `study` and print its report; None after an error
    (printed), with nothing written."""
    from worldsim.runtime import check_device, check_output_folder

    try:
        check_output_folder(args.out)
        if args.device != "auto":
            check_device(args.device)
        summary = study()
    except (ValueError, FileNotFoundError) as error:
        print(f"worldsim eval: error: {error}", file=sys.stderr)
        return None
    print((Path(args.out) / "report.md").read_text())
    return summary


def _run_switch_study(args: argparse.Namespace) -> int:
    """`worldsim eval --switch-study CKPT ...`: the pooled switch measurement of several checkpoints."""
    from worldsim.eval.switch_study import DEFAULT_SEEDS, switch_study

    if not args.switch_study or args.update_card or args.seed is not None:
        print("worldsim eval: error: --seeds goes with --switch-study, which takes no --seed or --update-card",
              file=sys.stderr)
        return 2
    summary = _run_study(args, lambda: switch_study(
        args.switch_study, args.out, suite=args.suite, seeds=tuple(args.seeds or DEFAULT_SEEDS), device=args.device,
        probes_folder=args.probes, revision=args.revision))
    if summary is None:
        return 2
    print(f"wrote {args.out}/summary.json and report.md ({summary['switches']} switches)")
    return 0


# --drift-study's options, named as the DriftStudyConfig fields they set
_DRIFT_OPTIONS = ("samplers", "rollouts", "frames", "window", "switch_every", "long_frames", "resamples")


def _drift_config(args: argparse.Namespace):
    from worldsim.eval.drift_study import DriftStudyConfig

    given = {name: getattr(args, name) for name in _DRIFT_OPTIONS if getattr(args, name) is not None}
    given = {name: tuple(value) if isinstance(value, list) else value for name, value in given.items()}
    return DriftStudyConfig(seed=0 if args.seed is None else args.seed, **given)


def _run_drift_study(args: argparse.Namespace) -> int:
    """`worldsim eval --drift-study CKPT ...`: long-horizon drift with intervals, per checkpoint and sampler."""
    from worldsim.eval.drift_study import drift_study

    if not args.drift_study or args.update_card or args.seeds:
        print("worldsim eval: error: --samplers, --rollouts, --frames, --window, --switch-every, --long-frames and "
              "--resamples go with --drift-study, which takes no --seeds or --update-card", file=sys.stderr)
        return 2
    summary = _run_study(args, lambda: drift_study(args.drift_study, args.out, _drift_config(args), device=args.device,
                                                   probes_folder=args.probes, revision=args.revision))
    if summary is None:
        return 2
    print(f"wrote {args.out}/summary.json, report.md and {len(summary['plots'])} PNGs ({summary['wall_time_s']} s)")
    return 0


def _update_card(folder: Path, document: dict) -> None:
    """Re-save the checkpoint with the evaluation in its metadata (each file is written atomically)."""
    from worldsim.eval.report import card_evaluation
    from worldsim.world import WorldModel

    world = WorldModel.from_pretrained(str(folder))
    world.metadata["evaluation"] = card_evaluation(document)
    world.save_pretrained(folder)
