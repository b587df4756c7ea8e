"""End-to-end dataset generation speed: `worldsim data generate` frames per second (DESIGN §9).

    python benchmarks/bench_datagen.py                      # -> benchmarks/results/datagen.json
    python benchmarks/bench_datagen.py --frames 65536 --workers 1 2 --repeats 3

Each run generates a fresh Explorer dataset (default settings: 64x64 frames, 8192-frame shards of
8 trajectories, compressed) into a temporary folder, timing everything `generate` does: worker
start-up, simulation, the exploration policy, compression, checksums, atomic writes and manifest
updates. The figure per worker count is the median over `--repeats` runs; the per-stage split
(simulation vs. shard encoding) is measured in-process on one shard.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.atomic import atomic_write_bytes
from worldsim.data.explorer_rollout import GenerateConfig, rollout_shard
from worldsim.data.generate import generate
from worldsim.data.shards import npz_bytes

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


def time_generate(config: GenerateConfig, workers: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        generate(Path(folder) / "dataset", config, workers=workers, progress=False)
        return time.perf_counter() - start


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
    parser.add_argument("--frames", type=int, default=65536, help="frames per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "datagen.json")
    args = parser.parse_args()

    config = GenerateConfig(frames=args.frames)
    results = []
    for workers in args.workers:
        seconds = [time_generate(config, workers) for _ in range(args.repeats)]
        median = statistics.median(seconds)
        results.append({"workers": workers, "median_seconds": median,
                        "frames_per_s": args.frames / median, "runs_seconds": seconds})
        print(f"workers={workers}: {args.frames / median:,.0f} frames/s "
              f"(median of {args.repeats} runs of {args.frames} frames)")
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
