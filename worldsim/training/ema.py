"""Exponential moving averages of model weights (the CD target, the generators' EMA)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ema_copy", "ema_update"]


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` to hold its moving average."""
    ema = copy.deepcopy(module)
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, decay: float) -> None:
    """`ema ← decay·ema + (1 − decay)·module` for parameters; buffers are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    for ema_param, param in zip(ema.parameters(), module.parameters(), strict=True):
        ema_param.lerp_(param.detach().to(ema_param.dtype), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), module.buffers(), strict=True):
        ema_buffer.copy_(buffer)
