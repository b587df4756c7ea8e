"""End-to-end dataset generation speed: `worldsim data generate` frames per second.

    python benchmarks/bench_datagen.py                      # -> benchmarks/results/datagen.json
    python benchmarks/bench_datagen.py --frames 65536 --workers 1 2 --repeats 5

Each run generates a fresh Explorer dataset (default settings: 64x64 frames, 8192-frame shards of
8 trajectories, compressed) into a temporary folder, timing everything `generate` does: worker
start-up, simulation, the exploration policy, compression, checksums, atomic writes and manifest
updates. The figure per worker count is the median over `--repeats` runs. Frames per CPU-second
(this process plus its workers) are reported too: on a machine shared with other work the wall
clock understates what the cores can do, the CPU time much less so. The per-stage split
(simulation vs. shard encoding) is measured in-process on one shard.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.atomic import atomic_write_bytes
from worldsim.data.generate import generate
from worldsim.data.shards import npz_bytes
from worldsim.envs.explorer.dataset import GenerateConfig, rollout_shard

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU model, cores, library versions and date: the figures mean nothing without them."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        cpu = names[0] if names else cpu
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch_version, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_1min_at_start": os.getloadavg()[0],  # other work sharing the cores
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_generate(config: GenerateConfig, workers: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one complete generation into a fresh folder."""
    with tempfile.TemporaryDirectory() as folder:
        start, start_cpu = time.perf_counter(), cpu_seconds()
        generate(Path(folder) / "dataset", config, workers=workers, progress=False)
        return time.perf_counter() - start, cpu_seconds() - start_cpu


def stage_split(config: GenerateConfig) -> dict[str, float]:
    """Frames per second of the two halves of a shard's cost, on one shard, in this process."""
    start = time.perf_counter()
    arrays = rollout_shard(config, 0)
    simulated = time.perf_counter()
    data = npz_bytes(arrays.as_dict(), compress=config.compress)
    encoded = time.perf_counter()
    frames = len(arrays)
    return {"simulate_frames_per_s": frames / (simulated - start),
            "encode_frames_per_s": frames / (encoded - simulated),
            "bytes_per_frame": len(data) / frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32768, help="frames per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "datagen.json")
    args = parser.parse_args()

    config = GenerateConfig(frames=args.frames)
    results = []
    for workers in args.workers:
        runs = [time_generate(config, workers) for _ in range(args.repeats)]
        wall = statistics.median(seconds for seconds, _ in runs)
        cpu = statistics.median(cpu_seconds for _, cpu_seconds in runs)
        results.append({"workers": workers, "median_seconds": wall,
                        "frames_per_s": args.frames / wall,
                        "frames_per_cpu_s": args.frames / cpu,
                        "runs_wall_cpu_seconds": runs})
        print(f"workers={workers}: {args.frames / wall:,.0f} frames/s wall, "
              f"{args.frames / cpu:,.0f} frames per CPU-second "
              f"(medians of {args.repeats} runs of {args.frames} frames)")
    report = {
        "benchmark": "datagen",
        "description": "end-to-end `worldsim data generate` (Explorer) frames per second",
        "machine": machine(),
        "settings": {"frames": args.frames, "repeats": args.repeats, **config.settings()},
        "results": results,
        "stages_one_shard": stage_split(config),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(report, indent=1) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
