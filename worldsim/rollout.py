"""`worldsim rollout`: play a world for N frames with scripted or random actions and timed events.

    worldsim rollout --checkpoint X --frames N --actions random|FILE \
        --events "0:a sunny meadow,200:night falls" --out run.gif|run.mp4|DIR

Output by suffix (worldsim.imaging.video): `.gif` (Pillow when installed, else worldsim's own
encoder), `.mp4` (imageio-ffmpeg's or PATH's ffmpeg), no suffix: a folder of PNG frames plus
`rollout.json` (actions, events, rewards, terminations). Every argument, the output path included,
is checked before the world is loaded.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldsim.data.atomic import atomic_write_json
from worldsim.imaging.video import check_output, save_frames
from worldsim.runtime import add_threads_argument, check_device, set_threads
from worldsim.scripted import load_actions, parse_event_schedule, random_actions

# ----------------------------------------------------------------------------------------------
# The rollout


@dataclass
class Rollout:
    frames: np.ndarray  # uint8 [N, H, W, 3]
    actions: np.ndarray  # int64 [N-1]: actions[i] was taken after frame i
    events: list[str]  # [N]: the event in force at each frame
    rewards: np.ndarray  # float32 [N-1]
    terminated: np.ndarray  # bool [N-1]


def run_rollout(
    world, actions: np.ndarray, schedule: dict[int, str], seed: int = 0, steps: int | None = None,
    sampler: str = "frame", progress: bool | None = False,
) -> Rollout:
    """Play one env: reset under schedule[0] (if any), then one step per action.

    `progress`: a progress bar on stderr (None: only when stderr is a terminal).
    """
    from tqdm.auto import tqdm

    sim = world.simulator(batch_size=1, seed=seed, steps=steps, sampler=sampler)
    event = schedule.get(0, "")
    frames = [sim.reset(event=event)[0].cpu().numpy()]
    events, rewards, terminated = [event], [], []
    bar = tqdm(actions, desc="rollout", unit="frame", disable=None if progress is None else not progress)
    for index, action in enumerate(bar, start=1):
        if index in schedule:
            event = schedule[index]
        frame, reward, done = sim.step([int(action)], events=[schedule.get(index)])
        frames.append(frame[0].cpu().numpy())
        events.append(event)
        rewards.append(float(reward[0]))
        terminated.append(bool(done[0]))
    return Rollout(
        np.stack(frames), np.asarray(actions, np.int64), events,
        np.asarray(rewards, np.float32), np.asarray(terminated, bool),
    )  # fmt: skip


def _write_rollout(out: Path, rollout: Rollout, fps: float, scale: int) -> None:
    frames = rollout.frames.repeat(scale, axis=1).repeat(scale, axis=2) if scale > 1 else rollout.frames
    save_frames(out, frames, fps)
    if not out.suffix:
        record = {
            "actions": rollout.actions.tolist(),
            "events": rollout.events,
            "rewards": rollout.rewards.tolist(),
            "terminated": rollout.terminated.tolist(),
        }
        atomic_write_json(out / "rollout.json", record)


# ----------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="play a world for N frames and save a GIF, MP4 or PNG folder",
        description="Play a world for N frames with random or scripted actions and timed events.",
    )
    parser.add_argument("--checkpoint", default=None, help="bundled name, local folder or Hub repo id (default: explorer-64)")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of a Hub repo id")
    parser.add_argument("--frames", type=int, default=300, help="frames in the output, the first one included")
    parser.add_argument("--actions", default="random", help="'random' (sticky, seeded) or a file: .npy, .json or text")
    parser.add_argument("--events", default="", help='timed events, e.g. "0:a sunny meadow,200:night falls"')
    parser.add_argument("--out", required=True,
                        help="run.gif, run.mp4 (ffmpeg: pip install 'worldsim[video]') or a folder for PNGs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per frame (default: the config's)")
    parser.add_argument("--sampler", choices=("frame", "rolling"), default="frame",
                        help="rolling: frames in flight at staggered noise levels (actions show later)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    add_threads_argument(parser)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--scale", type=int, default=1, help="integer upscaling of the saved frames")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (default: shown when stderr is a terminal)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        _run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"worldsim rollout: error: {error}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    from worldsim.sampling.inputs import check_event_text
    from worldsim.world import WorldModel

    if args.frames < 1 or args.scale < 1 or args.fps <= 0:
        raise ValueError("--frames and --scale must be >= 1 and --fps > 0")
    out = check_output(args.out)
    set_threads(args.threads)
    device = check_device(args.device)
    schedule = parse_event_schedule(args.events, args.frames)
    world = WorldModel.from_pretrained(args.checkpoint, device=device, revision=args.revision)
    tokenizer = world.tokenizer
    for frame, text in schedule.items():
        check_event_text(text, f"--events entry for frame {frame}", tokenizer.num_tokens, tokenizer.max_tokens)
    count, num_actions = args.frames - 1, world.config.num_actions
    if args.actions == "random":
        actions = random_actions(count, num_actions, args.seed)
    else:
        from worldsim.games import game_for_world

        actions = load_actions(args.actions, count, num_actions, game_for_world(world).action_names)
    rollout = run_rollout(world, actions, schedule, seed=args.seed, steps=args.steps, sampler=args.sampler,
                          progress=args.progress)  # fmt: skip
    _write_rollout(out, rollout, args.fps, args.scale)
    print(f"wrote {len(rollout.frames)} frames to {out}", file=sys.stderr)
