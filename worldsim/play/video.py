"""`--video`: stream what the window shows to a GIF (or an MP4 through ffmpeg) frame by frame.

Live sessions have no fixed length, so frames go to disk as they come and memory stays flat: each
GIF frame carries its own palette (the colour maths and LZW coder of `worldsim.imaging.gif`), an
MP4 is piped to the `ffmpeg` program `worldsim.imaging.video.ffmpeg_program` finds. The file appears (atomic rename) only when the writer closes.
"""
from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path
from typing import Protocol

import numpy as np

from worldsim.imaging.gif import gif_palette, lzw_encode
from worldsim.imaging.video import ffmpeg_program

SUPPORTED_SUFFIXES = (".gif", ".mp4")


class VideoWriter(Protocol):
    path: Path
    num_frames: int

    def add(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...

    def discard(self) -> None: ...


def open_video(path: str | Path, fps: float) -> VideoWriter:
    """A streaming writer chosen by suffix; bad suffix or missing ffmpeg is a ValueError up front."""
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"video fps must be positive, got {fps}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write video {path}: folder {path.parent} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return GifStream(path, fps)
    if suffix == ".mp4":
        return Mp4Stream(path, fps)
    raise ValueError(f"cannot write video {path}: supported formats are {', '.join(SUPPORTED_SUFFIXES)}")


def _checked(frame: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"video frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"video frame shape changed from {shape} to {frame.shape}")
    return frame


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


class GifStream:
    """Looping animated GIF written frame by frame, one local 256-colour palette per frame."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self.num_frames = 0
        self._temp = _temp_sibling(path)
        self._handle = None
        self._shape: tuple[int, ...] | None = None
        self._elapsed_cs = 0.0  # exact time in centiseconds; each delay is rounded from it

    def add(self, frame: np.ndarray) -> None:
        frame = _checked(frame, self._shape)
        if self._handle is None:
            self._shape = frame.shape
            self._handle = open(self._temp, "wb")
            self._handle.write(gif_header(frame.shape[1], frame.shape[0]))
        start = round(self._elapsed_cs)
        self._elapsed_cs += 100.0 / self.fps
        self._handle.write(gif_image(frame, delay_cs=round(self._elapsed_cs) - start))
        self.num_frames += 1

    def close(self) -> None:
        if self._handle is None:
            raise ValueError(f"no frames were written to {self.path}")
        self._handle.write(b"\x3b")  # trailer
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        os.replace(self._temp, self.path)

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._temp.unlink(missing_ok=True)


def gif_header(width: int, height: int) -> bytes:
    """GIF89a screen without a global palette, plus the NETSCAPE block that loops forever."""
    return (b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
            + b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")


def gif_image(frame: np.ndarray, delay_cs: int) -> bytes:
    """Graphic control + image descriptor with a local 256-colour table + LZW data for one frame."""
    height, width = frame.shape[:2]
    palette, indices = gif_palette(frame[None])  # always 256 entries, as the descriptor says
    data = lzw_encode(indices[0].tobytes())
    blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
    return (b"\x21\xf9\x04\x00" + struct.pack("<H", delay_cs) + b"\x00\x00"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x87) + palette.tobytes()
            + b"\x08" + blocks + b"\x00")


class Mp4Stream:
    """H.264 MP4 through an `ffmpeg` process fed raw RGB frames on its stdin."""

    def __init__(self, path: Path, fps: float) -> None:
        ffmpeg = ffmpeg_program()
        if ffmpeg is None:
            raise ValueError(f"cannot write {path}: MP4 needs the ffmpeg program (extra 'video', or on PATH), "
                             "which was not found; .gif works without it")
        self.path = path
        self.fps = fps
        self.num_frames = 0
        self._ffmpeg = ffmpeg
        self._temp = _temp_sibling(path)
        self._process: subprocess.Popen | None = None
        self._shape: tuple[int, ...] | None = None

    def add(self, frame: np.ndarray) -> None:
        frame = _checked(frame, self._shape)
        if self._process is None:
            self._shape = frame.shape
            self._process = self._start(width=frame.shape[1], height=frame.shape[0])
        self._process.stdin.write(frame.tobytes())
        self.num_frames += 1

    def _start(self, width: int, height: int) -> subprocess.Popen:
        command = [self._ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{width}x{height}", "-r", f"{self.fps}", "-i", "-", "-pix_fmt", "yuv420p",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-f", "mp4", str(self._temp)]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def close(self) -> None:
        if self._process is None:
            raise ValueError(f"no frames were written to {self.path}")
        _, errors = self._process.communicate()
        failed = self._process.returncode != 0
        self._process = None
        if failed:
            self._temp.unlink(missing_ok=True)
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {errors.decode(errors='replace')}")
        os.replace(self._temp, self.path)

    def discard(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        self._temp.unlink(missing_ok=True)
