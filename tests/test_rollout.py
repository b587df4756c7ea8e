"""`worldsim rollout`: the GIF writer (checked by an independent decoder), scripted inputs, the command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from gif_reader import lzw_decode, read_gif
from test_world_fixtures import make_world

from worldsim import cli
from worldsim.imaging import video
from worldsim.imaging.gif import gif_bytes, lzw_encode
from worldsim.scripted import load_actions, parse_event_schedule, random_actions
from worldsim.rollout import (
    run_rollout,
    save_frames,
)

# ----------------------------------------------------------------------------------------------
# GIF


def test_gif_with_few_colours_is_lossless():
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (200, 3), dtype=np.uint8)
    frames = colours[rng.integers(0, 200, (4, 24, 40))]
    decoded, _, _ = read_gif(gif_bytes(frames, fps=10))
    assert len(decoded) == 4
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames))


def test_gif_with_many_colours_is_close():
    gradient = np.linspace(0, 255, 64).astype(np.int16)
    base = np.stack(np.broadcast_arrays(gradient[:, None], gradient[None, :], 100 + 0 * gradient[:, None]), -1)
    jitter = np.random.default_rng(1).integers(-1, 2, (2, 64, 64, 3))
    frames = np.clip(base[None] + jitter, 0, 255).astype(np.uint8)
    decoded = np.stack(read_gif(gif_bytes(frames))[0])
    # 16 x 16 x 1 occupied 4-bit bins: every pixel within one bin width (16) of the truth.
    assert np.abs(decoded.astype(int) - frames.astype(int)).max() < 16


def test_lzw_handles_full_tables():
    indices = np.random.default_rng(2).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    assert bytes(lzw_decode(lzw_encode(indices), 8)) == indices
    runs = bytes([7]) * 30_000  # one long run: the table grows by long strings
    assert bytes(lzw_decode(lzw_encode(runs), 8)) == runs


def test_save_frames_by_suffix(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    save_frames(tmp_path / "clip.gif", frames)
    assert len(read_gif((tmp_path / "clip.gif").read_bytes())[0]) == 3
    save_frames(tmp_path / "pngs", frames)
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"frame_{i:06d}.png" for i in range(3)]
    with pytest.raises(ValueError, match="suffix"):
        save_frames(tmp_path / "clip.avi", frames)
    with pytest.raises(ValueError, match="uint8"):
        save_frames(tmp_path / "clip.gif", frames.astype(np.float32))
    if video.ffmpeg_program() is None:
        with pytest.raises(ValueError, match="ffmpeg"):
            save_frames(tmp_path / "clip.mp4", frames)


@pytest.mark.parametrize("encoder", ["numpy", "pillow"])
def test_gif_encoders_write_the_same_frames(encoder, tmp_path, monkeypatch):
    if encoder == "pillow":
        pytest.importorskip("PIL")
    monkeypatch.setattr(video, "gif_encoder", lambda: encoder)
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (40, 3), dtype=np.uint8)[rng.integers(0, 40, (5, 16, 24))]
    save_frames(tmp_path / "clip.gif", frames, fps=10)
    decoded, _, _ = read_gif((tmp_path / "clip.gif").read_bytes())
    assert len(decoded) == 5 and all(np.array_equal(a, b) for a, b in zip(decoded, frames))


def test_mp4_uses_imageio_ffmpeg_when_installed(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    frames = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    save_frames(tmp_path / "clip.mp4", frames)
    assert (tmp_path / "clip.mp4").read_bytes()[4:8] == b"ftyp"


def test_unwritable_outputs_are_found_before_anything_is_written(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.gif").mkdir()
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    for out, message in [(tmp_path / "missing" / "x.gif", "does not exist"), (tmp_path / "file" / "x.gif", "a file"),
                         (tmp_path / "file" / "pngs", "a file"), (tmp_path / "folder.gif", "is a folder"),
                         (tmp_path / "x.avi", "suffix")]:
        with pytest.raises(ValueError, match=message):
            save_frames(out, frames)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file", "folder.gif"]


# ----------------------------------------------------------------------------------------------
# scripted inputs


def test_parse_event_schedule():
    assert parse_event_schedule("0:a sunny meadow,200:night falls", 300) == {0: "a sunny meadow", 200: "night falls"}
    assert parse_event_schedule(" 5 : rain, then fog , 9:", 10) == {5: "rain, then fog", 9: ""}
    assert parse_event_schedule("", 10) == {}
    for spec, message in [("night falls", "FRAME:TEXT"), ("400:night", "beyond"), ("1:a,1:b", "twice")]:
        with pytest.raises(ValueError, match=message):
            parse_event_schedule(spec, 300)


def test_random_actions_are_seeded_sticky_and_in_range():
    actions = random_actions(500, 5, seed=0)
    assert np.array_equal(actions, random_actions(500, 5, seed=0))
    assert actions.min() >= 0 and actions.max() <= 4 and len(actions) == 500
    assert (actions[1:] == actions[:-1]).mean() > 0.5  # held, not redrawn every frame


def test_load_actions(tmp_path):
    np.save(tmp_path / "a.npy", np.array([1, 2, 3, 4]))
    (tmp_path / "a.json").write_text("[0, 1, 2]")
    (tmp_path / "a.txt").write_text("4 3,2\n1")
    assert load_actions(tmp_path / "a.npy", 3, 5).tolist() == [1, 2, 3]
    assert load_actions(tmp_path / "a.json", 3, 5).tolist() == [0, 1, 2]
    assert load_actions(tmp_path / "a.txt", 4, 5).tolist() == [4, 3, 2, 1]
    (tmp_path / "bad.txt").write_text("1 two 3")
    for path, count, message in [("a.json", 5, "needs 5"), ("bad.txt", 2, "integers"), ("nope.npy", 1, "no such file"),
                                 ("a.npy", 3, "0..2")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            load_actions(tmp_path / path, count, 3 if path == "a.npy" else 5)


# ----------------------------------------------------------------------------------------------
# the rollout and the command


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_world(seed=0).save_pretrained(tmp_path_factory.mktemp("rollout") / "world")


def test_run_rollout_follows_the_schedule(checkpoint):
    from worldsim.world import WorldModel

    world = WorldModel.from_pretrained(checkpoint)
    rollout = run_rollout(world, np.array([1, 2, 3, 4]), {0: "a sunny meadow", 2: "night falls"}, seed=1)
    assert rollout.frames.shape == (5, 64, 64, 3) and rollout.frames.dtype == np.uint8
    assert rollout.events == ["a sunny meadow", "a sunny meadow", "night falls", "night falls", "night falls"]
    assert rollout.rewards.shape == rollout.terminated.shape == (4,)
    again = run_rollout(world, np.array([1, 2, 3, 4]), {0: "a sunny meadow", 2: "night falls"}, seed=1)
    assert np.array_equal(rollout.frames, again.frames)


def test_rollout_command_writes_a_gif_and_a_folder(checkpoint, tmp_path):
    gif = tmp_path / "run.gif"
    args = ["rollout", "--checkpoint", str(checkpoint), "--frames", "6", "--events", "0:a sunny meadow,3:night falls"]
    assert cli.main([*args, "--out", str(gif), "--scale", "2"]) == 0
    frames, _, _ = read_gif(gif.read_bytes())
    assert len(frames) == 6 and frames[0].shape == (128, 128, 3)
    folder = tmp_path / "run"
    assert cli.main([*args, "--out", str(folder), "--actions", "random", "--seed", "3", "--sampler", "rolling"]) == 0
    record = json.loads((folder / "rollout.json").read_text())
    assert len(record["actions"]) == 5 and record["events"][3] == "night falls"
    assert len(list(folder.glob("frame_*.png"))) == 6


@pytest.mark.parametrize("extra, message", [
    (["--out", "{tmp}/missing/x.gif"], "does not exist"),
    (["--out", "{tmp}/file/x.gif"], "a file"),
    (["--out", "{tmp}/file/frames"], "a file"),
    (["--out", "{tmp}/x.gif", "--device", "cuda"], "--device cuda"),
    (["--out", "{tmp}/x.gif", "--device", "toaster"], "not a torch device"),
    (["--out", "{tmp}/x.gif", "--threads", "0"], "--threads"),
])
def test_rollout_fails_before_loading_the_world(extra, message, tmp_path, capsys, monkeypatch):
    import torch

    from worldsim.world import WorldModel

    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(WorldModel, "from_pretrained", lambda *a, **k: pytest.fail("the world was loaded"))
    argv = ["rollout", "--frames", "3", *[arg.format(tmp=tmp_path) for arg in extra]]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_rollout_command_reports_bad_input(checkpoint, tmp_path, capsys):
    base = ["rollout", "--checkpoint", str(checkpoint), "--frames", "4", "--out", str(tmp_path / "x.gif")]
    assert cli.main([*base, "--events", "9:night falls"]) == 2
    assert "beyond the last frame" in capsys.readouterr().err
    assert cli.main([*base, "--events", "1:" + "snow " * 60]) == 2
    assert "too long" in capsys.readouterr().err
    assert cli.main([*base, "--actions", str(tmp_path / "missing.txt")]) == 2
    assert cli.main(["rollout", "--checkpoint", str(tmp_path / "nowhere"), "--out", "x.gif"]) == 2
    assert "tried" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()
