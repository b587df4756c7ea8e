"""Frames to a file by its suffix: `.gif`, `.mp4` or (no suffix) a folder of PNGs.

The fastest encoder installed is used, none is required:
- GIF: Pillow's C coder when Pillow is installed (the optional extra `video`), else the pure-numpy
  coder of `worldsim.imaging.gif`. Both use the same palette (exact for <= 256 colours); Pillow
  stores a run of identical frames once, with their durations added.
- MP4: the ffmpeg program that imageio-ffmpeg ships as a wheel (extra `video`), else `ffmpeg` on PATH.
Every file appears atomically (temporary name, then rename). `check_output(out)` says before any
work whether `out` can be written, so a command fails before a long rollout rather than after it.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from worldsim.data.atomic import atomic_write_bytes
from worldsim.imaging.gif import check_frames, gif_bytes, gif_palette
from worldsim.imaging.png import encode_png
from worldsim.runtime import check_output_file, check_output_folder

__all__ = ["SUFFIXES", "check_output", "ffmpeg_program", "gif_encoder", "save_frames"]

SUFFIXES = (".gif", ".mp4")


def gif_encoder() -> str:
    """"pillow" when Pillow is installed, else "numpy" (worldsim.imaging.gif)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return "numpy"
    return "pillow"


def ffmpeg_program() -> str | None:
    """imageio-ffmpeg's bundled ffmpeg, else `ffmpeg` on PATH, else None."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return shutil.which("ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def check_output(out: str | os.PathLike, flag: str = "--out") -> Path:
    """`out` is a .gif/.mp4 file in an existing folder, or a folder for PNGs; MP4 needs an ffmpeg."""
    out = Path(out)
    suffix = out.suffix.lower()
    if not suffix:
        return check_output_folder(out, flag)
    if suffix not in SUFFIXES:
        raise ValueError(f"{flag} {out}: unknown suffix {suffix!r}; use .gif, .mp4 or a folder name")
    if suffix == ".mp4" and ffmpeg_program() is None:
        raise ValueError(f"{flag} {out}: writing MP4 needs ffmpeg (pip install 'worldsim[video]' or an ffmpeg "
                         "program on PATH); use a .gif or a folder instead")
    return check_output_file(out, flag)


def save_frames(out: str | os.PathLike, frames: np.ndarray, fps: float = 15.0) -> Path:
    """Write uint8 frames [N,H,W,3] as `out` (see the module docstring)."""
    frames = check_frames(frames)
    out = check_output(out)
    suffix = out.suffix.lower()
    if suffix == ".gif":
        atomic_write_bytes(out, pillow_gif_bytes(frames, fps) if gif_encoder() == "pillow" else gif_bytes(frames, fps))
    elif suffix == ".mp4":
        _write_mp4(out, frames, fps)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index, frame in enumerate(frames):
            atomic_write_bytes(out / f"frame_{index:06d}.png", encode_png(frame))
    return out


def pillow_gif_bytes(frames: np.ndarray, fps: float = 15.0) -> bytes:
    """A looping GIF of `frames` with Pillow's encoder and worldsim's palette (as `gif_bytes`)."""
    from PIL import Image

    frames = check_frames(frames)
    palette, indices = gif_palette(frames)
    _, height, width, _ = frames.shape
    images = []
    for frame_indices in indices:
        image = Image.frombytes("P", (width, height), frame_indices.tobytes())
        image.putpalette(palette.tobytes())
        images.append(image)
    delay_ms = 10 * max(2, round(100 / fps))  # GIF counts centiseconds; viewers slow anything below 2
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=delay_ms, loop=0,
                   optimize=False)  # fmt: skip
    return buffer.getvalue()


def _write_mp4(out: Path, frames: np.ndarray, fps: float) -> None:
    program = ffmpeg_program()
    if program is None:
        raise ValueError(f"writing {out} needs ffmpeg (pip install 'worldsim[video]'); use a .gif or a folder instead")
    _, height, width, _ = frames.shape
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".mp4", dir=out.parent)
    os.close(fd)
    command = [
        program, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2:flags=neighbor", tmp_name,
    ]  # fmt: skip
    try:
        subprocess.run(command, input=frames.tobytes(), check=True)
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
