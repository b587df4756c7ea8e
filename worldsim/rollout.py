"""`worldsim rollout`: play a world for N frames with scripted or random actions and timed events.

    worldsim rollout --checkpoint X --frames N --actions random|FILE \
        --events "0:a sunny meadow,200:night falls" --out run.gif|run.mp4|DIR

Output by suffix: `.gif` (written here, no extra dependency: global 256-colour palette + LZW),
`.mp4` (piped to the `ffmpeg` program when it is on PATH), anything else is a folder of PNG
frames (worldsim.imaging.png) plus `rollout.json` (actions, events, rewards, terminations).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldsim.data.atomic import atomic_write_bytes, atomic_write_json
from worldsim.imaging.png import encode_png

# ----------------------------------------------------------------------------------------------
# Animated GIF (pure numpy + an LZW coder) and the output dispatch


def gif_palette(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 256-colour palette for `frames` [N,H,W,3] and the palette index of every pixel [N,H,W].

    Exact when the frames use at most 256 colours (rendered game frames usually do). Otherwise
    colours are binned on the finest grid (5, 4, 3 or 2 bits per channel) that has at most 256
    occupied bins, and each bin is drawn in the mean colour of its pixels: the error per channel
    stays within one bin width, whatever the image.
    """
    for bits in (8, 5, 4, 3, 2):
        codes = _rgb_codes(frames, bits)
        occupied, indices = np.unique(codes, return_inverse=True)
        if len(occupied) <= 256:
            break
    indices = indices.reshape(frames.shape[:3])
    counts = np.bincount(indices.ravel(), minlength=len(occupied))[:, None]
    sums = np.stack([np.bincount(indices.ravel(), weights=frames[..., c].ravel(), minlength=len(occupied))
                     for c in range(3)], axis=1)  # fmt: skip
    palette = np.zeros((256, 3), np.uint8)
    palette[: len(occupied)] = np.round(sums / counts).astype(np.uint8)
    return palette, indices.astype(np.uint8)


def _rgb_codes(frames: np.ndarray, bits: int) -> np.ndarray:
    channels = (frames >> (8 - bits)).astype(np.int64)
    return (channels[..., 0] << (2 * bits)) | (channels[..., 1] << bits) | channels[..., 2]


def lzw_encode(indices: bytes, min_code_size: int = 8) -> bytes:
    """GIF-flavoured LZW (variable code width up to 12 bits, LSB-first packing, clear when full)."""
    clear_code, end_code = 1 << min_code_size, (1 << min_code_size) + 1
    out = bytearray()
    bit_buffer, bit_count = 0, 0
    code_size = min_code_size + 1

    def emit(code: int) -> None:
        nonlocal bit_buffer, bit_count
        bit_buffer |= code << bit_count
        bit_count += code_size
        while bit_count >= 8:
            out.append(bit_buffer & 0xFF)
            bit_buffer >>= 8
            bit_count -= 8

    table: dict[int, int] = {}
    next_code = end_code + 1
    emit(clear_code)
    prefix = indices[0]
    for index in indices[1:]:
        key = (prefix << 8) | index
        code = table.get(key)
        if code is not None:
            prefix = code
            continue
        emit(prefix)
        if next_code < 4096:
            table[key] = next_code
            next_code += 1
            # The decoder learns each entry one code later, hence ">" rather than ">=".
            if next_code > (1 << code_size) and code_size < 12:
                code_size += 1
        else:
            emit(clear_code)
            table.clear()
            next_code = end_code + 1
            code_size = min_code_size + 1
        prefix = index
    emit(prefix)
    emit(end_code)
    if bit_count:
        out.append(bit_buffer & 0xFF)
    return bytes(out)


def gif_bytes(frames: np.ndarray, fps: float = 15.0) -> bytes:
    """Encode uint8 frames [N,H,W,3] as a looping animated GIF."""
    frames = _check_frames(frames)
    _, height, width, _ = frames.shape
    palette, indices = gif_palette(frames)
    delay = max(2, round(100 / fps))  # centiseconds; viewers slow down anything below 2
    parts = [
        b"GIF89a",
        struct.pack("<HHBBB", width, height, 0xF7, 0, 0),  # global table of 256 colours
        palette.tobytes(),
        b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00",  # loop forever
    ]
    for frame_indices in indices:
        data = lzw_encode(frame_indices.tobytes())
        blocks = b"".join(bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255))
        parts += [
            b"\x21\xf9\x04\x00" + struct.pack("<H", delay) + b"\x00\x00",
            b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0),
            b"\x08" + blocks + b"\x00",
        ]
    parts.append(b"\x3b")
    return b"".join(parts)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [N,H,W,3] with N >= 1, got {frames.dtype} {frames.shape}")
    return np.ascontiguousarray(frames)


def save_frames(out: str | os.PathLike, frames: np.ndarray, fps: float = 15.0) -> Path:
    """Write frames by the suffix of `out`: .gif, .mp4 (needs ffmpeg), else a folder of PNGs."""
    out = Path(out)
    frames = _check_frames(frames)
    suffix = out.suffix.lower()
    if suffix == ".gif":
        atomic_write_bytes(out, gif_bytes(frames, fps))
    elif suffix == ".mp4":
        _write_mp4(out, frames, fps)
    elif suffix:
        raise ValueError(f"--out {out}: unknown suffix {suffix!r}; use .gif, .mp4 or a folder name")
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            atomic_write_bytes(out / f"frame_{index:06d}.png", encode_png(frame))
    return out


def _write_mp4(out: Path, frames: np.ndarray, fps: float) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"writing {out} needs the ffmpeg program on PATH; use a .gif or a folder instead")
    _, height, width, _ = frames.shape
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".mp4", dir=out.parent)
    os.close(fd)
    command = [
        ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2:flags=neighbor", tmp_name,
    ]  # fmt: skip
    try:
        subprocess.run(command, input=frames.tobytes(), check=True)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------
# Scripted inputs


def parse_event_schedule(spec: str, num_frames: int) -> dict[int, str]:
    """"0:a sunny meadow,200:night falls" -> {0: "a sunny meadow", 200: "night falls"}.

    Entries are split at commas that are followed by `<frame>:`, so texts may contain commas.
    An empty text ("150:") clears the event.
    """
    schedule: dict[int, str] = {}
    if not spec.strip():
        return schedule
    for entry in re.split(r",\s*(?=\d+\s*:)", spec.strip()):
        match = re.fullmatch(r"\s*(\d+)\s*:(.*)", entry, flags=re.DOTALL)
        if match is None:
            raise ValueError(f"--events entry {entry!r} is not of the form FRAME:TEXT")
        frame, text = int(match.group(1)), match.group(2).strip()
        if frame >= num_frames:
            raise ValueError(f"--events entry {entry!r}: frame {frame} is beyond the last frame {num_frames - 1}")
        if frame in schedule:
            raise ValueError(f"--events: frame {frame} is given twice")
        schedule[frame] = text
    return schedule


def random_actions(count: int, num_actions: int, seed: int, mean_hold: float = 4.0) -> np.ndarray:
    """Sticky random actions: each drawn action is held for a geometric number of frames."""
    rng = np.random.default_rng(seed)
    actions: list[int] = []
    while len(actions) < count:
        actions += [int(rng.integers(num_actions))] * int(rng.geometric(1.0 / mean_hold))
    return np.asarray(actions[:count], dtype=np.int64)


def load_actions(path: str | os.PathLike, count: int, num_actions: int) -> np.ndarray:
    """Actions from .npy (no pickles), .json (a list) or text (integers split by spaces/commas)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--actions {path}: no such file (use 'random' or a file of integers)")
    if path.suffix == ".npy":
        values = np.load(path, allow_pickle=False)
    elif path.suffix == ".json":
        values = np.asarray(json.loads(path.read_text()))
    else:
        tokens = [token for token in re.split(r"[\s,]+", path.read_text()) if token]
        try:
            values = np.asarray([int(token) for token in tokens], dtype=np.int64)
        except ValueError:
            raise ValueError(f"--actions {path}: expected integers separated by spaces or commas") from None
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise ValueError(f"--actions {path}: expected a flat list of integers, got {values.dtype} {values.shape}")
    if len(values) < count:
        raise ValueError(f"--actions {path}: {len(values)} actions, the rollout needs {count}")
    if values.min(initial=0) < 0 or values.max(initial=0) >= num_actions:
        raise ValueError(f"--actions {path}: actions must be in 0..{num_actions - 1}")
    return values[:count].astype(np.int64)


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
    world, actions: np.ndarray, schedule: dict[int, str], seed: int = 0, steps: int | None = None, sampler: str = "frame"
) -> Rollout:
    """Play one env: reset under schedule[0] (if any), then one step per action."""
    sim = world.simulator(batch_size=1, seed=seed, steps=steps, sampler=sampler)
    event = schedule.get(0, "")
    frames = [sim.reset(event=event)[0].cpu().numpy()]
    events, rewards, terminated = [event], [], []
    for index, action in enumerate(actions, start=1):
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
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit")
    parser.add_argument("--frames", type=int, default=300, help="frames in the output, the first one included")
    parser.add_argument("--actions", default="random", help="'random' (sticky, seeded) or a file: .npy, .json or text")
    parser.add_argument("--events", default="", help='timed events, e.g. "0:a sunny meadow,200:night falls"')
    parser.add_argument("--out", required=True, help="run.gif, run.mp4 (needs ffmpeg) or a folder for PNGs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per frame (default: the config's)")
    parser.add_argument("--sampler", choices=("frame", "rolling"), default="frame",
                        help="rolling: frames in flight at staggered noise levels (actions show later)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--scale", type=int, default=1, help="integer upscaling of the saved frames")
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
    schedule = parse_event_schedule(args.events, args.frames)
    world = WorldModel.from_pretrained(args.checkpoint, device=args.device, revision=args.revision)
    tokenizer = world.tokenizer
    for frame, text in schedule.items():
        check_event_text(text, f"--events entry for frame {frame}", tokenizer.num_tokens, tokenizer.max_tokens)
    count, num_actions = args.frames - 1, world.config.num_actions
    if args.actions == "random":
        actions = random_actions(count, num_actions, args.seed)
    else:
        actions = load_actions(args.actions, count, num_actions)
    rollout = run_rollout(world, actions, schedule, seed=args.seed, steps=args.steps, sampler=args.sampler)
    out = Path(args.out)
    _write_rollout(out, rollout, args.fps, args.scale)
    print(f"wrote {len(rollout.frames)} frames to {out}", file=sys.stderr)
