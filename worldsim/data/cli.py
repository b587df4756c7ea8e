"""`worldsim data generate | record | info`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from worldsim.data.format import DatasetError

_GENERATE_EPILOG = """\
The run is resumable: if it is interrupted (Ctrl-C, kill, crash), run the same command again and
it continues from the shards already written, with the same final content as an uninterrupted
run. The content depends on --seed and the layout options, not on --workers.

example:
  worldsim data generate --world explorer --frames 200000 --out data/explorer --workers 2
"""


DESCRIPTION = ("Datasets of frames with the actions, events, rewards and terminations that go "
               "with them (a folder of .npz shards and a manifest.json).")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `worldsim data` to the `worldsim` command."""
    parser = subparsers.add_parser("data", help="generate, record and inspect datasets",
                                   description=DESCRIPTION)
    add_subcommands(parser)


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add `generate`, `record` and `info` to `parser`."""
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    commands.required = True
    _add_generate(commands)
    _add_record(commands)
    _add_info(commands)


def _generated_games() -> list[str]:
    """The shipped games `worldsim data generate` can roll out (their spec has `generate_settings`)."""
    from worldsim.games import shipped_games

    return [game.name for game in shipped_games() if game.generate_settings is not None]


def _add_generate(commands: argparse._SubParsersAction) -> None:
    from worldsim.games import DEFAULT_GAME

    parser = commands.add_parser(
        "generate", help="generate a dataset from a shipped game (parallel, resumable)",
        description="Play a game shipped with worldsim with its exploration policy and write the\n"
                    "frames into a dataset folder. In the default game the policy holds random\n"
                    "moves for 1-8 frames and redraws most moves into walls (a quarter are kept:\n"
                    "about 8% of steps bump into water, trees or rock), stands still in short\n"
                    "stretches, switches an event every 8-56 frames in a randomly picked group (each\n"
                    "switch changes the world) and cuts episodes after 200-1000 frames. `worldsim\n"
                    "data info DIR` reports the resulting shares.",
        epilog=_GENERATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--world", choices=_generated_games(), default=DEFAULT_GAME,
                        help=f"game to generate from (default: {DEFAULT_GAME})")
    parser.add_argument("--frames", type=_positive_int, required=True, help="total frames")
    parser.add_argument("--out", required=True, help="dataset folder (created, or resumed)")
    parser.add_argument("--workers", type=_positive_int, default=1,
                        help="worker processes, at most 64 (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=_positive_int, default=64,
                        help="frame height and width in pixels: a multiple of 4 in [12, 512] "
                             "(default: 64)")
    parser.add_argument("--shard-frames", type=_positive_int, default=8192,
                        help="frames per shard (default: 8192)")
    parser.add_argument("--envs-per-shard", type=_positive_int, default=8,
                        help="envs stepped together per shard; each shard holds that many "
                             "trajectories of shard-frames/envs-per-shard frames (default: 8)")
    parser.add_argument("--no-compress", action="store_true",
                        help="store shards uncompressed (faster to write, ~20x larger)")
    parser.add_argument("--keep-blocked", type=float, default=None, metavar="P",
                        help="per frame, the chance that the policy keeps pushing a move into a wall "
                             "instead of redrawing it: near 1 gives long pushes, data that teaches a "
                             "world to hold walls under a held key (default: the game's policy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_generate)


def _add_record(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "record", help="record any Gymnasium env with image observations and discrete actions",
        description="Play a Gymnasium env (uint8 [H,W,3] observations, Discrete actions) with a "
                    "random or sticky-random policy and write a dataset: frames (optionally cropped "
                    "and resized to SIZE x SIZE, as a world is trained on), actions, rewards, "
                    "terminations, episode ends, and the env's action meanings (its "
                    "get_action_meanings(), else 'action 0'..'action n-1'). Games with a FIRE "
                    "action get it once after each reset (Atari games that wait for it). "
                    "Resumable: repeat the command on an unfinished folder. Atari ids (ALE/...) "
                    "need the 'atari' extra (ale-py).",
        epilog="example:\n  worldsim data record --env ALE/Breakout-v5 --frames 3000 --size 64 --out data/breakout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. ALE/Pong-v5")
    parser.add_argument("--frames", type=_positive_int, required=True, help="frames to record")
    parser.add_argument("--out", required=True, help="new dataset folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--policy", choices=["sticky", "random"], default="sticky",
                        help="sticky: actions held for a few steps with short pauses; "
                             "random: a fresh uniform action every step (default: sticky)")
    parser.add_argument("--size", type=_positive_int, default=None,
                        help="resize frames to SIZE x SIZE by area averaging, e.g. 64 "
                             "(default: keep the env's frames)")
    parser.add_argument("--crop", type=_crop, default=(0, 0, 0, 0), metavar="T,B,L,R",
                        help="pixels removed from the top, bottom, left and right before resizing "
                             "(default: 0,0,0,0)")
    parser.add_argument("--frame-skip", type=_positive_int, default=1,
                        help="env steps per stored frame: the action is repeated and the rewards "
                             "summed (default: 1)")
    parser.add_argument("--no-fire-at-reset", dest="fire_at_reset", action="store_false",
                        help="do not press FIRE after each reset")
    parser.add_argument("--shard-frames", type=_positive_int, default=None,
                        help="frames per shard (default: about 64 MiB of raw frames)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_record)


def _add_info(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "info", help="summarise a dataset (frames, episodes, actions, events, rewards, size)",
        description="Summarise a dataset folder. Validates the manifest and every shard's "
                    "arrays; --verify also checks every shard's sha256 checksum.",
    )
    parser.add_argument("path", metavar="DIR", help="dataset folder")
    parser.add_argument("--verify", action="store_true", help="check every checksum")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=_run_info)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _crop(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected 4 integers >= 0 as top,bottom,left,right, got {text!r}")
    return values  # type: ignore[return-value]


def _run_generate(args: argparse.Namespace) -> int:
    from worldsim.data.generate import generate
    from worldsim.games import shipped_game

    settings = shipped_game(args.world).generate_settings  # --world's choices all have them
    try:
        config = settings(frames=args.frames, seed=args.seed, size=args.size, shard_frames=args.shard_frames,
                          envs_per_shard=args.envs_per_shard, compress=not args.no_compress)
        if args.keep_blocked is not None:
            config = dataclasses.replace(config, policy=dataclasses.replace(config.policy,
                                                                            keep_blocked_prob=args.keep_blocked))
        dataset = generate(args.out, config, workers=args.workers, progress=not args.quiet)
    except (ValueError, OSError) as error:  # ValueError includes DatasetError
        return _fail(error)
    print(f"wrote {dataset}")
    return 0


def _run_record(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from worldsim.data.record import RecordConfig, record

    try:
        config = RecordConfig(env_id=args.env, frames=args.frames, seed=args.seed,
                              policy=args.policy, shard_frames=args.shard_frames, size=args.size,
                              crop=args.crop, frame_skip=args.frame_skip, fire_at_reset=args.fire_at_reset)
        dataset = record(args.out, config, progress=not args.quiet)
    except (ValueError, OSError, gym.error.Error) as error:  # ValueError includes DatasetError
        return _fail(error)
    print(f"wrote {dataset}")
    return 0


def _run_info(args: argparse.Namespace) -> int:
    from worldsim.data.info import format_summary, summarize
    from worldsim.data.reader import Dataset

    try:
        summary = summarize(Dataset(args.path), verify=args.verify)
    except DatasetError as error:
        return _fail(error)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _fail(error: Exception) -> int:
    """Bad input or a bad dataset: one clear line on stderr instead of a traceback."""
    print(f"error: {error}", file=sys.stderr)
    return 2
