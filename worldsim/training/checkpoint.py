"""Atomic, pickle-free training checkpoints that resume bit-exactly.

A checkpoint at step S in `<out>/checkpoints/` is:
- `step-SSSSSSSS.safetensors` — every tensor: module states (`module/<name>/<key>`) and optimizer
  states (`optim/<name>/<param index>/<key>`);
- `step-SSSSSSSS.json` — everything else: step, optimizer hyper-parameters, extra run state;
- `step-SSSSSSSS-rng<R>.safetensors` — rank R's random-number-generator states (torch CPU/CUDA,
  numpy, python), so each rank continues its own random stream exactly;
- `latest.json` — names the newest complete checkpoint. It is written last, so a kill at any moment
  leaves the previous checkpoint in force.
Every file is written to a temporary name, fsynced and renamed (`worldsim.data.atomic`). Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from worldsim.data.atomic import atomic_write_bytes, atomic_write_json

__all__ = [
    "CheckpointError",
    "atomic_write_json",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "latest_step",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT_VERSION = 1
T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not fit the run resuming from it."""


def _step_name(step: int) -> str:
    return f"step-{step:08d}"


# ---------------------------------------------------------------------------- RNG state


def capture_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every global RNG's state as (tensors, JSON-ready values)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(keys.astype(np.int64))
    version, python_state, gauss_next = random.getstate()
    values = {
        "numpy": {"kind": kind, "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gauss)},
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
    }
    return tensors, values


def restore_rng_state(tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    numpy_values = values["numpy"]
    np.random.set_state((
        numpy_values["kind"], tensors["numpy_keys"].numpy().astype(np.uint32),
        numpy_values["position"], numpy_values["has_gauss"], numpy_values["cached_gaussian"],
    ))
    python_values = values["python"]
    random.setstate((python_values["version"], tuple(python_values["state"]), python_values["gauss_next"]))


# ---------------------------------------------------------------------------- optimizer state


def _split_optimizer_state(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{name}/{param_index}/{key}"] = value
            else:
                scalars.setdefault(str(param_index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer_state(name: str, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim/{name}/"
    for key, tensor in tensors.items():
        if key.startswith(prefix):
            param_index, field = key[len(prefix):].split("/", 1)
            state.setdefault(int(param_index), {})[field] = tensor
    for param_index, fields in values["scalars"].items():
        state.setdefault(int(param_index), {}).update(fields)
    return {"state": state, "param_groups": values["param_groups"]}


# ---------------------------------------------------------------------------- save / load


@dataclass
class Checkpoint:
    """What a run needs to resume: its step and the extra JSON state it saved."""

    step: int
    extra: dict[str, Any]


def save_checkpoint(
    directory: Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    extra: dict[str, Any],
    keep: int = 2,
    rank: int = 0,
    world_size: int = 1,
    barrier=None,
) -> None:
    """Write the checkpoint of `step` atomically; keep the newest `keep` ones.

    Every rank writes its RNG file; rank 0 writes the weights, optimizer state and, after a
    `barrier()` (needed when several ranks run), the `latest.json` pointer that commits them.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = _step_name(step)
    rng_tensors, rng_values = capture_rng_state()
    atomic_write_bytes(
        directory / f"{name}-rng{rank}.safetensors",
        save_safetensors({k: v.contiguous() for k, v in rng_tensors.items()},
                         metadata={"rng": json.dumps(rng_values)}),
    )
    if rank == 0:
        tensors: dict[str, torch.Tensor] = {}
        for module_name, module in modules.items():
            for key, value in module.state_dict().items():
                tensors[f"module/{module_name}/{key}"] = value.detach().cpu().contiguous().clone()
        optimizer_values = {}
        for optimizer_name, optimizer in optimizers.items():
            optimizer_tensors, optimizer_values[optimizer_name] = _split_optimizer_state(optimizer_name, optimizer)
            tensors.update({k: v.detach().cpu().contiguous().clone() for k, v in optimizer_tensors.items()})
        atomic_write_bytes(directory / f"{name}.safetensors", save_safetensors(tensors))
        atomic_write_json(directory / f"{name}.json", {
            "format": FORMAT_VERSION, "step": step, "world_size": world_size,
            "optimizers": optimizer_values, "extra": extra,
        })
    if barrier is not None:
        barrier()
    if rank == 0:
        atomic_write_json(directory / "latest.json", {"format": FORMAT_VERSION, "step": step, "name": name})
        _remove_old(directory, keep)


def _remove_old(directory: Path, keep: int) -> None:
    steps = sorted({int(p.name[5:13]) for p in directory.glob("step-*.json")})
    for old in steps[:-keep]:
        for path in directory.glob(f"{_step_name(old)}*"):
            path.unlink(missing_ok=True)


def latest_step(directory: Path) -> int | None:
    """The step of the newest complete checkpoint in `directory`, or None if there is none."""
    pointer = Path(directory) / "latest.json"
    if not pointer.is_file():
        return None
    try:
        return int(json.loads(pointer.read_text())["step"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{pointer} is corrupt: {error}") from None


def load_checkpoint(
    directory: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rank: int = 0,
    world_size: int = 1,
) -> Checkpoint:
    """Restore modules, optimizers and this rank's RNG states from the newest checkpoint.

    Loading is strict: a missing or unexpected tensor, module or optimizer is an error.
    """
    directory = Path(directory)
    step = latest_step(directory)
    if step is None:
        raise CheckpointError(f"no checkpoint to resume from in {directory}")
    name = _step_name(step)
    state = _read_checkpoint_file(directory / f"{name}.json", lambda path: json.loads(path.read_text()))
    tensors = _read_checkpoint_file(directory / f"{name}.safetensors", lambda path: load_safetensors(path.read_bytes()))
    rng_tensors, rng_values = _read_checkpoint_file(directory / f"{name}-rng{rank}.safetensors", _read_rng_file)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        found = state.get("format") if isinstance(state, dict) else state
        raise CheckpointError(f"checkpoint {name} has format {found!r}, expected {FORMAT_VERSION}")
    if state["world_size"] != world_size:
        raise CheckpointError(
            f"checkpoint {name} was written by {state['world_size']} process(es); resume it with the same number"
        )
    _load_modules(name, tensors, modules)
    if set(state["optimizers"]) != set(optimizers):
        raise CheckpointError(f"checkpoint {name} holds optimizers {sorted(state['optimizers'])}, run has {sorted(optimizers)}")
    for optimizer_name, optimizer in optimizers.items():
        optimizer.load_state_dict(_join_optimizer_state(optimizer_name, tensors, state["optimizers"][optimizer_name]))
    restore_rng_state(rng_tensors, rng_values)
    return Checkpoint(step=step, extra=state["extra"])


def _read_checkpoint_file(path: Path, read: Callable[[Path], T]) -> T:
    """`read(path)`, with a missing, truncated or corrupt file reported as a CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} is missing: the checkpoint is incomplete")
    try:
        return read(path)
    except (SafetensorError, ValueError, KeyError, OSError) as error:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"checkpoint file {path} is truncated or corrupt ({type(error).__name__}: {error}); "
                              "the run cannot resume from it") from None


def _read_rng_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(path, framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        values = json.loads(handle.metadata()["rng"])
    return tensors, values


def _load_modules(name: str, tensors: dict[str, torch.Tensor], modules: dict[str, nn.Module]) -> None:
    saved_modules = {key.split("/")[1] for key in tensors if key.startswith("module/")}
    if saved_modules != set(modules):
        raise CheckpointError(f"checkpoint {name} holds modules {sorted(saved_modules)}, run has {sorted(modules)}")
    for module_name, module in modules.items():
        prefix = f"module/{module_name}/"
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise CheckpointError(f"checkpoint {name} does not fit module {module_name!r}: {error}") from None
