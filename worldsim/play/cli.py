"""`python play.py` / `worldsim play`: arguments, world loading with clear errors, and the run itself."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator, Sequence

from worldsim.games import DEFAULT_GAME, GameSpec, game_for_metadata, game_for_world, shipped_game
from worldsim.play.session import GameSession
from worldsim.play.worlds import NeuralWorld, World
from worldsim.pretrained import DEFAULT_WORLD
from worldsim.runtime import DEFAULT_THREADS, add_threads_argument, set_threads

# The default game's own pace, which its datasets (and so the worlds trained on them) share.
DEFAULT_FPS = float(shipped_game(DEFAULT_GAME).fps)
DESCRIPTION = (
    "Play a worldsim world live: keys follow the game's action names (directions on WASD/arrows, FIRE on "
    "Space, other actions on letters; H lists them), T types an event, 1-9 trigger example events, "
    "P pauses, R resets."
)


class PlayError(Exception):
    """A problem the player can fix (bad argument, unknown checkpoint, no display): no traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    world = parser.add_argument_group("world")
    world.add_argument("--checkpoint", metavar="NAME|DIR|org/name", default=None,
                       help="bundled world name, checkpoint folder or Hub repo id (default: the bundled world)")
    world.add_argument("--world", choices=("neural", "real", "auto"), default="neural",
                       help="neural: the learned world; real: the ground-truth game it was trained on; "
                            "auto: neural if it loads, else real (with a note)")
    world.add_argument("--compare", action="store_true",
                       help="show the real game beside the neural world under the same inputs and events")
    world.add_argument("--device", default="cpu", help="torch device for the neural world (cpu, cuda, cuda:1)")
    world.add_argument("--revision", default=None, help="Hub branch, tag or commit of a Hub repo id")
    add_threads_argument(world)
    world.add_argument("--steps", type=int, default=None, help="denoising steps per frame (default: the model's)")
    world.add_argument("--seed", type=int, default=0, help="seed of the first episode (episode k uses seed+k)")
    world.add_argument("--event", default="", help="event text in force at the start")
    view = parser.add_argument_group("window")
    view.add_argument("--scale", type=int, default=8, help="pixels per world pixel (nearest-neighbour)")
    view.add_argument("--fps", type=float, default=DEFAULT_FPS,
                      help="frame-rate cap (0: as fast as the world runs); a slower model plays at its "
                           "own pace. Also the video's frame rate (the default when 0)")
    output = parser.add_argument_group("output")
    output.add_argument("--record", metavar="DIR", default=None,
                        help="save the session as a dataset (worldsim's dataset format) in this new folder")
    output.add_argument("--video", metavar="OUT.gif|OUT.mp4", default=None,
                        help="write what the window shows (MP4 needs ffmpeg on PATH)")
    output.add_argument("--screenshot", metavar="OUT.png", default=None,
                        help="save the window as a PNG when the session ends")
    auto = parser.add_argument_group("automation")
    auto.add_argument("--headless", action="store_true", help="no window (SDL dummy driver); needs --frames")
    auto.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    auto.add_argument("--events", default=None, metavar='"0:TEXT,150:TEXT"',
                      help="scheduled events by frame index (frame 0 is the start event)")
    auto.add_argument("--actions", default=None, metavar="random|FILE",
                      help="scripted actions instead of the keyboard (needs --frames): sticky random "
                           "(as `worldsim rollout`), or a .npy/.json/text file of integers")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="play.py", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("play", help="play a world live in a pygame window",
                                   description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=play)


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(play(build_parser().parse_args(argv)))


def play(args: argparse.Namespace) -> int:
    """Run a session from parsed arguments; returns the exit status (2 for a player-fixable problem)."""
    try:
        _check_arguments(args)
        return _play(args)
    except PlayError as error:
        print(f"play: error: {error}", file=sys.stderr)
        return 2


# --------------------------------------------------------------------------------- setup
def _check_arguments(args: argparse.Namespace) -> None:
    if args.headless and args.frames is None:
        raise PlayError("--headless needs --frames N (how many frames to play)")
    if args.frames is not None and args.frames <= 0:
        raise PlayError(f"--frames must be positive, got {args.frames}")
    if args.scale < 1:
        raise PlayError(f"--scale must be at least 1, got {args.scale}")
    if args.fps < 0:
        raise PlayError(f"--fps must be 0 (no cap) or positive, got {args.fps}")
    if args.steps is not None and args.steps < 1:
        raise PlayError(f"--steps must be at least 1, got {args.steps}")
    if args.compare and args.world == "real":
        raise PlayError("--compare shows the neural world beside the real one; drop --world real")
    if args.screenshot and not Path(args.screenshot).resolve().parent.is_dir():
        raise PlayError(f"--screenshot {args.screenshot}: its folder does not exist")


def build_worlds(args: argparse.Namespace) -> list[World]:
    """The worlds to show: the neural one (plus its real game with --compare), or the real one."""
    if args.world == "real":
        game = checkpoint_game(args.checkpoint, args.revision)
        return [real_world(game, "--world real")]
    try:
        world_model = load_world_model(args.checkpoint, args.device, args.revision, args.threads)
    except PlayError as error:
        if args.world != "auto":
            raise
        game = _fallback_game(args.checkpoint, args.revision)
        print(f"play: note: {error}\nplay: note: playing the real {game.display_name} game instead", file=sys.stderr)
        return [real_world(game, "--world auto")]
    checkpoint = args.checkpoint or DEFAULT_WORLD
    neural = NeuralWorld(world_model, checkpoint, seed=args.seed, steps=args.steps)
    if args.compare:
        return [neural, real_world(game_for_world(world_model), "--compare", size=neural.frame_shape[0])]
    return [neural]


def real_world(game: GameSpec, option: str, size: int | None = None) -> World:
    """The true `game` as a play world (its `GameSpec.play_world`), frames size x size (None: the game's)."""
    if game.play_world is None:
        raise PlayError(f"{option}: the world's game ({game.display_name}) has no real game to play "
                        "(a recorded game); play its neural world without --world real or --compare")
    if size is None:
        size = game.frame_shape[0] if game.frame_shape is not None else 64
    return game.play_world(size)


def checkpoint_game(checkpoint: str | None, revision: str | None = None) -> GameSpec:
    """The game of the world `checkpoint` names, from its config.json alone (no weights are loaded);
    None names the bundled default world, a world of the default game."""
    if checkpoint is None:
        return shipped_game(DEFAULT_GAME)
    from worldsim import hub

    try:
        folder = hub.resolve_checkpoint(checkpoint, hub.HubDownload(revision=revision))
        path = folder / hub.CONFIG_FILE
        config = hub.parse_checkpoint_config(hub.read_json(path), str(path))
        return game_for_metadata(config.metadata, int(config.world["num_actions"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PlayError(f"cannot read the game of world {checkpoint}: {error}") from error


def _fallback_game(checkpoint: str | None, revision: str | None) -> GameSpec:
    """--world auto when the neural world does not load: its game if config.json says, else the default game."""
    try:
        return checkpoint_game(checkpoint, revision)
    except PlayError:
        return shipped_game(DEFAULT_GAME)


def load_world_model(checkpoint: str | None, device: str, revision: str | None = None,
                     threads: int = DEFAULT_THREADS):
    """`worldsim.load` with a message that says what was tried and what to do instead."""
    import torch

    import worldsim

    try:
        set_threads(threads)
    except ValueError as error:
        raise PlayError(str(error)) from None
    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise PlayError(f"--device {device!r} is not a torch device ({error}); try cpu or cuda") from error
    if kind == "cuda" and not torch.cuda.is_available():
        raise PlayError(f"--device {device}: torch {torch.__version__} sees no CUDA device; use --device cpu")
    try:
        return worldsim.load(checkpoint, device=device, revision=revision)
    except (OSError, ValueError) as error:
        raise PlayError(
            f"cannot load world {checkpoint or DEFAULT_WORLD + ' (the bundled default)'}: {error}\n"
            "  play another world with --checkpoint DIR|org/name, or the real game with --world real"
        ) from error


def _action_source(spec: str | None, action_names: Sequence[str], frames: int | None, seed: int) -> Iterator[int] | None:
    """One action after each frame but the last, the way `worldsim rollout` reads them."""
    from worldsim.scripted import load_actions, random_actions

    if spec is None:
        return None
    if frames is None:
        raise PlayError("--actions needs --frames N (scripted play has a length)")
    try:
        if spec == "random":
            actions = random_actions(frames - 1, len(action_names), seed)
        else:
            actions = load_actions(spec, frames - 1, len(action_names), action_names)
    except ValueError as error:
        raise PlayError(str(error)) from error
    return iter(actions.tolist())


def _checked_schedule(args: argparse.Namespace, worlds: list[World]) -> dict[int, str]:
    """The scheduled events (frame 0 = start event), every one validated before anything starts."""
    from worldsim.scripted import parse_event_schedule

    try:
        schedule = parse_event_schedule(args.events or "", args.frames or sys.maxsize)
    except ValueError as error:
        raise PlayError(str(error)) from error
    if args.event and 0 not in schedule:
        schedule[0] = args.event
    for frame, text in sorted(schedule.items()):
        if not text:
            raise PlayError(f"--events: the event at frame {frame} is empty; play switches to events, "
                            "it cannot clear them")
        for world in worlds:
            problem = world.check_event(text)
            if problem is not None:
                raise PlayError(f"event {text!r} at frame {frame}: {world.name}: {problem}")
    return schedule


def _make_recorder(path: str, worlds: list[World], schedule: dict[int, str], args: argparse.Namespace):
    from worldsim.data import DatasetError
    from worldsim.play.recording import SessionRecorder

    primary = worlds[0]
    labels = [primary.event_label(text) for text in schedule.values()]
    try:
        return SessionRecorder(
            path, world=primary.dataset_world, frame_shape=primary.frame_shape,
            num_actions=primary.num_actions, event_texts=[*primary.event_vocabulary, *labels],
            label=primary.event_label,
            generator={"world": primary.name, "checkpoint": args.checkpoint, "seed": args.seed,
                       "action_names": list(primary.action_names)},  # the game's names (worldsim.games)
        )
    except (DatasetError, OSError) as error:
        raise PlayError(f"--record {path}: {error}") from error


# --------------------------------------------------------------------------------- the run
def _play(args: argparse.Namespace) -> int:
    from worldsim.play.app import NoDisplayError, PlayApp
    from worldsim.play.video import open_video

    try:  # before the (slow) world loading: a bad --video fails at once; the file appears at the end
        video = open_video(args.video, args.fps or DEFAULT_FPS) if args.video else None
    except ValueError as error:
        raise PlayError(f"--video: {error}") from error
    worlds = build_worlds(args)
    schedule = _checked_schedule(args, worlds)
    actions = _action_source(args.actions, worlds[0].action_names, args.frames, args.seed)
    session = GameSession(worlds, event=schedule.get(0, ""), seed=args.seed)
    try:
        app = PlayApp(session, scale=args.scale, fps=args.fps, headless=args.headless)
    except NoDisplayError as error:
        raise PlayError(str(error)) from error
    recorder = None
    try:
        if video is not None:
            app.frame_sinks.append(video.add)
        if args.record:
            recorder = _make_recorder(args.record, worlds, schedule, args)
            session.listeners.append(recorder)
        _run_until_done(app, args.frames, actions, schedule)
        if args.screenshot:
            app.screenshot(args.screenshot)
    except BaseException:
        if recorder is not None:
            recorder.close(complete=False)  # keep what was recorded, but not as a finished dataset
        if video is not None:
            video.discard()
        raise
    finally:
        app.close()
    if recorder is not None:
        recorder.close()
    if video is not None and video.num_frames == 0:
        video.discard()  # quit before the first frame: no empty file
        video = None
    if video is not None:
        video.close()
    _print_summary(app, recorder, video, args)
    return 0


def _run_until_done(app, frames: int | None, actions: Iterator[int] | None, schedule: dict[int, str]) -> None:
    try:
        app.run(frames=frames, actions=actions, schedule=schedule)
    except KeyboardInterrupt:
        print("play: interrupted; saving what was played", file=sys.stderr)


def _print_summary(app, recorder, video, args: argparse.Namespace) -> None:
    session = app.session
    hud = session.hud()
    print(f"played {app.frames_shown} frames over {session.episode + 1} episode(s); "
          f"return this episode {hud.returns[0]:+g}; model {hud.model_ms:.1f} ms/frame")
    if recorder is not None:
        print(f"recorded {recorder.num_frames} frames to {Path(args.record)}")
    if video is not None:
        print(f"wrote {video.num_frames} frames to {video.path}")
