"""Devices, bf16 autocast and `torchrun` data parallelism for the training stages.

Data parallel training here averages gradients with one all-reduce per step (`average_gradients`)
instead of wrapping models in `DistributedDataParallel`: the stages drive the transformer through
several entry points (`forward_cached`, `forward_teacher_forcing`, rollouts that mix grad and
no-grad passes), which DDP's forward hooks do not see. The maths is the same: every rank starts
from rank 0's weights, sees its own data and applies the averaged gradient.

Random choices that must agree across ranks (exit step, switch frame, rollout kind) go through
`broadcast_choice`: drawn on rank 0 and sent to the others.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "DistributedContext",
    "init_distributed",
    "resolve_device",
    "autocast",
    "broadcast_choice",
    "broadcast_parameters",
    "average_gradients",
]


@dataclass(frozen=True)
class DistributedContext:
    """Who this process is: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA when available; under torchrun `cuda` means this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def init_distributed(device_name: str = "auto") -> DistributedContext:
    """Join the process group when launched by `torchrun` (WORLD_SIZE > 1), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size <= 1:
        return DistributedContext(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for `precision == "bf16"`, nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def broadcast_choice(draw: Callable[[], float | int | Sequence[float | int]],
                     context: DistributedContext) -> float | int | list:
    """Call `draw()` on rank 0 only and return its value on every rank.

    `draw` returns a number or a flat sequence of numbers; ints stay ints, floats stay floats.
    Other ranks do not call it, so their own random streams are not advanced by a choice they
    did not make.
    """
    if not context.distributed:
        return draw()
    device = _comm_device(context)
    if context.is_main:
        value = draw()
        is_sequence = isinstance(value, (list, tuple))
        numbers = list(value) if is_sequence else [value]
        is_int = [isinstance(v, int) and not isinstance(v, bool) for v in numbers]
        header = torch.tensor([len(numbers), int(is_sequence)], dtype=torch.int64, device=device)
    else:
        header = torch.zeros(2, dtype=torch.int64, device=device)
    dist.broadcast(header, src=0)
    length, is_sequence = (int(v) for v in header.tolist())
    # float64 holds every int a choice needs (|v| < 2**53) exactly; the mask restores the types
    if context.is_main:
        payload = torch.tensor([numbers, is_int], dtype=torch.float64, device=device)
    else:
        payload = torch.zeros(2, length, dtype=torch.float64, device=device)
    dist.broadcast(payload, src=0)
    values = [int(v) if flag else float(v) for v, flag in zip(*payload.tolist())]
    return values if is_sequence else values[0]


def _comm_device(context: DistributedContext) -> torch.device:
    # NCCL only moves CUDA tensors; gloo only CPU ones.
    return context.device if context.device.type == "cuda" else torch.device("cpu")


def broadcast_parameters(modules: Iterable[nn.Module], context: DistributedContext) -> None:
    """Copy rank 0's parameters and buffers to every rank (call once, before training)."""
    if not context.distributed:
        return
    with torch.no_grad():
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[nn.Parameter], context: DistributedContext) -> None:
    """All-reduce and average gradients across ranks, one flat bucket per dtype and device."""
    if not context.distributed:
        return
    buckets: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for parameter in parameters:
        if parameter.grad is None:
            # every rank must contribute the same tensors; an unused parameter adds zeros
            parameter.grad = torch.zeros_like(parameter)
        buckets.setdefault((parameter.grad.dtype, parameter.grad.device), []).append(parameter.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= context.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset: offset + grad.numel()].view_as(grad))
            offset += grad.numel()
