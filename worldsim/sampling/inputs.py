"""Validation of everything a user hands the Simulator, as pure functions.

Each function returns a normalised value or raises ValueError naming what is wrong; none touches
simulator state, so the Simulator validates all its inputs first and only then mutates.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldsim.sampling.noise import seeds_for_batch

# A guard before tokenizing: the token limit is the real one, this only stops absurd strings early.
MAX_EVENT_CHARS = 1000


def check_actions(actions: Any, batch_size: int, num_actions: int) -> Tensor:
    """Integer actions of shape [B] in 0..num_actions-1 -> long CPU tensor [B]."""
    if isinstance(actions, Tensor):
        if actions.dtype == torch.bool or actions.dtype.is_floating_point or actions.dtype.is_complex:
            raise ValueError(f"actions must have an integer dtype, got {actions.dtype}")
        values = actions.detach().to("cpu", torch.long)
    else:
        array = np.asarray(actions)
        if array.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {array.dtype} from {_preview(actions)}")
        values = torch.from_numpy(array.astype(np.int64))
    if tuple(values.shape) != (batch_size,):
        raise ValueError(f"actions must have shape ({batch_size},) (one per env), got {tuple(values.shape)}")
    bad = (values < 0) | (values >= num_actions)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(f"action {int(values[row])} for env {row} is out of range 0..{num_actions - 1}")
    return values


def check_event_text(text: Any, where: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    """A single event text: a string the tokenizer can take whole ("" = no event)."""
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a string or None, got {type(text).__name__}")
    if len(text) > MAX_EVENT_CHARS:
        raise ValueError(f"{where} is too long: {len(text)} characters (at most {MAX_EVENT_CHARS})")
    tokens = count_tokens(text)
    if tokens > max_tokens:
        raise ValueError(f"{where} is too long: {tokens} tokens, at most {max_tokens} ({text[:40]!r}...)")
    return text


def check_step_events(
    events: Any, batch_size: int, count_tokens: Callable[[str], int], max_tokens: int
) -> list[str | None]:
    """`step(events=...)`: None, or a list of B entries, each a new event text or None (keep)."""
    if events is None:
        return [None] * batch_size
    if isinstance(events, str) or not isinstance(events, Sequence):
        raise ValueError(f"events must be None or a list of {batch_size} strings/None, got {type(events).__name__}")
    if len(events) != batch_size:
        raise ValueError(f"events must have one entry per env ({batch_size}), got {len(events)}")
    return [
        None if text is None else check_event_text(text, f"events[{row}]", count_tokens, max_tokens)
        for row, text in enumerate(events)
    ]


def check_reset_events(
    event: Any, batch_size: int, count_tokens: Callable[[str], int], max_tokens: int
) -> list[str]:
    """`reset(event=...)`: None (no event), one text for all envs, or a list of B texts/None."""
    if event is None:
        return [""] * batch_size
    if isinstance(event, str):
        return [check_event_text(event, "event", count_tokens, max_tokens)] * batch_size
    texts = check_step_events(event, batch_size, count_tokens, max_tokens)
    return ["" if text is None else text for text in texts]


def check_rows(rows: Any, batch_size: int) -> Tensor:
    """`reset(rows=...)`: None (all) or a bool mask of shape [B] -> bool CPU tensor [B]."""
    if rows is None:
        return torch.ones(batch_size, dtype=torch.bool)
    mask = rows.detach().to("cpu") if isinstance(rows, Tensor) else torch.from_numpy(np.asarray(rows))
    if mask.dtype != torch.bool:
        raise ValueError(f"rows must be a bool mask, got dtype {mask.dtype}")
    if tuple(mask.shape) != (batch_size,):
        raise ValueError(f"rows must have shape ({batch_size},), got {tuple(mask.shape)}")
    return mask


def check_context(context: Any, batch_size: int, image_size: int) -> Tensor | None:
    """`reset(context=...)`: None, one start frame uint8 [H,W,3] for all envs, or [B,H,W,3]."""
    if context is None:
        return None
    frames = context.detach().to("cpu") if isinstance(context, Tensor) else torch.from_numpy(np.asarray(context))
    if frames.dtype != torch.uint8:
        raise ValueError(f"context frames must be uint8, got {frames.dtype}")
    frame_shape = (image_size, image_size, 3)
    if tuple(frames.shape) == frame_shape:
        return frames.expand(batch_size, *frame_shape)
    if tuple(frames.shape) != (batch_size, *frame_shape):
        raise ValueError(
            f"context must be one frame {frame_shape} or one per env {(batch_size, *frame_shape)}, "
            f"got {tuple(frames.shape)}"
        )
    return frames


def check_seed(seed: Any, batch_size: int) -> list[int] | None:
    """None, an int s (rows get s, s+1, ...) or B ints -> per-row seeds."""
    return None if seed is None else seeds_for_batch(seed, batch_size)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
