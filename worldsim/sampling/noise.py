"""Per-row, counter-based Gaussian noise.

Row i of a batch draws its noise from its own stream, a pure function of (seed_i, counter_i,
element index): a 32-bit integer hash turned into normals by Box-Muller. So

- the same seeds give the same noise on every run, every device (CPU and CUDA agree bit for bit
  on the integers; the floats to rounding) and under CUDA graphs (there is no generator state);
- a row's noise does not depend on which other rows share its batch, so a batch of simulators
  equals its members run alone (a shared `torch.Generator` would couple them through draw order).

The integer maths stays below 2**49 in int64 tensors, so it never relies on overflow behaviour.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.profiler import record_function

_MASK32 = 0xFFFFFFFF


def _mul32(x: Tensor, constant: int) -> Tensor:
    """(x * constant) mod 2**32 for uint32 values held in int64, split in 16-bit halves."""
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def hash32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer hash with good avalanche (Wellons' "lowbias32" constants)."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _unit_interval(bits: Tensor) -> Tensor:
    """uint32 hashes -> float32 uniforms strictly inside (0, 1), 24 bits of resolution."""
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def row_streams(seeds: Tensor, counters: Tensor) -> Tensor:
    """The 32-bit stream key of each row for its current draw: int64 [B]."""
    return hash32(hash32(seeds) + counters)


def gaussian_noise(seeds: Tensor, counters: Tensor, shape: Sequence[int]) -> Tensor:
    """Standard normal float32 noise [B, *shape]; row i depends only on (seeds[i], counters[i])."""
    numel = math.prod(shape)
    pairs = (numel + 1) // 2  # Box-Muller turns each pair of uniforms into two normals
    keys = row_streams(seeds, counters)[:, None]
    index = torch.arange(pairs, device=seeds.device, dtype=torch.int64)[None, :] * 2
    radius = torch.sqrt(-2.0 * torch.log(_unit_interval(hash32(keys + index))))
    angle = (2.0 * math.pi) * _unit_interval(hash32(keys + index + 1))
    normals = torch.cat((radius * torch.cos(angle), radius * torch.sin(angle)), dim=1)
    return normals[:, :numel].reshape(len(seeds), *shape)


def uniform_noise(seeds: Tensor, counters: Tensor) -> Tensor:
    """One float32 uniform in (0, 1) per row from the row's current draw: [B]."""
    return _unit_interval(hash32(row_streams(seeds, counters) ^ 0x5BD1E995))


def seeds_for_batch(seed: int | Sequence[int], batch_size: int) -> list[int]:
    """Row seeds: an int `s` gives `s, s+1, ...` (Gymnasium's vector convention), a list is taken as is."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an int or a list of {batch_size} ints, got {seed!r}")
    if isinstance(seed, int):
        return [seed + row for row in range(batch_size)]
    seeds = list(seed)
    if len(seeds) != batch_size or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seed must be an int or a list of {batch_size} ints, got {seed!r}")
    return seeds


class RowNoise:
    """The noise source of a batched sampler: each call draws once from every row's stream."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> None:
        self.seeds = _fold_seeds(seeds, device)
        self.counters = torch.zeros(len(self.seeds), dtype=torch.int64, device=device)

    def __call__(self, shape: Sequence[int], rows: Tensor | None = None) -> Tensor:
        """Noise [B, *shape] for all rows, or [n, *shape] for the rows selected by a bool mask."""
        selected = slice(None) if rows is None else rows
        with record_function("worldsim.noise"):  # a label for `worldsim bench --profile`
            noise = gaussian_noise(self.seeds[selected], self.counters[selected], shape)
        self.counters[selected] += 1
        return noise

    def uniform(self, rows: Tensor | None = None) -> Tensor:
        """One uniform per row (or per selected row), advancing those rows' counters."""
        selected = slice(None) if rows is None else rows
        values = uniform_noise(self.seeds[selected], self.counters[selected])
        self.counters[selected] += 1
        return values

    def reseed(self, rows: Tensor, seeds: Sequence[int]) -> None:
        """Restart the streams of the selected rows (bool mask [B]) from new seeds."""
        self.seeds[rows] = _fold_seeds(seeds, self.seeds.device)
        self.counters[rows] = 0


def _fold_seeds(seeds: Sequence[int], device: torch.device | str) -> Tensor:
    """Any Python ints -> int64 tensor of 32-bit seeds (the high bits are mixed in, not dropped)."""
    folded = [(seed ^ (seed >> 32)) & _MASK32 for seed in seeds]
    return torch.tensor(folded, dtype=torch.int64, device=device)
