"""Bounded key/value cache: attention-sink frames plus a ring-buffer window (DESIGN §6.3).

Per layer and batch row, the cache holds `sink_frames` slots for the first frames committed
after a reset (never evicted) and `window_frames` ring slots for the most recent frames. All
memory is allocated once, so 100 000 frames of rollout use the same bytes as 100.

Keys are stored temporally un-rotated (their spatial rotation, fixed for a token's place in the
frame, is applied at projection; see rope.py). When attending, each valid slot gets a temporal
position from its order in the cache — sink frames 0..S-1, then the window oldest to newest —
and the frames being generated follow. Positions therefore never exceed sink + window + chunk
frames; distances inside the window equal true frame distances, while the sink sits just
before the window (as in StreamingLLM / Rolling Forcing).

Rows are independent: each has its own frame count, so one row can be reset (vector-env
autoreset) while the others keep their history. Only detached tensors are written.
"""
from __future__ import annotations

import torch
from torch import Tensor


def frame_slot(frame_index: Tensor, sink_frames: int, window_frames: int) -> Tensor:
    """Slot receiving the frame with this per-row index since reset: the sink slots in order,
    then the ring slot of the oldest window frame."""
    ring = sink_frames + (frame_index - sink_frames).clamp(min=0) % window_frames
    return torch.where(frame_index < sink_frames, frame_index, ring)


class KVCache:
    """Preallocated keys/values; `keys[l]`/`values[l]` are ``[B, H, sink+window, T, head_dim]``
    views of one storage tensor, so a frame is written to every layer at once."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, head_dim: int,
                 tokens_per_frame: int, sink_frames: int = 1, window_frames: int = 16,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        if window_frames < 1 or sink_frames < 0:
            raise ValueError(f"need window_frames >= 1 and sink_frames >= 0, "
                             f"got {window_frames} and {sink_frames}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.sink_frames = sink_frames
        self.window_frames = window_frames
        self.tokens_per_frame = tokens_per_frame
        # [B, keys/values, layer, H, slot, T, head_dim]. Zeros, not empty: masked-out slots
        # still enter the attention product (with weight 0), and uninitialised memory could
        # hold NaN.
        self._storage = torch.zeros(batch_size, 2, num_layers, num_heads, self.capacity,
                                    tokens_per_frame, head_dim, device=device, dtype=dtype)
        self.keys = list(self._storage[:, 0].unbind(1))
        self.values = list(self._storage[:, 1].unbind(1))
        self._num_frames = torch.zeros(batch_size, dtype=torch.long, device=device)

    @property
    def capacity(self) -> int:
        """Frames held at most per row: sink + window."""
        return self.sink_frames + self.window_frames

    @property
    def num_layers(self) -> int:
        return len(self.keys)

    @property
    def device(self) -> torch.device:
        return self._num_frames.device

    @property
    def dtype(self) -> torch.dtype:
        return self._storage.dtype

    @property
    def num_frames(self) -> Tensor:
        """long ``[B]``: frames committed to each row since its last reset (unbounded count)."""
        return self._num_frames.clone()

    @property
    def num_cached(self) -> Tensor:
        """long ``[B]``: frames each row holds now (at most `capacity`)."""
        return self._num_frames.clamp(max=self.capacity)

    def nbytes(self) -> int:
        tensors = (self._storage, self._num_frames)
        return sum(t.numel() * t.element_size() for t in tensors)

    def layer(self, index: int) -> tuple[Tensor, Tensor]:
        """Un-rotated keys and values of one layer as ``[B, H, capacity*T, head_dim]`` views."""
        keys, values = self.keys[index], self.values[index]
        return keys.flatten(2, 3), values.flatten(2, 3)

    def slot_layout(self) -> tuple[Tensor, Tensor]:
        """Temporal position (long ``[B, capacity]``) and validity (bool) of every slot.

        Invalid slots get position 0; they are masked out of attention.
        """
        sink, window = self.sink_frames, self.window_frames
        frames = self._num_frames[:, None]
        sink_slots = torch.arange(sink, device=self.device)
        sink_valid = sink_slots < frames
        in_window = (frames - sink).clamp(min=0, max=window)  # frames held by the ring
        next_ring_slot = (frames - sink).clamp(min=0) % window
        ring_slots = torch.arange(window, device=self.device)
        age = (next_ring_slot - 1 - ring_slots) % window  # 0 = newest
        ring_valid = age < in_window
        ring_positions = sink + in_window - 1 - age
        valid = torch.cat((sink_valid, ring_valid), dim=1)
        positions = torch.cat((sink_slots.expand_as(sink_valid), ring_positions), dim=1)
        return torch.where(valid, positions, torch.zeros_like(positions)), valid

    def append(self, keys: list[Tensor], values: list[Tensor]) -> None:
        """Write frames, oldest first, into every row: per layer ``[B, H, k*T, head_dim]``.

        A frame goes to the next sink slot while the sink is not full, then to the ring slot of
        the oldest window frame. Tensors are detached before they are stored.
        """
        if len(keys) != self.num_layers or len(values) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers of keys/values, "
                             f"got {len(keys)}/{len(values)}")
        length = keys[0].shape[2]
        if length % self.tokens_per_frame:
            raise ValueError(f"{length} tokens is not a whole number of "
                             f"{self.tokens_per_frame}-token frames")
        # [B, keys/values, layer, H, k*T, head_dim], the layout of the storage.
        new = torch.stack((torch.stack(keys, dim=1), torch.stack(values, dim=1)), dim=1)
        new = new.detach().to(self.dtype)
        rows = torch.arange(self.batch_size, device=self.device)
        frames = length // self.tokens_per_frame
        for frame in range(frames):
            slots = frame_slot(self._num_frames + frame, self.sink_frames, self.window_frames)
            tokens = slice(frame * self.tokens_per_frame, (frame + 1) * self.tokens_per_frame)
            self._storage[rows, :, :, :, slots] = new[:, :, :, :, tokens]
        self._num_frames += frames

    def assign_rows(self, rows: Tensor, source: "KVCache") -> None:
        """Overwrite the rows `rows` (long indices ``[n]``) with all n rows of `source`,
        frame counts included (e.g. after re-encoding those rows in a scratch cache)."""
        layout = (source.num_layers, source.sink_frames, source.window_frames,
                  source.tokens_per_frame, source._storage.shape[3:])
        if layout != (self.num_layers, self.sink_frames, self.window_frames,
                      self.tokens_per_frame, self._storage.shape[3:]):
            raise ValueError("source cache has a different layout (layers, sink, window, "
                             "tokens per frame or heads)")
        if rows.ndim != 1 or rows.dtype != torch.long or len(rows) != source.batch_size:
            raise ValueError(f"rows must be long indices [{source.batch_size}], "
                             f"got {rows.dtype} {tuple(rows.shape)}")
        rows = rows.to(self.device)
        self._storage[rows] = source._storage.to(self.device, self.dtype)
        self._num_frames[rows] = source._num_frames.to(self.device)

    def reset(self, rows: Tensor | None = None) -> None:
        """Forget the history of the rows where `rows` (bool ``[B]``) is True; None = all rows."""
        if rows is None:
            rows = torch.ones(self.batch_size, dtype=torch.bool, device=self.device)
        if rows.dtype != torch.bool or rows.shape != (self.batch_size,):
            raise ValueError(f"rows must be a bool tensor of shape ({self.batch_size},), "
                             f"got {rows.dtype} {tuple(rows.shape)}")
        rows = rows.to(self.device)
        self._num_frames.masked_fill_(rows, 0)
        self._storage[rows] = 0
