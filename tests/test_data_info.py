"""`worldsim data info`: the shares that tell whether a dataset teaches every condition, and the
default Explorer policy reaching them."""
from __future__ import annotations

import numpy as np
import pytest

from worldsim.cli import main as worldsim_main
from worldsim.data import Dataset, DatasetWriter
from worldsim.data.generate import generate
from worldsim.data.info import clip_starts, clips_holding, event_switches, summarize
from worldsim.envs.explorer.dataset import GenerateConfig

explorer = pytest.importorskip("worldsim.envs.explorer")


def test_switches_and_clips_stay_inside_episodes():
    events = np.array([-1, -1, 3, 3, 3, 5, 5, 5, 2, 2])
    episode = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    switched = event_switches(events, episode)
    np.testing.assert_array_equal(np.flatnonzero(switched), [2, 5])  # 8 starts a new episode
    starts = clip_starts(episode, 3)
    np.testing.assert_array_equal(starts, [0, 1, 2, 3, 4, 5])  # no clip crosses into episode 1
    # a clip holds a switch when one of its frames after the first shows a new event
    np.testing.assert_array_equal(clips_holding(switched, starts, 3),
                                  [True, True, False, True, True, False])
    assert clip_starts(episode[:2], 3).size == 0


def test_a_dataset_without_labels_reports_unknown_shares(tmp_path, capsys):
    frame = np.zeros((4, 4, 3), dtype=np.uint8)
    with DatasetWriter(tmp_path / "toy", "toy", (4, 4, 3), 3, ["a", "b"]) as writer:
        for step, event in enumerate([-1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]):
            writer.add(frame, step % 3, reward=1.0 if step == 4 else 0.0, event=event)
    summary = summarize(Dataset(tmp_path / "toy"))
    shares = summary["shares"]
    assert shares["moved"] is None and shares["blocked"] is None and shares["still"] is None
    assert shares["positive_rewards"] == pytest.approx(1 / 12)
    # switches at frames 1 and 3: the 8-frame clips starting at 0, 1, 2 hold one, at 3, 4 not
    assert shares["clips_with_switch"] == pytest.approx(3 / 5)
    assert summary["switches"] == {"events": {"a": 1, "b": 1}}
    assert summary["frames_per_switch"] == pytest.approx(11 / 2)
    assert worldsim_main(["data", "info", str(tmp_path / "toy")]) == 0
    assert "scrolling unknown, blocked (into a wall) unknown, still unknown" in capsys.readouterr().out


@pytest.fixture(scope="module")
def default_policy_summary(tmp_path_factory) -> dict:
    """A few thousand frames of the default `data generate` settings, summarised."""
    out = tmp_path_factory.mktemp("info") / "explorer"
    generate(out, GenerateConfig(frames=6144, seed=11, shard_frames=3072), progress=False)
    return summarize(Dataset(out))


def test_the_default_policy_teaches_every_condition(default_policy_summary):
    """Margins around what 200 000 frames gave (scrolling 85 %, blocked 7.8 %, still 7.1 %,
    20 % of 8-frame clips with a switch, a switch every 35 frames)."""
    summary = default_policy_summary
    shares = summary["shares"]
    assert shares["moved"] >= 0.6
    assert 0.04 <= shares["blocked"] <= 0.12
    assert 0.03 <= shares["still"] <= 0.12
    assert shares["moved"] + shares["blocked"] + shares["still"] == pytest.approx(1.0)
    assert 8 <= summary["frames_per_switch"] <= 60 and shares["clips_with_switch"] >= 0.12
    assert shares["positive_rewards"] >= 0.01  # coin pickups
    assert shares["enemy_in_view"] >= 0.2 and summary["terminations"] > 0
    assert summary["episodes"] > 2 * 8  # episodes end (deaths, cuts) and restart
    groups = summary["switches"]
    assert set(groups) == set(explorer.events.GROUPS)
    for group, counts in groups.items():  # every event of every group: both ways of each toggle
        assert set(counts) == {e.name for e in explorer.events.events_in_group(group)}
        assert min(counts.values()) > 0, group


def test_cli_info_prints_the_shares(default_policy_summary, capsys):
    assert worldsim_main(["data", "info", default_policy_summary["path"]]) == 0
    text = capsys.readouterr().out
    assert f"scrolling {default_policy_summary['shares']['moved']:.1%}" in text
    assert "of 8-frame clips hold one" in text and "night" in text and "enemies_vanish" in text
