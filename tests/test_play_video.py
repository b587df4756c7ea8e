"""`--video`: the streaming GIF writer decodes back to the frames it was given; bad requests fail clearly."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from gif_reader import read_gif

from worldsim.play.video import GifStream, Mp4Stream, open_video


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
    decoded, delays, loops = read_gif((tmp_path / "play.gif").read_bytes())
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
    monkeypatch.setattr("worldsim.play.video.ffmpeg_program", lambda: None)
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
