"""`worldsim merge`: a world whose weights lie on the line between two worlds of one lineage.

Two worlds fine-tuned from the same weights in different directions can be averaged weight by
weight; the share of the second world sets where on that line the result lands. On the Explorer,
0.3 x a world tuned for fidelity + 0.7 x one tuned to react to events kept the first's fidelity and
part of the second's reactions. Both worlds must have the same architecture, tokenizer, event texts
and start frames.

    worldsim merge runs/delta/final runs/delta-switch/final --weight 0.7 --out runs/merged

The merged world carries the second world's metadata (its event table, recipe and training
history) with one `merge` record appended: the share, both sources, and the first world's training
records that the second lacks, so the lineage of both branches stays on record.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # torch loads when a merge runs, not when the command line is parsed
    from torch import Tensor

    from worldsim.world import WorldModel


def interpolate_states(first: Mapping[str, Tensor], second: Mapping[str, Tensor], weight: float) -> dict[str, Tensor]:
    """`(1 - weight) * first + weight * second` for every floating-point tensor of two state dicts.

    Other tensors (integer buffers) must be equal in both and are kept. Raises ValueError when the
    dicts do not hold the same tensors of the same shapes, or `weight` is outside [0, 1].
    """
    import torch

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the weight of the second world must be in [0, 1], got {weight}")
    if first.keys() != second.keys():
        raise ValueError(f"the networks differ in their tensors: {sorted(first.keys() ^ second.keys())[:4]}")
    merged = {}
    for key, value in first.items():
        other = second[key]
        if value.shape != other.shape:
            raise ValueError(f"{key}: shapes differ ({tuple(value.shape)} vs {tuple(other.shape)})")
        if value.is_floating_point():
            merged[key] = torch.lerp(value, other.to(value.dtype), weight)
        elif torch.equal(value, other):
            merged[key] = value.clone()
        else:
            raise ValueError(f"{key}: a non-float tensor differs between the worlds and cannot be interpolated")
    return merged


def _require_same_shape(first: WorldModel, second: WorldModel) -> None:
    """Worlds that cannot be averaged weight by weight: a clear error before any weight is touched."""
    import torch

    checks = {
        "architecture (config.world)": (first.config.to_dict(), second.config.to_dict()),
        "event texts": (first.event_texts, second.event_texts),
        "tokenizer": (first.tokenizer.to_dict(), second.tokenizer.to_dict()),
    }
    for what, (a, b) in checks.items():
        if a != b:
            raise ValueError(f"the two worlds differ in their {what}; only worlds of one lineage can be merged")
    if not torch.equal(first.context_frames, second.context_frames):
        raise ValueError("the two worlds differ in their start frames; only worlds of one lineage can be merged")


def _branch_records(first: list[dict], second: list[dict]) -> list[dict]:
    """The first world's training records after the history both worlds share."""
    shared = 0
    while shared < min(len(first), len(second)) and first[shared] == second[shared]:
        shared += 1
    return first[shared:]


def interpolate_worlds(first: WorldModel, second: WorldModel, weight: float,
                       names: tuple[str, str] = ("first", "second")) -> WorldModel:
    """A new world: every network `(1 - weight) * first + weight * second`, the second's metadata
    with a `merge` training record (`names` say where each world came from)."""
    started = time.perf_counter()
    _require_same_shape(first, second)
    merged = copy.deepcopy(second)
    for name, network in merged.networks.items():
        state = interpolate_states(first.networks[name].state_dict(), second.networks[name].state_dict(), weight)
        network.load_state_dict(state)
    merged.event_cache.clear()
    history = list(second.metadata.get("training", []))
    record: dict[str, Any] = {
        "stage": "merge", "steps": 0, "wall_time_s": round(time.perf_counter() - started, 3),
        "weight": weight, "first": names[0], "second": names[1],
        "first_only": _branch_records(list(first.metadata.get("training", [])), history),
    }
    merged.metadata["training"] = history + [record]
    return merged


# ------------------------------------------------------------------------------ command


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge", help="average two worlds of one lineage weight by weight",
        description="Write a world whose weights are (1 - WEIGHT) x FIRST + WEIGHT x SECOND, with "
                    "SECOND's metadata and a merge record naming both.",
    )
    parser.add_argument("first", help="a world: bundled name, folder or Hub repo")
    parser.add_argument("second", help="a world of the same architecture, tokenizer and event texts")
    parser.add_argument("--weight", type=float, required=True, help="the share of SECOND, in [0, 1]")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the merged world")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.weight <= 1.0:
        print(f"worldsim merge: error: --weight must be in [0, 1], got {args.weight}", file=sys.stderr)
        return 2
    if (args.out / "config.json").exists():
        print(f"worldsim merge: error: {args.out} already holds a world; choose a new --out", file=sys.stderr)
        return 2
    from worldsim.world import WorldModel

    try:  # a missing or broken checkpoint is a FileNotFoundError or a ValueError (hub.CheckpointError)
        first, second = WorldModel.from_pretrained(args.first), WorldModel.from_pretrained(args.second)
        merged = interpolate_worlds(first, second, args.weight, names=(str(args.first), str(args.second)))
    except (ValueError, FileNotFoundError) as error:
        print(f"worldsim merge: error: {error}", file=sys.stderr)
        return 2
    merged.save_pretrained(args.out)
    print(f"wrote {args.out}: {1 - args.weight:g} x {args.first} + {args.weight:g} x {args.second}")
    return 0
