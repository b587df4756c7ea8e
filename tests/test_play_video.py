"""`--video`: the streaming GIF writer decodes back to the frames it was given; bad requests fail clearly."""
from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from worldsim.play.video import GifStream, Mp4Stream, open_video


def lzw_decode(data: bytes, min_code_size: int) -> list[int]:
    """A plain GIF LZW decoder, written independently of the encoder under test."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    bits = int.from_bytes(data, "little")
    position, code_size = 0, min_code_size + 1
    table: list[list[int]] = []
    previous: list[int] | None = None
    output: list[int] = []
    while True:
        code = (bits >> position) & ((1 << code_size) - 1)
        position += code_size
        if code == clear:
            table = [[i] for i in range(clear)] + [[], []]
            code_size, previous = min_code_size + 1, None
            continue
        if code == end:
            return output
        if previous is None:
            entry = table[code]
        else:
            entry = table[code] if code < len(table) else previous + previous[:1]
            if len(table) < 4096:
                table.append(previous + entry[:1])
        output += entry
        previous = entry
        if len(table) == (1 << code_size) and code_size < 12:
            code_size += 1


def read_gif(path) -> tuple[list[np.ndarray], list[int], bool]:
    """(frames, delays in centiseconds, loops) of a GIF with local colour tables."""
    data = path.read_bytes()
    assert data[:6] == b"GIF89a"
    width, height, flags = struct.unpack("<HHB", data[6:11])
    assert flags & 0x80 == 0  # no global palette: every frame brings its own
    position, frames, delays, loops = 13, [], [], False
    while data[position] != 0x3B:
        if data[position] == 0x21:  # extension: label, then sub-blocks
            label = data[position + 1]
            if label == 0xF9:
                delays.append(struct.unpack("<H", data[position + 4:position + 6])[0])
            loops |= label == 0xFF and data[position + 3:position + 14] == b"NETSCAPE2.0"
            position += 2
            while data[position]:
                position += data[position] + 1
            position += 1
            continue
        assert data[position] == 0x2C
        left, top, w, h, image_flags = struct.unpack("<HHHHB", data[position + 1:position + 10])
        assert (left, top, w, h) == (0, 0, width, height) and image_flags & 0x80
        palette_size = 2 << (image_flags & 7)
        palette = np.frombuffer(data, np.uint8, palette_size * 3, position + 10).reshape(-1, 3)
        position += 10 + palette_size * 3
        min_code_size = data[position]
        position += 1
        compressed = bytearray()
        while data[position]:
            compressed += data[position + 1:position + 1 + data[position]]
            position += data[position] + 1
        position += 1
        indices = np.array(lzw_decode(bytes(compressed), min_code_size))
        frames.append(palette[indices].reshape(height, width, 3))
    return frames, delays, loops


def test_gif_stream_round_trips_frames_with_their_own_palettes(tmp_path):
    rng = np.random.default_rng(0)
    # Two frames with different small palettes, and one busy frame that fills the LZW table.
    frames = [np.kron(rng.integers(0, 4, (16, 16, 3)) * 80, np.ones((5, 5, 1))).astype(np.uint8)
              for _ in range(2)]
    frames.append(np.repeat(rng.integers(0, 200, (80, 80, 1)), 3, axis=2).astype(np.uint8))
    writer = open_video(tmp_path / "play.gif", fps=15)
    assert isinstance(writer, GifStream)
    for frame in frames:
        writer.add(frame)
        assert not (tmp_path / "play.gif").exists()  # appears only once complete
    writer.close()
    decoded, delays, loops = read_gif(tmp_path / "play.gif")
    assert loops and len(decoded) == 3
    for got, want in zip(decoded, frames):
        np.testing.assert_array_equal(got, want)
    assert delays == [7, 6, 7]  # 15 fps: delays alternate around 6.67 cs with no drift
    assert writer.num_frames == 3
    assert list(tmp_path.iterdir()) == [tmp_path / "play.gif"]  # no temporary file left


def test_gif_stream_rejects_changing_shapes_and_discard_leaves_nothing(tmp_path):
    writer = open_video(tmp_path / "play.gif", fps=10)
    writer.add(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="shape changed"):
        writer.add(np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        writer.add(np.zeros((4, 4, 3), np.float32))
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_unsupported_formats_and_missing_ffmpeg_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"supported formats are \.gif, \.mp4"):
        open_video(tmp_path / "play.avi", fps=15)
    with pytest.raises(ValueError, match="does not exist"):
        open_video(tmp_path / "missing" / "play.gif", fps=15)
    monkeypatch.setattr("worldsim.play.video.shutil.which", lambda name: None)
    with pytest.raises(ValueError, match="ffmpeg"):
        Mp4Stream(tmp_path / "play.mp4", fps=15)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="MP4 is written through the ffmpeg program")
def test_mp4_stream_writes_an_mp4_through_ffmpeg(tmp_path):
    writer = open_video(tmp_path / "play.mp4", fps=15)
    for shade in range(0, 250, 25):
        writer.add(np.full((31, 33, 3), shade, np.uint8))  # odd sizes are padded for H.264
    writer.close()
    data = (tmp_path / "play.mp4").read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 200
    assert list(tmp_path.iterdir()) == [tmp_path / "play.mp4"]
