"""The view's scroll between latent frames: which global shift moves one frame onto the next.

In a top-down world that follows its player, a move shifts the whole view by one tile, which is
one latent cell. These pure tensor functions find that shift from the frames themselves (the
shift under which the median cell changes least, so sprites and animated cells do not sway it)
and move frames by it. The training losses use them to tell carried map from new content; the
local path uses them to line its older predecessors up with the newest one, so that a cell's
recent past sits in the same cell whatever the view did.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional


def scroll_shifts(max_shift: int) -> list[tuple[int, int]]:
    """Every global shift (dx, dy) of up to `max_shift` cells: dy outer, dx inner, the order in which
    `best_scroll` indexes them and `unfold` lays out a (2·max_shift + 1)² neighbourhood."""
    return [(dx, dy) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]


def shifted_cells(frames: Tensor, dx: int, dy: int) -> tuple[Tensor, Tensor]:
    """Frames `[B, C, h, w]` moved so that cell (r, c) holds cell (r + dy, c + dx); and where that
    cell exists (bool `[h, w]`). Cells from outside the frame are zero."""
    height, width = frames.shape[-2:]
    moved = torch.zeros_like(frames)
    inside = torch.zeros(height, width, dtype=torch.bool, device=frames.device)
    rows, cols = slice(max(-dy, 0), height - max(dy, 0)), slice(max(-dx, 0), width - max(dx, 0))
    moved[..., rows, cols] = frames[..., max(dy, 0): height + min(dy, 0), max(dx, 0): width + min(dx, 0)]
    inside[rows, cols] = True
    return moved, inside


def scroll_distances(frame: Tensor, previous: Tensor, max_shift: int) -> tuple[list[tuple[int, int]], Tensor]:
    """Every global shift of up to `max_shift` cells, and per shift the channel-mean squared distance
    of each cell of `frame` `[B, C, h, w]` to `previous` moved by it (`[S, B, h, w]`, NaN where the
    cell comes from outside the frame)."""
    shifts = scroll_shifts(max_shift)
    distances = []
    for dx, dy in shifts:
        moved, inside = shifted_cells(previous, dx, dy)
        distances.append((frame - moved).pow(2).mean(dim=1).masked_fill(~inside, float("nan")))
    return shifts, torch.stack(distances)


def best_scroll(frame: Tensor, previous: Tensor,
                max_shift: int) -> tuple[list[tuple[int, int]], Tensor, Tensor, Tensor]:
    """The shifts, their per-cell distances `[S, B, h, w]` and medians `[S, B]`, and per row the
    shift of smallest median (long `[B]`), of `frame` against `previous` (`[B, C, h, w]`)."""
    shifts, distance = scroll_distances(frame, previous, max_shift)
    medians = distance.flatten(2).nanmedian(dim=2).values
    return shifts, distance, medians, medians.argmin(dim=0)


def translate(frames: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """Frames `[N, C, h, w]`, each moved by its own whole-cell shift (long `[N]` each) as
    `shifted_cells` moves them: cell (r, c) holds cell (r + dy, c + dx), zero from outside."""
    count, _, height, width = frames.shape
    rows = torch.arange(height, device=frames.device)[None] + dy[:, None]  # [N, h]
    cols = torch.arange(width, device=frames.device)[None] + dx[:, None]  # [N, w]
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    picked = frames[torch.arange(count, device=frames.device)[:, None, None], :,
                    rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None, :]]  # [N, h, w, C]
    return picked.permute(0, 3, 1, 2) * inside[:, None].to(frames.dtype)


def interior_scrolls(frames: Tensor, previous: Tensor, max_shift: int = 1) -> Tensor:
    """long `[N, 2]`: per row the shift (dx, dy) of up to `max_shift` cells that moves `previous`
    onto `frames` (`[N, C, h, w]`), by the smallest median cell distance over every other interior
    cell in each axis (interior: `max_shift` from the border, which every shift can compare; a
    quarter of them is plenty for one global shift); on a tie (two unknown zero frames, a still
    view) the smaller shift.

    The reading `best_scroll` makes over the whole frame, made on fewer cells and in one pass over
    all rows and shifts: the local path runs it on every forward, where a loop of small tensor
    operations per shift and pair would cost a large share of a frame at batch 1.
    """
    count, channels = frames.shape[:2]
    size = 2 * max_shift + 1
    # Every size×size neighbourhood of `previous` around every other interior cell: [N, C, S, cells],
    # entry s of cell (r, c) holding previous (r + dy, c + dx) for shift s = (dx, dy).
    windows = functional.unfold(previous, size, stride=2).view(count, channels, size * size, -1)
    inner = frames[..., max_shift: frames.shape[-2] - max_shift: 2, max_shift: frames.shape[-1] - max_shift: 2]
    distances = (windows - inner.flatten(2)[:, :, None]).pow(2).mean(dim=1)  # [N, S, cells]
    medians = distances.median(dim=2).values.T  # [S, N]
    table = torch.tensor(scroll_shifts(max_shift), device=frames.device)
    tie_break = 1e-6 * table.abs().sum(dim=1).to(medians.dtype)
    return table[(medians + tie_break[:, None]).argmin(dim=0)]


def align_windows(sequence: Tensor, index: Tensor, max_shift: int = 1) -> Tensor:
    """Windows ``sequence[:, index]`` (`sequence` `[B, L, C, h, w]` oldest first; `index` long
    `[F, K]`, each row positions of the sequence, most recent first) with every older frame of a
    window moved into the view of the window's first (newest) one: the scroll between each
    neighbouring pair of the sequence (`interior_scrolls`), summed between the two frames.

    Each neighbouring pair is read once, however many windows hold it: sliding windows over a
    clip share all but one pair with the window before, and the local path reads them on every
    pass. Why line them up at all: an enemy's next step depends on where it stood four to six
    frames ago; while the view scrolls, that place drifts by a cell a frame across the stacked
    frames, out of reach of a small convolution. Lined up, a map cell's recent past is in the cell.
    """
    windows = sequence[:, index]  # [B, F, K, C, h, w]
    if index.shape[1] < 2:
        return windows
    batch = sequence.shape[0]
    used = int(index.max()) + 1  # frames after the newest window frame are never read
    steps = interior_scrolls(sequence[:, 1:used].flatten(0, 1), sequence[:, :used - 1].flatten(0, 1),
                             max_shift).view(batch, used - 1, 2)
    # The scroll from sequence frame 0 to frame j; from frame a to frame b it is position[b] - position[a].
    position = torch.cat((steps.new_zeros(batch, 1, 2), steps.cumsum(dim=1)), dim=1)
    shift = position[:, index[:, :1]] - position[:, index[:, 1:]]  # [B, F, K-1, 2]
    older = windows[:, :, 1:]
    moved = translate(older.flatten(0, 2), shift[..., 0].flatten(), shift[..., 1].flatten())
    return torch.cat((windows[:, :, :1], moved.view_as(older)), dim=2)


def align_predecessors(previous: Tensor, max_shift: int = 1) -> Tensor:
    """Predecessors `[B, F, K, C, h, w]` (most recent first) with every older one moved into the
    newest one's view (`align_windows`, each frame's K predecessors taken as a sequence of their own)."""
    count = previous.shape[2]
    if count < 2:
        return previous
    own_sequences = previous.flatten(0, 1).flip(1)  # [B*F, K, ...], oldest first
    newest_first = torch.arange(count - 1, -1, -1, device=previous.device)[None]  # [1, K]
    return align_windows(own_sequences, newest_first, max_shift).view_as(previous)
