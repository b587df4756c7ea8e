"""KVCache bookkeeping on its own: slot order, positions, eviction, row resets."""
from __future__ import annotations

import pytest
import torch

from worldsim.model import KVCache
from worldsim.model.kv_cache import (
    attention_groups,
    chunk_layout,
    evicted_by_commit,
    frame_slot,
    fused_commit_is_exact,
)


def _cache(batch=2, sink=1, window=3) -> KVCache:
    return KVCache(num_layers=1, batch_size=batch, num_heads=1, head_dim=2, tokens_per_frame=1,
                   sink_frames=sink, window_frames=window)


def _append_frame_ids(cache: KVCache, frame_ids: torch.Tensor) -> None:
    """Append one frame per row whose key holds its id, so slots can be read back."""
    keys = frame_ids.double().reshape(-1, 1, 1, 1).expand(-1, 1, 1, 2).float()
    cache.append([keys], [keys])


def _held_frames_by_position(cache: KVCache, row: int) -> list[int]:
    positions, valid = cache.slot_layout()
    ids = cache.keys[0][row, 0, :, 0, 0]
    order = positions[row][valid[row]].argsort()
    return ids[valid[row]][order].long().tolist()


def test_positions_follow_sink_then_window_order_through_eviction():
    cache = _cache(batch=1, sink=1, window=3)
    for frame in range(8):
        _append_frame_ids(cache, torch.tensor([frame]))
        held = _held_frames_by_position(cache, 0)
        expected = [0] + list(range(max(1, frame - 2), frame + 1))
        assert held == expected
        positions, valid = cache.slot_layout()
        assert sorted(positions[0][valid[0]].tolist()) == list(range(len(expected)))
    assert cache.num_frames.tolist() == [8] and cache.num_cached.tolist() == [4]


def test_reset_rows_independently():
    cache = _cache(batch=2, sink=1, window=2)
    for frame in range(4):
        _append_frame_ids(cache, torch.tensor([frame, 10 + frame]))
    cache.reset(torch.tensor([False, True]))
    _append_frame_ids(cache, torch.tensor([4, 20]))
    assert _held_frames_by_position(cache, 0) == [0, 3, 4]
    assert _held_frames_by_position(cache, 1) == [20]
    assert cache.num_frames.tolist() == [5, 1]
    cache.reset()
    assert cache.num_frames.tolist() == [0, 0]
    assert not cache.slot_layout()[1].any()


def test_append_detaches_and_memory_is_preallocated():
    cache = _cache()
    nbytes = cache.nbytes()
    keys = torch.ones(2, 1, 1, 2, requires_grad=True)
    cache.append([keys * 2], [keys * 3])
    assert not cache.keys[0].requires_grad and not cache.values[0].requires_grad
    assert cache.nbytes() == nbytes


def test_bad_arguments():
    with pytest.raises(ValueError, match="window_frames"):
        _cache(window=0)
    cache = _cache()
    with pytest.raises(ValueError, match="rows"):
        cache.reset(torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="layers"):
        cache.append([], [])


def test_assign_rows_copies_contents_and_frame_counts():
    target, scratch = _cache(batch=3), _cache(batch=1)
    for frame in range(5):
        _append_frame_ids(target, torch.tensor([frame, 10 + frame, 20 + frame]))
    for frame in range(2):
        _append_frame_ids(scratch, torch.tensor([30 + frame]))
    target.assign_rows(torch.tensor([1]), scratch)
    assert target.num_frames.tolist() == [5, 2, 5]
    assert _held_frames_by_position(target, 1) == [30, 31]
    assert _held_frames_by_position(target, 2) == [20, 22, 23, 24]
    with pytest.raises(ValueError, match="layout"):
        target.assign_rows(torch.tensor([0]), _cache(batch=1, window=4))
    with pytest.raises(ValueError, match="rows"):
        target.assign_rows(torch.tensor([0, 1]), scratch)


def test_frame_slot_fills_the_sink_then_cycles_the_ring():
    slots = frame_slot(torch.arange(9), sink_frames=2, window_frames=3)
    assert slots.tolist() == [0, 1, 2, 3, 4, 2, 3, 4, 2]


def test_chunk_layout_of_a_fused_commit_that_evicts():
    """Sink 1, window 3, frames 0..4 held (0 | 2 3 4): a pass over [clean 5 ; noisy 6] that
    commits frame 5. Keys: sink copy, slots (0, 4, 2, 3 by ring order), chunk (5, 6)."""
    positions, visible = chunk_layout(torch.tensor([5]), 1, 3, frames=2, commit=1)
    # Slot 1 holds frame 4 (the ring wrapped once), slots 2, 3 hold frames 2, 3.
    assert positions[0].tolist() == [1, 0, 3, 1, 2, 4, 5]
    # Clean frame 5 sees the cache as it is; noisy frame 6 the cache after the commit: frame 2
    # evicted and the sink one position later, so every distance matches a separate pass
    # (noisy 6 at position 4 there, sink at 0, frames 3 4 5 at 1 2 3).
    assert visible[0].int().tolist() == [[0, 1, 1, 1, 1, 1, 0],
                                         [1, 0, 1, 0, 1, 1, 1]]


def test_chunk_layout_without_a_split_commit_is_the_cache_then_causal_chunk():
    for commit in (0, 2):
        positions, visible = chunk_layout(torch.tensor([2]), 1, 3, frames=2, commit=commit)
        assert positions[0].tolist() == [0, 1, 0, 0, 2, 3]
        assert visible[0].int().tolist() == [[1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 1]]


@pytest.mark.parametrize("sink, window, frames, commit", [(1, 3, 2, 1), (2, 2, 3, 1), (0, 3, 2, 1),
                                                         (1, 3, 4, 2), (1, 2, 4, 3), (1, 3, 3, 0)])
def test_attention_groups_hold_everything_visible(sink, window, frames, commit):
    for held in range(3 * (sink + window)):
        num_frames = torch.tensor([held])
        if not fused_commit_is_exact(num_frames, sink, window, commit):
            continue
        _, visible = chunk_layout(num_frames, sink, window, frames, commit)
        outside = visible.clone()
        for queries, keys in attention_groups(sink, window, frames, commit):
            outside[:, queries, keys] = False
        assert not outside.any(), held


def test_evicted_by_commit_and_when_a_fused_commit_is_exact():
    counts = torch.tensor([0, 1, 3, 4, 9])
    assert evicted_by_commit(counts, 1, 3, 1).tolist() == [0, 0, 0, 1, 1]
    assert evicted_by_commit(counts, 1, 3, 2).tolist() == [0, 0, 1, 2, 2]
    assert fused_commit_is_exact(torch.tensor([1]), 2, 1, 2)  # fills the sink, no eviction
    assert not fused_commit_is_exact(torch.tensor([1]), 2, 1, 3)  # fills the sink and evicts
    assert fused_commit_is_exact(torch.tensor([2]), 2, 1, 3)  # sink already full

def test_the_last_event_follows_appends_resets_and_assigned_rows():
    def events_cache(batch: int) -> KVCache:
        return KVCache(num_layers=1, batch_size=batch, num_heads=1, head_dim=2, tokens_per_frame=1, event_dim=2)

    keys = [torch.zeros(2, 1, 2, 2)]  # two frames per row
    cache = events_cache(2)
    with pytest.raises(ValueError, match="last event"):
        cache.append(keys, keys)
    cache.append(keys, keys, events=torch.tensor([[[1.0, 0], [2, 0]], [[3, 0], [4, 0]]]))
    assert cache.last_event.tolist() == [[2, 0], [4, 0]]  # the newest frame's
    cache.reset(torch.tensor([True, False]))
    assert cache.last_event.tolist() == [[0, 0], [4, 0]]
    scratch = events_cache(1)
    scratch.append([torch.zeros(1, 1, 1, 2)], [torch.zeros(1, 1, 1, 2)], events=torch.tensor([[[5.0, 6]]]))
    cache.assign_rows(torch.tensor([0]), scratch)
    assert cache.last_event.tolist() == [[5, 6], [4, 0]]
    with pytest.raises(ValueError, match="layout"):
        cache.assign_rows(torch.tensor([0]), _cache(batch=1))
