"""Explorer dataset generation: content, determinism across workers, resume after interruption."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worldsim.cli import main as worldsim_main
from worldsim.data import Dataset, DatasetError
from worldsim.data.format import MANIFEST_NAME
from worldsim.data.generate import generate
from worldsim.data.policy import PolicyConfig
from worldsim.envs.explorer.dataset import (
    GenerateConfig,
    explorer_event_table,
    new_episode_seeds,
    shard_rngs,
)

explorer = pytest.importorskip("worldsim.envs.explorer")

# 5 shards (the last one partial) of 4 short trajectories each, small frames.
SMALL = GenerateConfig(frames=440, seed=7, size=16, shard_frames=96, envs_per_shard=4,
                       policy=PolicyConfig(event_every=(10, 30), episode_frames=(15, 40)))


def checksums(path: Path) -> dict[int, str]:
    return {shard.index: shard.sha256 for shard in Dataset(path).shards}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted single-process run of SMALL."""
    out = tmp_path_factory.mktemp("gen") / "reference"
    generate(out, SMALL, workers=1, progress=False)
    return out


def test_generated_dataset_has_the_declared_layout(reference):
    dataset = Dataset(reference, verify=True)
    assert dataset.complete and len(dataset) == 440 and dataset.num_shards == 5
    assert dataset.world == "explorer" and dataset.frame_shape == (16, 16, 3)
    assert dataset.num_actions == explorer.NUM_ACTIONS
    assert [s.frames for s in dataset.shards] == [96, 96, 96, 96, 56]
    assert dataset.manifest["generator"]["seed"] == 7


def test_event_texts_are_training_paraphrases_only(reference):
    dataset = Dataset(reference)
    texts = set(dataset.event_texts)
    assert texts == set(explorer.events.training_texts())
    assert not texts & set(explorer.events.eval_texts())
    used = np.unique(np.concatenate([s.events for s in dataset.iter_shards()]))
    assert used[0] == -1 and len(used) > 5  # several distinct paraphrases were sampled


def test_episodes_are_unique_and_events_persist_between_switches(reference):
    dataset = Dataset(reference)
    episode_sets = [set(np.unique(shard.episode)) for shard in dataset.iter_shards()]
    all_ids = set().union(*episode_sets)
    assert len(all_ids) == sum(len(ids) for ids in episode_sets)  # no id shared across shards
    for shard in dataset.iter_shards():
        starts = np.flatnonzero(np.diff(shard.episode)) + 1
        # events change only at switches, at least event_every[0] = 10 frames apart
        for events in np.split(shard.events, starts):
            changes = np.flatnonzero(np.diff(events)) + 1
            assert (np.diff(changes) >= 10).all()
            assert changes.size == 0 or events[0] != -1 or changes[0] >= 10


def test_frames_actions_events_and_labels_align_with_a_replay(reference):
    """Replay shard 0's first trajectory in a fresh Explorer from its stored actions and events:
    frame i is rendered before actions[i]; rewards[i] and terminated[i] are what actions[i] gave;
    the labels say whether actions[i] moved the player or bumped into a wall, and what frame i
    shows."""
    shard = Dataset(reference).load_shard(0)
    table = explorer_event_table()
    seeds = new_episode_seeds(shard_rngs(SMALL, 0)[1], SMALL.envs_per_shard)
    sim = explorer.ExplorerBatch(SMALL.envs_per_shard, explorer.ExplorerConfig(size=SMALL.size))
    sim.reset(seeds)
    episode = np.flatnonzero(shard.episode == shard.episode[0])
    assert len(episode) >= 15
    previous_event = -1
    for i in episode:
        if shard.events[i] != previous_event:
            event_type = next(t for t, ids in zip(table.types, table.texts_by_type)
                              if shard.events[i] in ids)
            sim.apply_events([event_type] + [None] * (SMALL.envs_per_shard - 1))
            previous_event = shard.events[i]
        np.testing.assert_array_equal(sim.render()[0], shard.frames[i], err_msg=f"frame {i}")
        before = sim.state(0)
        shown = {name: int((before["tile_classes"] == explorer.TILE_CLASSES.index(name)).sum())
                 for name in ("enemy", "coin")}
        rewards, terminated = sim.step(np.array([shard.actions[i]] + [0] * (SMALL.envs_per_shard - 1)))
        assert (rewards[0], terminated[0]) == (shard.rewards[i], shard.terminated[i])
        moved = sim.state(0)["position"] != before["position"]
        assert shard.extras["moved"][i] == moved
        assert shard.extras["blocked"][i] == (shard.actions[i] != 0 and not moved)
        assert shard.extras["enemies_visible"][i] == shown["enemy"]
        assert shard.extras["coins_visible"][i] == shown["coin"]
    assert shard.extras["moved"].any() and shard.extras["blocked"].any()


def test_two_workers_give_identical_shards(reference, tmp_path):
    generate(tmp_path / "parallel", SMALL, workers=2, progress=False)
    assert checksums(tmp_path / "parallel") == checksums(reference)


class Interrupt(Exception):
    pass


def test_interrupted_generation_resumes_to_the_same_content(reference, tmp_path):
    out = tmp_path / "resumed"
    committed = []

    def stop_after_two(record):
        committed.append(record.index)
        if len(committed) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        generate(out, SMALL, progress=False, on_shard=stop_after_two)
    partial = Dataset(out, verify=True)
    assert not partial.complete and partial.num_shards == 2
    (out / ".shard-00004.npz.tmp-1-deadbeef").write_bytes(b"half a shard")  # a killed writer's leftover
    generate(out, SMALL, progress=False)
    assert checksums(out) == checksums(reference)
    assert Dataset(out, verify=True).complete
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def copy_dataset(source: Path, out: Path) -> Path:
    out.mkdir()
    for path in source.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    return out


def test_resume_regenerates_missing_or_damaged_shards(reference, tmp_path):
    out = copy_dataset(reference, tmp_path / "copy")
    (out / "shard-00001.npz").unlink()
    damaged = bytearray((out / "shard-00003.npz").read_bytes())
    damaged[100] ^= 1
    (out / "shard-00003.npz").write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="2 missing or damaged shard"):
        generate(out, SMALL, progress=False)
    assert checksums(out) == checksums(reference)
    Dataset(out, verify=True)


def test_resume_with_other_settings_is_refused(reference, tmp_path):
    out = copy_dataset(reference, tmp_path / "copy")
    other_seed = GenerateConfig(**{**SMALL.__dict__, "seed": 8})
    with pytest.raises(DatasetError, match="generated with seed=7, not 8"):
        generate(out, other_seed, progress=False)
    assert checksums(out) == checksums(reference)


def test_bad_settings_fail_before_anything_is_written(tmp_path, capsys):
    assert worldsim_main(["data", "generate", "--frames", "10", "--size", "30",
                          "--out", str(tmp_path / "bad"), "--workers", "2"]) == 2
    assert "multiple of 4" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty and holds no dataset"):
        generate(tmp_path / "busy", SMALL, progress=False)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--size", "100000"], r"size must be in \[1, 512\], got 100000"),
        (["--size", "512", "--frames", "100000"], r"would hold 6.0 GiB \(limit 2 GiB\)"),
        (["--frames", str(10**12)], "frames must be in"),
        (["--shard-frames", str(10**12)], "shard_frames must be in"),
        (["--envs-per-shard", "100000"], "envs_per_shard must be in"),
        (["--workers", "1000"], r"workers must be an int in \[1, 64\]"),
    ],
)
def test_oversized_settings_fail_before_anything_is_written(tmp_path, capsys, options, message):
    """`--size 100000` used to die in numpy ("Unable to allocate 31.4 TiB") after making the
    folder, and the half-made folder then refused every rerun."""
    out = tmp_path / "big"
    assert worldsim_main(["data", "generate", "--frames", "100", "--out", str(out), *options]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_oversized_settings_name_the_limit(tmp_path):
    with pytest.raises(ValueError, match=r"size must be in \[1, 512\]"):
        GenerateConfig(frames=10, size=100000)
    with pytest.raises(ValueError, match="frames must be an int"):
        GenerateConfig(frames=1.5)
    with pytest.raises(ValueError, match="workers must be an int"):
        generate(tmp_path / "x", SMALL, workers=True, progress=False)
    assert not (tmp_path / "x").exists()


def test_out_below_a_file_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    below, itself = (tmp_path / "notes.txt" / "ds", "lies below"), (tmp_path / "notes.txt", "is a file")
    for out, message in (below, itself):
        assert worldsim_main(["data", "generate", "--frames", "10", "--size", "16", "--quiet",
                              "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and "not a folder" in err and "Traceback" not in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_run_that_made_no_shard_can_be_rerun_with_other_settings(tmp_path, monkeypatch):
    out = tmp_path / "half"

    def crash(*args, **kwargs):
        raise MemoryError("the first shard did not fit")

    monkeypatch.setattr(GenerateConfig, "rollout_shard", crash)
    with pytest.raises(MemoryError):
        generate(out, SMALL, progress=False)
    assert (out / MANIFEST_NAME).exists() and not Dataset(out).num_shards
    monkeypatch.undo()
    other = GenerateConfig(**{**SMALL.__dict__, "seed": 8, "frames": 100})
    assert len(generate(out, other, progress=False)) == 100
    assert Dataset(out).manifest["generator"]["seed"] == 8


def test_killed_cli_run_resumes(tmp_path):
    """SIGKILL a real two-worker `generate` mid-run, then run it again (the worker count may
    differ: content does not depend on it)."""
    def command(out: Path, workers: int) -> list[str]:
        return ["generate", "--world", "explorer", "--frames", "2000", "--seed", "3",
                "--size", "16", "--shard-frames", "96", "--envs-per-shard", "4", "--quiet",
                "--workers", str(workers), "--out", str(out)]

    out = tmp_path / "killed"
    # `python -m worldsim.data` is `worldsim data` without the torch-importing commands: fast start
    process = subprocess.Popen([sys.executable, "-m", "worldsim.data", *command(out, 2)],
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        manifest = out / MANIFEST_NAME
        if manifest.exists() and json.loads(manifest.read_text())["shards"]:
            break
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.3)  # orphaned workers would keep writing shards; they must exit with the parent
    files_after_kill = sorted(p.name for p in out.iterdir())
    time.sleep(0.3)
    assert sorted(p.name for p in out.iterdir()) == files_after_kill
    killed = Dataset(out, verify=True)
    assert not killed.complete and 0 < len(killed) < 2000
    assert worldsim_main(["data", *command(out, 1)]) == 0
    assert worldsim_main(["data", *command(tmp_path / "uninterrupted", 1)]) == 0
    assert checksums(out) == checksums(tmp_path / "uninterrupted")
    assert Dataset(out, verify=True).complete


def test_cli_info_summarises_and_verifies(reference, capsys):
    assert worldsim_main(["data", "info", str(reference), "--verify"]) == 0
    text = capsys.readouterr().out
    assert "440 in" in text and "5 shards" in text and "all verified" in text
    assert worldsim_main(["data", "info", str(reference), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 440 and sum(summary["action_counts"]) == 440
    assert summary["no_event_frames"] + sum(summary["event_frames"].values()) == 440


def test_keep_blocked_sets_how_long_the_policy_pushes_into_walls(tmp_path, capsys):
    blocked = {}
    for keep in (0.0, 0.95):
        out = tmp_path / str(keep)
        assert worldsim_main(["data", "generate", "--frames", "2048", "--size", "16", "--shard-frames", "1024",
                              "--quiet", "--keep-blocked", str(keep), "--out", str(out)]) == 0
        assert Dataset(out).manifest["generator"]["policy"]["keep_blocked_prob"] == keep
        capsys.readouterr()
        assert worldsim_main(["data", "info", str(out), "--json"]) == 0
        blocked[keep] = json.loads(capsys.readouterr().out)["shares"]["blocked"]
    assert blocked[0.0] < 0.02 < 0.1 < blocked[0.95]  # redrawn at once vs pushed for the whole hold
    assert worldsim_main(["data", "generate", "--frames", "10", "--keep-blocked", "1.5",
                          "--out", str(tmp_path / "bad")]) == 2
    assert "keep_blocked_prob" in capsys.readouterr().err and not (tmp_path / "bad").exists()
