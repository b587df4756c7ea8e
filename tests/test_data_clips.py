"""Clip sampling: aligned arrays, never across an episode, deterministic, bounded memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from worldsim.data import Dataset, DatasetError, DatasetWriter, clip_starts

FRAME_SHAPE = (2, 2, 3)


def write_indexed(path: Path, episode_lengths: list[int], shard_frames: int) -> None:
    """Frame k (counting over the whole dataset) has every pixel = k % 256, action = k % 3,
    event = k % 2, reward = k; episodes have the given lengths and the last frame of each
    terminates."""
    step = 0
    with DatasetWriter(path, "indexed", FRAME_SHAPE, num_actions=3, event_texts=["a", "b"],
                       shard_frames=shard_frames) as writer:
        for length in episode_lengths:
            for position in range(length):
                frame = np.full(FRAME_SHAPE, step % 256, dtype=np.uint8)
                writer.add(frame, step % 3, float(step), position == length - 1, step % 2)
                step += 1


def test_clip_starts_stay_inside_one_episode():
    episode = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(clip_starts(episode, 3), [0, 5, 6])
    np.testing.assert_array_equal(clip_starts(episode, 1), np.arange(9))
    assert clip_starts(episode, 5).size == 0
    assert clip_starts(episode[:2], 3).size == 0
    with pytest.raises(ValueError):
        clip_starts(episode, 0)


def test_clips_are_aligned_consecutive_and_within_an_episode(tmp_path):
    write_indexed(tmp_path / "ds", [30, 4, 50, 12, 40], shard_frames=32)
    dataset = Dataset(tmp_path / "ds")
    sampler = dataset.clips(num_frames=8, batch_size=16, seed=0)
    for _ in range(5):
        clip = next(sampler)
        assert clip.frames.shape == (16, 8, *FRAME_SHAPE) and clip.frames.dtype == np.uint8
        assert clip.actions.dtype == np.int64 and clip.events.dtype == np.int64
        assert clip.rewards.dtype == np.float32 and clip.terminated.dtype == np.bool_
        index = clip.rewards.astype(np.int64)  # the global frame index of every clip frame
        np.testing.assert_array_equal(np.diff(index, axis=1), 1)
        np.testing.assert_array_equal(clip.frames[..., 0, 0, 0], index % 256)
        np.testing.assert_array_equal(clip.actions, index % 3)
        np.testing.assert_array_equal(clip.events, index % 2)
        # a terminated frame may only be the last one of a clip
        assert not clip.terminated[:, :-1].any()


def test_clips_are_deterministic_given_the_seed(tmp_path):
    write_indexed(tmp_path / "ds", [40, 40, 40], shard_frames=32)
    dataset = Dataset(tmp_path / "ds")
    first = [next(dataset.clips(4, 8, seed=3)).rewards for _ in range(2)]
    np.testing.assert_array_equal(first[0], first[1])
    other = next(dataset.clips(4, 8, seed=4)).rewards
    assert not np.array_equal(first[0], other)


def test_skip_lands_where_drawing_would(tmp_path):
    write_indexed(tmp_path / "ds", [20] * 10, shard_frames=20)
    dataset = Dataset(tmp_path / "ds")
    drawn = dataset.clips(4, 2, seed=5, max_cached_frames=40)
    for _ in range(7):
        next(drawn)
    skipped = dataset.clips(4, 2, seed=5, max_cached_frames=40)
    skipped.skip(7)
    np.testing.assert_array_equal(next(skipped).rewards, next(drawn).rewards)


def test_small_cache_swaps_shards_and_reaches_all_of_them(tmp_path):
    write_indexed(tmp_path / "ds", [20] * 10, shard_frames=20)
    dataset = Dataset(tmp_path / "ds")
    sampler = dataset.clips(4, 2, seed=0, max_cached_frames=40)
    seen = set()
    for _ in range(200):
        clip = next(sampler)
        assert len(sampler._resident) <= 2  # noqa: SLF001 (the memory bound is the point)
        seen.update((clip.rewards[:, 0] // 20).astype(int).tolist())
    assert seen == set(range(10))


def test_no_long_enough_episode_is_a_clear_error(tmp_path):
    write_indexed(tmp_path / "ds", [5, 5, 5], shard_frames=8)
    with pytest.raises(DatasetError, match="no episode is 6 frames long"):
        Dataset(tmp_path / "ds").clips(6, 2)


def test_clip_weights_count_the_labelled_steps_of_each_clip():
    from worldsim.data.clips import clip_weights
    from worldsim.data.format import ShardArrays

    blocked = np.array([0, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    shard = ShardArrays(frames=np.zeros((8, 2, 2, 3), np.uint8), actions=np.zeros(8, np.int64),
                        events=np.zeros(8, np.int32), rewards=np.zeros(8, np.float32),
                        terminated=np.zeros(8, bool), episode=np.zeros(8, np.int64), extras={"blocked": blocked})
    starts = np.arange(6)
    # A 3-frame clip holds the 2 steps start, start+1; the last frame's step leaves the clip.
    np.testing.assert_array_equal(clip_weights(shard, starts, 3, {"blocked": 2.0}), [3, 3, 1, 3, 5, 3])
    np.testing.assert_array_equal(clip_weights(shard, starts, 3, {}), np.ones(6))
    # A label the shard does not carry weighs nothing.
    np.testing.assert_array_equal(clip_weights(shard, starts, 3, {"moved": 5.0}), np.ones(6))


def test_event_switch_is_a_label_of_every_shard():
    """A step whose next frame is under another event carries `event_switch`, stored or not."""
    from worldsim.data.clips import check_label_boost, clip_weights
    from worldsim.data.format import ShardArrays

    events = np.array([-1, -1, 3, 3, 3, 0, 0, 0], np.int32)  # switches at steps 1 and 4
    shard = ShardArrays(frames=np.zeros((8, 2, 2, 3), np.uint8), actions=np.zeros(8, np.int64), events=events,
                        rewards=np.zeros(8, np.float32), terminated=np.zeros(8, bool), episode=np.zeros(8, np.int64))
    np.testing.assert_array_equal(clip_weights(shard, np.arange(6), 3, {"event_switch": 1.0}), [2, 2, 1, 2, 2, 1])
    assert check_label_boost({"event_switch": 2}) == {"event_switch": 2.0}


class _LabelledDataset:
    """The part of Dataset a ClipSampler reads: one shard of 2000 frames, 2 % of steps blocked."""

    path = "labelled"
    frame_shape = (2, 2, 3)
    num_shards = 1

    def __init__(self):
        from worldsim.data.format import ShardArrays

        count = 2000
        blocked = np.zeros(count, dtype=bool)
        blocked[::50] = True
        self.shard = ShardArrays(frames=np.zeros((count, 2, 2, 3), np.uint8), actions=np.arange(count),
                                 events=np.zeros(count, np.int32), rewards=np.zeros(count, np.float32),
                                 terminated=np.zeros(count, bool), episode=np.zeros(count, np.int64),
                                 extras={"blocked": blocked})
        self.shards = [self.shard]

    def __len__(self):
        return len(self.shard)

    def load_shard(self, position):
        return self.shard


def _blocked_share(label_boost):
    from worldsim.data.clips import ClipSampler

    dataset = _LabelledDataset()
    sampler = ClipSampler(dataset, 4, 64, seed=0, label_boost=label_boost)
    clips = [next(sampler) for _ in range(20)]
    starts = np.concatenate([clip.actions[:, 0] for clip in clips])  # actions count the frames
    return np.mean([dataset.shard.extras["blocked"][s:s + 3].any() for s in starts])


def test_label_boost_draws_clips_with_labelled_steps_more_often():
    plain, boosted = _blocked_share(None), _blocked_share({"blocked": 10.0})
    assert 0.03 < plain < 0.10  # 3 of every 50 starts hold a blocked step
    assert boosted > 0.3  # weight 11 for those: 33 / (33 + 47) = 0.41 expected


def test_label_boost_rejects_unknown_labels_and_negative_boosts():
    from worldsim.data.clips import check_label_boost

    with pytest.raises(ValueError, match="unknown label 'walls'"):
        check_label_boost({"walls": 2.0})
    with pytest.raises(ValueError, match=">= 0"):
        check_label_boost({"blocked": -1.0})
    assert check_label_boost({"blocked": 3}) == {"blocked": 3.0}


def test_take_and_concatenate_keep_every_array_of_a_clip_aligned(tmp_path):
    from worldsim.data.clips import concatenate_clips

    write_indexed(tmp_path / "d", [10, 10], shard_frames=8)
    clip = next(Dataset(tmp_path / "d").clips(num_frames=3, batch_size=4, seed=0))
    joined = concatenate_clips([clip.take(np.array([2, 0])), clip.take(np.array([1]))])
    assert joined.actions.shape == (3, 3) and joined.frames.shape == (3, 3, *FRAME_SHAPE)
    for row, source in enumerate([2, 0, 1]):
        for name in ("frames", "actions", "events", "rewards", "terminated"):
            np.testing.assert_array_equal(getattr(joined, name)[row], getattr(clip, name)[source])
