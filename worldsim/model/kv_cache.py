"""Bounded key/value cache: attention-sink frames plus a ring-buffer window.

Per layer and batch row, the cache holds `sink_frames` slots for the first frames committed
after a reset (never evicted) and `window_frames` ring slots for the most recent frames. All
memory is allocated once, so 100 000 frames of rollout use the same bytes as 100.

Keys are stored temporally un-rotated (their spatial rotation, fixed for a token's place in the
frame, is applied at projection; see rope.py). When attending, each valid slot gets a temporal
position from its order in the cache — sink frames 0..S-1, then the window oldest to newest —
and the frames being generated follow. Positions therefore never exceed sink + window + chunk
frames; distances inside the window equal true frame distances, while the sink sits just
before the window (as in StreamingLLM / Rolling Forcing). A pass that commits some of its frames
and runs later ones lays its keys out with `chunk_layout`, so that the later frames already see
the cache as it will be after the commit (what a sampler's fused re-encode needs).

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


def slot_layout(num_frames: Tensor, sink_frames: int, window_frames: int) -> tuple[Tensor, Tensor]:
    """Temporal position (long ``[B, sink+window]``) and validity (bool) of every slot of rows
    that hold `num_frames` ``[B]`` frames since reset: the sink 0..S-1, then the window oldest
    to newest. Invalid slots get position 0; they are masked out of attention."""
    sink, window = sink_frames, window_frames
    frames = num_frames[:, None]
    sink_slots = torch.arange(sink, device=num_frames.device)
    sink_valid = sink_slots < frames
    in_window = (frames - sink).clamp(min=0, max=window)  # frames held by the ring
    next_ring_slot = (frames - sink).clamp(min=0) % window
    ring_slots = torch.arange(window, device=num_frames.device)
    age = (next_ring_slot - 1 - ring_slots) % window  # 0 = newest
    ring_valid = age < in_window
    ring_positions = sink + in_window - 1 - age
    valid = torch.cat((sink_valid, ring_valid), dim=1)
    positions = torch.cat((sink_slots.expand_as(sink_valid), ring_positions), dim=1)
    return torch.where(valid, positions, torch.zeros_like(positions)), valid


def evicted_by_commit(num_frames: Tensor, sink_frames: int, window_frames: int,
                      commit: int) -> Tensor:
    """long ``[B]``: window frames that committing `commit` more frames pushes out of each row.

    Frames after the sink get positions from the oldest window frame on, so this is also how far
    the window's positions slide relative to the sink's."""
    def first_window_frame(frames: Tensor) -> Tensor:
        return (frames - window_frames).clamp(min=sink_frames)

    return first_window_frame(num_frames + commit) - first_window_frame(num_frames)


def fused_commit_is_exact(num_frames: Tensor, sink_frames: int, window_frames: int,
                          commit: int) -> bool:
    """Whether a chunk can commit its first `commit` frames in the pass that runs its later
    frames (see `chunk_layout`): yes unless a row fills its sink and evicts in the same commit,
    which would turn chunk frames into sink frames whose positions slide."""
    if commit <= window_frames + 1:
        # A row still filling its sink holds at most sink - 1 frames, so such a commit cannot
        # evict: decided without looking at the rows (no tensor work, no device sync per frame).
        return True
    fits = num_frames + commit <= sink_frames + window_frames
    return bool(((num_frames >= sink_frames) | fits).all())


def repeats_sink(frames: int, commit: int) -> bool:
    """Whether `chunk_layout` lists the sink slots twice: when a pass has committed frames and
    later ones."""
    return 0 < commit < frames


def chunk_layout(num_frames: Tensor, sink_frames: int, window_frames: int, frames: int,
                 commit: int) -> tuple[Tensor, Tensor]:
    """Key frames of a pass over `frames` new frames whose first `commit` frames are committed:
    their temporal positions (long ``[B, K]``) and which of them each new frame sees
    (bool ``[B, frames, K]``).

    Keys are — only when `repeats_sink` — a second copy of the sink slots, then the cache slots,
    then the chunk. Committed frames (and every frame when nothing or everything is committed)
    see the valid slots and the chunk frame-causally: the cache as it is. Later frames see the
    cache as it will be after the commit, so that one pass equals a commit pass followed by a
    pass over the later frames: the window frames (and committed frames) the commit evicts are
    hidden, and since the positions of the frames after the sink slide by the evicted count
    relative to the sink's, they see the sink through its copy, placed that much later.
    Requires `fused_commit_is_exact`.
    """
    sink, capacity = sink_frames, sink_frames + window_frames
    batch, device = num_frames.shape[0], num_frames.device
    slot_positions, slot_valid = slot_layout(num_frames, sink_frames, window_frames)
    chunk = torch.arange(frames, device=device)
    positions = torch.cat((slot_positions, num_frames.clamp(max=capacity)[:, None] + chunk), dim=1)
    causal = (chunk[:, None] >= chunk[None, :]).expand(batch, frames, frames)
    visible = torch.cat((slot_valid[:, None, :].expand(batch, frames, capacity), causal), dim=2)
    if not repeats_sink(frames, commit):
        return positions, visible
    if not fused_commit_is_exact(num_frames, sink_frames, window_frames, commit):
        raise ValueError("a row fills its sink and evicts in one commit; commit separately")
    shift = evicted_by_commit(num_frames, sink_frames, window_frames, commit)[:, None]
    # Hidden from later frames: the sink slots (seen through the copy) and the `shift` oldest
    # frames after the sink (chunk frames that become sink frames have positions below `sink`).
    hidden = (positions >= sink) & (positions < sink + shift)
    hidden[:, :sink] = True
    later = (chunk >= commit)[None, :, None]
    sees_copy = later & slot_valid[:, None, :sink]
    return (torch.cat((torch.arange(sink, device=device) + shift, positions), dim=1),
            torch.cat((sees_copy, visible & ~(later & hidden[:, None])), dim=2))


def attention_groups(sink_frames: int, window_frames: int, frames: int, commit: int
                     ) -> list[tuple[slice, slice]]:
    """(query frames, key frames) blocks of a `chunk_layout` outside which nothing is visible,
    so attention can run per block instead of over all keys with a mask: a split pass runs its
    committed frames over the cache slots and themselves, its later frames over everything."""
    capacity = sink_frames + window_frames
    if not repeats_sink(frames, commit):
        return [(slice(0, frames), slice(0, capacity + frames))]
    return [(slice(0, commit), slice(sink_frames, sink_frames + capacity + commit)),
            (slice(commit, frames), slice(0, sink_frames + capacity + frames))]


class KVCache:
    """Preallocated keys/values; `keys[l]`/`values[l]` are ``[B, H, sink+window, T, head_dim]``
    views of one storage tensor, so a frame is written to every layer at once."""

    def __init__(self, num_layers: int, batch_size: int, num_heads: int, head_dim: int,
                 tokens_per_frame: int, sink_frames: int = 1, window_frames: int = 16,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, recent_frames: int = 0,
                 latent_shape: tuple[int, ...] = (), event_dim: int = 0) -> None:
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
        # The latents (and noise levels) of the last `recent_frames` committed frames, oldest
        # first: the local path's view of the previous frames. An empty slot is zeros at level 1.
        self.recent_latents = torch.zeros(batch_size, recent_frames, *latent_shape, device=device,
                                          dtype=dtype)
        self.recent_sigma = torch.ones(batch_size, recent_frames, device=device, dtype=dtype)
        # With `event_dim`, the event vector of the last committed frame: what the next frame's
        # event changed from (CausalTransformer's event_change). Rows with no frame have none.
        self.last_event = torch.zeros(batch_size, event_dim, device=device, dtype=dtype)

    @property
    def recent_frames(self) -> int:
        """How many of the latest committed frames' latents are kept (0: none)."""
        return self.recent_latents.shape[1]

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
        tensors = (self._storage, self._num_frames, self.recent_latents, self.recent_sigma, self.last_event)
        return sum(t.numel() * t.element_size() for t in tensors)

    def layer(self, index: int, repeat_sink: bool = False
              ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        """Un-rotated keys and values of one layer in the key-frame order of `chunk_layout`:
        with `repeat_sink` the sink slots' ``[B, H, sink*T, head_dim]``, then all slots'
        ``[B, H, capacity*T, head_dim]`` (views). Parts rather than one tensor, so that the
        attention concatenates them with the chunk's keys in a single copy."""
        keys, values = self.keys[index].flatten(2, 3), self.values[index].flatten(2, 3)
        if not repeat_sink:
            return (keys,), (values,)
        sink_tokens = self.sink_frames * self.tokens_per_frame
        return (keys[:, :, :sink_tokens], keys), (values[:, :, :sink_tokens], values)

    def chunk_layout(self, frames: int, commit: int) -> tuple[Tensor, Tensor]:
        """`chunk_layout` of these rows (positions ``[B, K]``, visibility ``[B, frames, K]``)."""
        return chunk_layout(self._num_frames, self.sink_frames, self.window_frames, frames, commit)

    def slot_layout(self) -> tuple[Tensor, Tensor]:
        """Temporal position (long ``[B, capacity]``) and validity (bool) of every slot
        (see `slot_layout`)."""
        return slot_layout(self._num_frames, self.sink_frames, self.window_frames)

    def append(self, keys: list[Tensor], values: list[Tensor], latents: Tensor | None = None,
               sigma: Tensor | None = None, events: Tensor | None = None) -> None:
        """Write frames, oldest first, into every row: per layer ``[B, H, k*T, head_dim]``.

        A frame goes to the next sink slot while the sink is not full, then to the ring slot of
        the oldest window frame. Tensors are detached before they are stored. A cache that keeps
        recent latents also needs the frames' `latents` ``[B, k, C, h, w]`` and levels `sigma`
        ``[B, k]``, one that keeps the last event their `events` ``[B, k, E]``.
        """
        if self.recent_frames:
            self._push_recent(latents, sigma, keys[0].shape[2] // self.tokens_per_frame)
        if self.last_event.shape[1]:
            self._keep_last_event(events, keys[0].shape[2] // self.tokens_per_frame)
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

    def _push_recent(self, latents: Tensor | None, sigma: Tensor | None, frames: int) -> None:
        expected = (self.batch_size, frames, *self.recent_latents.shape[2:])
        if latents is None or sigma is None or tuple(latents.shape) != expected:
            got = None if latents is None else tuple(latents.shape)
            raise ValueError(f"this cache keeps recent latents: append needs latents {expected} "
                             f"and their sigma, got {got}")
        keep = self.recent_frames
        merged = torch.cat((self.recent_latents, latents.detach().to(self.dtype)), dim=1)[:, -keep:]
        merged_sigma = torch.cat((self.recent_sigma, sigma.detach().to(self.dtype)), dim=1)[:, -keep:]
        self.recent_latents.copy_(merged)
        self.recent_sigma.copy_(merged_sigma)

    def _keep_last_event(self, events: Tensor | None, frames: int) -> None:
        expected = (self.batch_size, frames, self.last_event.shape[1])
        if events is None or tuple(events.shape) != expected:
            got = None if events is None else tuple(events.shape)
            raise ValueError(f"this cache keeps the last event: append needs events {expected}, got {got}")
        if frames:
            self.last_event.copy_(events[:, -1].detach().to(self.dtype))

    def assign_rows(self, rows: Tensor, source: "KVCache") -> None:
        """Overwrite the rows `rows` (long indices ``[n]``) with all n rows of `source`,
        frame counts included (e.g. after re-encoding those rows in a scratch cache)."""
        layout = (source.num_layers, source.sink_frames, source.window_frames,
                  source.tokens_per_frame, source._storage.shape[3:],
                  source.recent_latents.shape[1:], source.last_event.shape[1:])
        if layout != (self.num_layers, self.sink_frames, self.window_frames,
                      self.tokens_per_frame, self._storage.shape[3:],
                      self.recent_latents.shape[1:], self.last_event.shape[1:]):
            raise ValueError("source cache has a different layout (layers, sink, window, "
                             "tokens per frame, heads, recent latents or last event)")
        if rows.ndim != 1 or rows.dtype != torch.long or len(rows) != source.batch_size:
            raise ValueError(f"rows must be long indices [{source.batch_size}], "
                             f"got {rows.dtype} {tuple(rows.shape)}")
        rows = rows.to(self.device)
        self._storage[rows] = source._storage.to(self.device, self.dtype)
        self._num_frames[rows] = source._num_frames.to(self.device)
        self.recent_latents[rows] = source.recent_latents.to(self.device, self.dtype)
        self.recent_sigma[rows] = source.recent_sigma.to(self.device, self.dtype)
        self.last_event[rows] = source.last_event.to(self.device, self.dtype)

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
        self.recent_latents[rows] = 0
        self.recent_sigma[rows] = 1
        self.last_event[rows] = 0
