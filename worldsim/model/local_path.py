"""The full-resolution local path around the transformer: where moves and the recent past act.

In a top-down world one move shifts the view by one tile, which is one latent cell. Patch tokens
with the action only in a global modulation cannot learn that shift at all; a few convolutions
at latent-cell resolution, fed the previous clean latents and the action at every cell, learn it
in minutes. So the frame being denoised enters the network through a conv *stem* at full latent
resolution whose input is

    [noisy latent x_f ; previous latents x_{f-1..f-K} ; their noise levels ; one-hot a_{f-1}]

plus the previous latents convolved with a kernel chosen by the action (`ActionConv`) and,
optionally, a learned vector per cell (absolute position), the older previous latents optionally
lined up with the newest by the scroll read from them (`previous_frames(align=True)`), and a
history reader's guess of the next latent (`HistoryReader`, trained apart on its own loss), and the
velocity leaves through a conv *head* that adds the transformer's output back onto the
stem's features (a skip at full resolution). The transformer in between attends over patch tokens
and the kv cache: it carries what the local path cannot see (memory of tiles that left the view,
events). Every residual block is modulated (FiLM) by the frame's condition vector.

Previous latents come from the input sequence itself: frame f's predecessors are the frames
before it in the same pass, and before the first one the `history` (the latest committed frames
of a kv cache, or nothing). A missing predecessor is a zero latent at noise level 1 ("unknown").
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional

from worldsim.model.scroll import align_windows


def previous_frames(latents: Tensor, sigma: Tensor, history: Tensor | None = None,
                    history_sigma: Tensor | None = None, count: int = 1,
                    align: bool = False) -> tuple[Tensor, Tensor]:
    """The `count` predecessors of every frame of a sequence, most recent first.

    latents ``[B, F, C, h, w]`` with levels `sigma` ``[B, F]``; `history` ``[B, K, C, h, w]``
    (oldest first) and `history_sigma` ``[B, K]`` precede them (None = nothing precedes).
    Returns ``[B, F, count, C, h, w]`` and levels ``[B, F, count]``; a predecessor that does not
    exist is zeros at level 1. With `align`, each frame's older predecessors are moved into its
    newest one's view by the scroll read from them (`scroll.align_windows`, each pair read once).
    """
    batch, frames = sigma.shape
    known = 0 if history is None else history.shape[1]
    missing = max(count - known, 0)  # predecessors from before the history: unknown
    parts = [latents.new_zeros(batch, missing, *latents.shape[2:])] if missing else []
    levels = [sigma.new_ones(batch, missing)] if missing else []
    if history is not None:
        parts.append(history.to(latents.dtype))
        levels.append(history_sigma.to(sigma.dtype))
    sequence = torch.cat((*parts, latents), dim=1)
    sequence_sigma = torch.cat((*levels, sigma), dim=1)
    start = sequence.shape[1] - frames  # index of frame 0 in the sequence
    # Frame f's k-th predecessor (k = 1..count) sits at start + f - k.
    index = (torch.arange(frames, device=latents.device)[:, None] + start
             - torch.arange(1, count + 1, device=latents.device))
    return (align_windows(sequence, index) if align else sequence[:, index]), sequence_sigma[:, index]


def widened_history_weights(state: dict[str, Tensor], latent_channels: int, old_previous: int,
                            new_previous: int, prefix: str = "") -> dict[str, Tensor]:
    """A local path's weights for `new_previous` >= `old_previous` predecessors, computing exactly
    what they computed before: the input channels of the added (older) predecessors and of their
    noise levels get zero weights, so the grown network starts as the trained one and learns how
    much of the longer past to use. `state` holds the path's tensors under `prefix`.

    Why grow the history: an enemy that has just held its tile for two frames moves next, but
    which way depends on where it stood four to six frames ago, which two predecessors cannot see.
    """
    if new_previous < old_previous:
        raise ValueError(f"a history can only grow: {old_previous} -> {new_previous} predecessors")
    added = (new_previous - old_previous) * latent_channels
    grown = dict(state)
    stem = state[prefix + "stem_in.weight"]  # [out, C + K*C + K + actions (+ C of a reader), 3, 3]
    latents_end = latent_channels * (1 + old_previous)
    pad = stem.new_zeros(stem.shape[0], added, *stem.shape[2:])
    level_pad = stem.new_zeros(stem.shape[0], new_previous - old_previous, *stem.shape[2:])
    grown[prefix + "stem_in.weight"] = torch.cat(
        (stem[:, :latents_end], pad, stem[:, latents_end : latents_end + old_previous], level_pad,
         stem[:, latents_end + old_previous :]), dim=1)
    key = prefix + "previous_by_action.weight"  # [actions, out, K*C, 3, 3]
    if key in state:
        kernels = state[key]
        grown[key] = torch.cat((kernels, kernels.new_zeros(*kernels.shape[:2], added, *kernels.shape[3:])), dim=2)
    return grown


def widened_reader_weights(state: dict[str, Tensor], latent_channels: int, prefix: str = "") -> dict[str, Tensor]:
    """A local path's weights with the stem's inputs grown by a history reader's prediction
    (`latent_channels` more inputs, appended last) given zero weights, so the grown network
    computes exactly what it computed before; the reader itself starts untrained."""
    grown = dict(state)
    stem = state[prefix + "stem_in.weight"]
    grown[prefix + "stem_in.weight"] = torch.cat(
        (stem, stem.new_zeros(stem.shape[0], latent_channels, *stem.shape[2:])), dim=1)
    return grown


def unread_reader_weights(state: dict[str, Tensor], latent_channels: int, prefix: str = "") -> dict[str, Tensor]:
    """A local path's weights with the stem's inputs from the history reader's guess (the last
    `latent_channels`) removed, for a stem that stops reading it. Raises ValueError unless those
    weights are all zero: only then does the network compute what it computed before."""
    stem = state[prefix + "stem_in.weight"]
    if bool(stem[:, -latent_channels:].any()):
        raise ValueError("the stem has learnt to read the history reader's guess; removing that input would "
                         "change the network")
    return {**state, prefix + "stem_in.weight": stem[:, :-latent_channels].clone()}


def level_and_action_maps(previous_sigma: Tensor, actions: Tensor, num_action_rows: int,
                          cells: tuple[int, int], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per-cell input planes: the predecessors' noise levels ``[..., K, h, w]`` and the one-hot
    action ``[..., rows, h, w]``, for levels ``[..., K]`` and actions long ``[...]``."""
    levels = previous_sigma.to(dtype)[..., None, None].expand(*previous_sigma.shape, *cells)
    action_maps = functional.one_hot(actions, num_action_rows).to(dtype)
    return levels, action_maps[..., None, None].expand(*action_maps.shape, *cells)


class ResidualConv(nn.Module):
    """A plain pre-norm residual conv block (no condition: the reader sees the past frames only)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        groups = math.gcd(8, channels)
        self.body = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, features: Tensor) -> Tensor:
        return features + self.body(features)


class HistoryReader(nn.Module):
    """The next latent guessed from the predecessors alone: the newest one plus a conv stack over
    ``[K predecessors ; their noise levels ; one-hot action]``.

    Why apart from the stem: an Explorer enemy's way (go on or turn back) is only in frames t-4
    and t-5, and the flow-matching loss barely grows the stem's weights on them, while this
    regression, trained on its own loss (stage `reader`), learns the patrol from six lined-up
    latents in a few thousand steps. The stem then reads the guess as input (detached: the
    reader stays a plain next-frame regressor whatever stage trains the rest).
    """

    def __init__(self, latent_channels: int, previous: int, num_action_rows: int, width: int, blocks: int) -> None:
        super().__init__()
        self.num_action_rows = num_action_rows
        self.stem = nn.Conv2d(latent_channels * previous + previous + num_action_rows, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualConv(width) for _ in range(blocks)))
        self.head = nn.Conv2d(width, latent_channels, 3, padding=1)
        # Starts as "the next frame is the newest one", the best guess without training.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, previous: Tensor, previous_sigma: Tensor, actions: Tensor) -> Tensor:
        """previous ``[N, K, C, h, w]`` (most recent first), levels ``[N, K]``, actions long ``[N]``
        → the next latent ``[N, C, h, w]``."""
        levels, action_maps = level_and_action_maps(previous_sigma, actions, self.num_action_rows,
                                                     tuple(previous.shape[-2:]), previous.dtype)
        inputs = torch.cat((previous.flatten(1, 2), levels, action_maps), dim=1)
        return previous[:, 0] + self.head(self.blocks(self.stem(inputs)))


class ActionConv(nn.Module):
    """A 3x3 convolution whose kernel is chosen by the action: one kernel per action row.

    A move acts on the previous frames as a local transformation (in a scrolling world, a shift
    by one cell), which a kernel picked by the action expresses in one linear layer, where a
    shared kernel needs the action to gate its features through later nonlinearities. Costs the
    same as one convolution: every frame is convolved with its own kernel as one grouped conv.
    """

    def __init__(self, in_channels: int, out_channels: int, num_action_rows: int) -> None:
        super().__init__()
        shared = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        # Every action starts from the same kernel, so the actions differ only as training says.
        self.weight = nn.Parameter(shared.weight.detach()[None].repeat(num_action_rows, 1, 1, 1, 1))

    def forward(self, inputs: Tensor, actions: Tensor) -> Tensor:
        """inputs ``[N, in, h, w]``, actions long ``[N]`` → ``[N, out, h, w]``."""
        count, channels, height, width = inputs.shape
        kernels = self.weight[actions].flatten(0, 1)  # [N * out, in, 3, 3]
        out = functional.conv2d(inputs.reshape(1, count * channels, height, width), kernels, padding=1,
                                groups=count)
        return out.view(count, -1, height, width)


class FiLMBlock(nn.Module):
    """Residual conv block whose middle is scaled/shifted by the frame's condition vector."""

    def __init__(self, channels: int, condition_dim: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_out = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(condition_dim, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def start_as_identity(self) -> None:
        """Pass the features through unchanged until trained: a block added to a trained network
        (a warm start of a deeper local path) then leaves its outputs as they were."""
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        """features ``[N, ch, h, w]``, condition ``[N, D]`` (already SiLU-activated)."""
        scale, shift = self.film(condition)[..., None, None].chunk(2, dim=1)
        hidden = self.conv_in(functional.silu(features))
        hidden = torch.addcmul(shift, hidden, 1 + scale)
        return features + self.conv_out(functional.silu(hidden))


class LocalPath(nn.Module):
    """Conv stem (latents → patch tokens) and conv head (tokens → velocity) at latent resolution."""

    def __init__(self, latent_channels: int, num_actions: int, previous: int, width: int,
                 blocks: int, patch_size: int, dim: int, action_conv: bool = True, position_cells: int = 0,
                 align_history: bool = False, reader_width: int = 0, reader_blocks: int = 0,
                 reader_feeds_stem: bool = True) -> None:
        super().__init__()
        self.previous = previous
        self.align_history = align_history  # its predecessors come lined up: `previous_frames(align=...)`
        self.num_action_rows = num_actions + 1  # + NO_ACTION
        self.patch_size = patch_size
        self.reader = (HistoryReader(latent_channels, previous, self.num_action_rows, reader_width, reader_blocks)
                       if reader_width else None)
        self.reader_feeds_stem = bool(reader_width) and reader_feeds_stem
        inputs = latent_channels * (2 + previous if self.reader_feeds_stem else 1 + previous) + previous + self.num_action_rows
        self.stem_in = nn.Conv2d(inputs, width, 3, padding=1)
        self.previous_by_action = (ActionConv(latent_channels * previous, width, self.num_action_rows)
                                   if previous and action_conv else None)
        # Absolute position of every cell (position_cells² of them; 0 = none), zero at the start.
        self.positions = (nn.Parameter(torch.zeros(width, position_cells, position_cells))
                          if position_cells else None)
        self.stem = nn.ModuleList(FiLMBlock(width, dim) for _ in range(blocks))
        self.to_tokens = nn.Linear(width * patch_size**2, dim)
        self.from_tokens = nn.Linear(dim, width * patch_size**2)
        self.head = nn.ModuleList(FiLMBlock(width, dim) for _ in range(blocks))
        self.head_out = nn.Conv2d(width, latent_channels, 3, padding=1)
        # The network starts by predicting zero velocity, as the AdaLN-zero transformer does.
        nn.init.zeros_(self.head_out.weight)
        nn.init.zeros_(self.head_out.bias)

    def stem_features(self, latents: Tensor, previous: Tensor, previous_sigma: Tensor,
                      actions: Tensor, condition: Tensor) -> Tensor:
        """Full-resolution features ``[B*F, width, h, w]`` of every input frame.

        latents ``[B, F, C, h, w]``; previous ``[B, F, K, C, h, w]`` with levels ``[B, F, K]``;
        actions long ``[B, F]``; condition ``[B, F, D]``.
        """
        sigma_maps, action_maps = level_and_action_maps(previous_sigma, actions, self.num_action_rows,
                                                        tuple(latents.shape[-2:]), latents.dtype)
        previous_channels = previous.flatten(2, 3).to(latents.dtype)  # [B, F, K*C, h, w]
        inputs = [latents, previous_channels, sigma_maps, action_maps]
        if self.reader_feeds_stem:
            inputs.append(self.read_next(previous, previous_sigma, actions).detach().to(latents.dtype))
        stacked = torch.cat(inputs, dim=2)
        features = self.stem_in(stacked.flatten(0, 1))
        if self.previous_by_action is not None:
            features = features + self.previous_by_action(previous_channels.flatten(0, 1), actions.flatten())
        if self.positions is not None:
            features = features + self.positions
        flat_condition = condition.flatten(0, 1)
        for block in self.stem:
            features = block(features, flat_condition)
        return features

    def read_next(self, previous: Tensor, previous_sigma: Tensor, actions: Tensor) -> Tensor:
        """The history reader's next latent ``[B, F, C, h, w]`` for predecessors ``[B, F, K, C, h, w]``
        with levels ``[B, F, K]`` and actions long ``[B, F]``."""
        if self.reader is None:
            raise ValueError("this local path has no history reader (transformer.local_reader_channels = 0)")
        guess = self.reader(previous.flatten(0, 1), previous_sigma.flatten(0, 1), actions.flatten())
        return guess.view(*previous.shape[:2], *guess.shape[1:])

    def tokens(self, features: Tensor, frames: int) -> Tensor:
        """Patch tokens ``[B, F, T, D]`` of stem features ``[B*F, width, h, w]``."""
        patches = rearrange(features, "(b f) c (y p) (x q) -> b f (y x) (c p q)", f=frames,
                            p=self.patch_size, q=self.patch_size)
        return self.to_tokens(patches)

    def velocity(self, tokens: Tensor, features: Tensor, condition: Tensor) -> Tensor:
        """Velocity ``[B, F, C, h, w]`` from transformer tokens ``[B, F, T, D]`` (already
        normalised and modulated) and the same frames' stem features ``[B*F, width, h, w]``."""
        batch, frames = tokens.shape[:2]
        grid = features.shape[-1] // self.patch_size
        upsampled = rearrange(self.from_tokens(tokens), "b f (y x) (c p q) -> (b f) c (y p) (x q)",
                              y=grid, p=self.patch_size, q=self.patch_size)
        hidden = features + upsampled
        flat_condition = condition.flatten(0, 1)
        for block in self.head:
            hidden = block(hidden, flat_condition)
        out = self.head_out(functional.silu(hidden))
        return out.view(batch, frames, *out.shape[1:])
