"""`python play.py` end to end (headless, real Explorer) and its error messages."""
from __future__ import annotations

import numpy as np
import pytest

from gif_reader import read_gif
from worldsim.data import Dataset
from worldsim.play.cli import build_parser, play


def run(argv: list[str]) -> int:
    return play(build_parser().parse_args(argv))


def test_headless_run_writes_video_and_dataset(tmp_path, capsys):
    argv = ["--world", "real", "--headless", "--frames", "12", "--scale", "1", "--actions", "random",
            "--events", "0:a sunny meadow,6:night falls", "--record", str(tmp_path / "rec"),
            "--video", str(tmp_path / "play.gif")]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "wrote 12 frames" in out and "recorded" in out
    frames, _, _ = read_gif((tmp_path / "play.gif").read_bytes())
    assert len(frames) == 12 and frames[0].shape[1] >= 64
    assert not np.array_equal(frames[3], frames[9])  # night fell in between
    dataset = Dataset(tmp_path / "rec", verify=True)
    assert dataset.complete and 8 <= len(dataset) <= 11 and dataset.frame_shape == (64, 64, 3)


def test_actions_file_drives_the_player(tmp_path):
    (tmp_path / "moves.txt").write_text("4 4\n1, 0, 2\n")
    argv = ["--world", "real", "--headless", "--frames", "5", "--actions", str(tmp_path / "moves.txt"),
            "--record", str(tmp_path / "rec")]
    assert run(argv) == 0
    actions = Dataset(tmp_path / "rec").load_shard(0).actions
    np.testing.assert_array_equal(actions, [4, 4, 1, 0])  # 5 frames: an action after each but the last


@pytest.mark.parametrize("argv, message", [
    (["--headless"], "--headless needs --frames"),
    (["--world", "real", "--compare"], "--compare shows the neural world"),
    (["--world", "real", "--headless", "--frames", "3", "--video", "out.avi"], "supported formats are .gif, .mp4"),
    (["--world", "real", "--headless", "--frames", "3", "--events", "night falls"], "FRAME:TEXT"),
    (["--world", "real", "--headless", "--frames", "3", "--events", "0:day breaks,5:night falls"],
     "beyond the last frame"),
    (["--world", "real", "--headless", "--frames", "3", "--events", "2:"], "is empty"),
    (["--world", "real", "--headless", "--frames", "3", "--events", "0:day breaks,2:purple rain"],
     "unknown Explorer event 'purple rain'"),
    (["--world", "real", "--headless", "--frames", "3", "--actions", "missing.npy"], "no such file"),
    (["--world", "real", "--actions", "random"], "--actions needs --frames"),
    (["--world", "real", "--headless", "--frames", "0"], "--frames must be positive"),
    (["--world", "real", "--headless", "--frames", "2", "--screenshot", "no/such/dir/shot.png"],
     "its folder does not exist"),
    (["--checkpoint", "x", "--device", "gpu", "--headless", "--frames", "2"], "is not a torch device"),
])
def test_bad_arguments_give_one_clear_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_short_actions_file_and_existing_dataset_are_refused(tmp_path, capsys):
    np.save(tmp_path / "moves.npy", np.array([1, 2, 3]))
    assert run(["--world", "real", "--headless", "--frames", "5", "--actions", str(tmp_path / "moves.npy")]) == 2
    assert "3 actions, the rollout needs 4" in capsys.readouterr().err
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.txt").write_text("mine")
    assert run(["--world", "real", "--headless", "--frames", "2", "--record", str(tmp_path / "rec")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "rec" / "notes.txt").read_text() == "mine"


def test_no_display_suggests_headless(monkeypatch, capsys):
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")
    assert run(["--world", "real", "--frames", "2"]) == 2
    assert "--headless" in capsys.readouterr().err


def test_quitting_before_the_first_frame_leaves_no_video(tmp_path, monkeypatch, capsys):
    import pygame

    from worldsim.play.app import PlayApp

    original_tick = PlayApp.tick

    def quit_first(app, action=None):
        pygame.event.post(pygame.event.Event(pygame.QUIT))
        return original_tick(app, action)

    monkeypatch.setattr(PlayApp, "tick", quit_first)
    argv = ["--world", "real", "--headless", "--frames", "5", "--video", str(tmp_path / "play.gif"),
            "--screenshot", str(tmp_path / "end.png")]
    assert run(argv) == 0
    assert "played 0 frames" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["end.png"]
