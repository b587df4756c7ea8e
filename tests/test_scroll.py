"""The view's scroll read from latent frames, and predecessors lined up by it."""
from __future__ import annotations

import torch

from worldsim.model import scroll

from test_losses import scrolling_clip  # latents of a view moving over a random map


def test_translate_moves_each_frame_by_its_own_shift_as_shifted_cells_does():
    frames = torch.randn(3, 2, 5, 5)
    for dx, dy in scroll.scroll_shifts(1) + [(2, -3), (-5, 0)]:
        expected = scroll.shifted_cells(frames, dx, dy)[0]
        moved = scroll.translate(frames, torch.full((3,), dx), torch.full((3,), dy))
        assert torch.equal(moved, expected), (dx, dy)
    mixed = scroll.translate(frames, torch.tensor([1, 0, -1]), torch.tensor([0, 0, 1]))
    assert torch.equal(mixed[1], frames[1]) and torch.equal(mixed[0], scroll.shifted_cells(frames[:1], 1, 0)[0][0])


def test_both_scroll_readers_find_the_move_despite_a_stepping_sprite():
    view = scrolling_clip([(1, 0), (0, -1)])[0]
    view[2, :, 3, 1] += 5.0  # a sprite steps in
    for frame, expected in ((1, (1, 0)), (2, (0, -1))):
        shifts, _, _, best = scroll.best_scroll(view[frame:frame + 1], view[frame - 1:frame], 1)
        assert shifts[int(best)] == expected
        assert scroll.interior_scrolls(view[frame:frame + 1], view[frame - 1:frame]).tolist() == [list(expected)]


def test_aligned_predecessors_show_each_map_cell_where_the_newest_shows_it():
    view = scrolling_clip([(1, 0), (1, 0), (0, 1), (0, 0)])[0]  # right, right, down, still
    previous = view.flip(0)[None, None]  # [1, 1, K=5, C, h, w], most recent first
    aligned = scroll.align_predecessors(previous)
    assert aligned.shape == previous.shape and torch.equal(aligned[0, 0, 0], previous[0, 0, 0])
    newest = previous[0, 0, 0]
    # The oldest frame is 2 cells left and 1 up of the newest: its cells land on theirs.
    oldest = aligned[0, 0, 4]
    assert torch.equal(oldest[:, :-1, :-2], newest[:, :-1, :-2])
    assert (oldest[:, -1] == 0).all() and (oldest[:, :, -2:] == 0).all()  # never seen then: zero
    for k in range(1, 5):  # every older frame agrees with the newest wherever it saw the cell
        seen = aligned[0, 0, k].abs().sum(dim=0) > 0
        assert torch.equal(aligned[0, 0, k][:, seen], newest[:, seen])


def test_unknown_and_still_predecessors_stay_where_they_are():
    view = scrolling_clip([(0, 0), (0, 0)])[0]
    previous = torch.cat((view.flip(0), torch.zeros(2, *view.shape[1:])))[None, None]  # 2 unknown, oldest
    assert torch.equal(scroll.align_predecessors(previous), previous)
    single = previous[:, :, :1]
    assert scroll.align_predecessors(single) is single


def test_windows_over_one_sequence_line_up_as_each_window_alone():
    view = scrolling_clip([(1, 0), (0, 1), (0, 0), (-1, 0), (1, 1)])  # [1, 6, C, h, w]
    index = torch.tensor([[2, 1, 0], [3, 2, 1], [4, 3, 2], [5, 4, 3]])  # sliding windows, newest first
    lined_up = scroll.align_windows(view, index)
    assert torch.equal(lined_up, scroll.align_predecessors(view[:, index]))
