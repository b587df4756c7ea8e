"""Explorer simulation speed: frames per second of `ExplorerBatch` (step + render).

    python benchmarks/bench_explorer.py          # -> benchmarks/results/explorer_sim.json
    python benchmarks/bench_explorer.py --batch-sizes 1 256 --repeats 9

One frame = one world stepping once and rendering its 64x64 frame, the way a data generator or
an RL loop uses the simulator: random actions, terminated worlds reset in place. Two scenarios:
`base` (no events) and `events` (every world under random events of every group, re-drawn for
about 1% of the worlds each step, so night, rain, snow, fog, eruptions and coin showers all show
up). Each figure is the median of `--repeats` timed runs of at least `--min-frames` frames each,
after a warm-up run: `frames_per_s` by the wall clock and `frames_per_cpu_s` by this process's CPU
time (which other work sharing the cores inflates much less; the load average is recorded).
The B=256 `profile` splits a step into the rules, the view (map generation and objects of the
visible tiles) and the frames (rendering) to show what limits the speed. The simulator is
single-threaded numpy, so one process uses one core; `parallel` runs `--processes` of them side
by side (2 cores -> 2).
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.envs.explorer import NUM_ACTIONS, ExplorerBatch, ExplorerConfig, events
from worldsim.data.machine import cpu_model
from worldsim.data.atomic import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "results"
SWITCH_SHARE = 0.01


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average_1min_at_start": os.getloadavg()[0],  # other work sharing the cores
        "torch_version": version("torch"),
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def random_events(rng: np.random.Generator, count: int) -> list[events.EventType]:
    return [events.EVENT_TYPES[i] for i in rng.integers(0, len(events.EVENT_TYPES), count)]


def run(sim: ExplorerBatch, rng: np.random.Generator, steps: int, with_events: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `steps` batched steps + renders, resets
    and event switches included."""
    actions = rng.integers(0, NUM_ACTIONS, (steps, sim.num_envs))
    switches = rng.random((steps, sim.num_envs)) < SWITCH_SHARE
    start, start_cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        if with_events and switches[step].any():
            sim.apply_events([event if switch else None for event, switch
                              in zip(random_events(rng, sim.num_envs), switches[step])])
        _, terminated = sim.step(actions[step])
        sim.render()
        if terminated.any():
            sim.reset(rng.integers(0, 2**40, sim.num_envs), mask=terminated)
    return time.perf_counter() - start, time.process_time() - start_cpu


def measure(batch: int, with_events: bool, repeats: int, min_frames: int, size: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    sim = ExplorerBatch(batch, ExplorerConfig(size=size), seed=0)
    if with_events:
        for _ in range(len(events.GROUPS) * 2):  # several events of every group at once
            sim.apply_events(random_events(rng, batch))
    steps = max(20, -(-min_frames // batch))
    run(sim, rng, steps, with_events)  # warm-up: style tables, caches
    timings = [run(sim, rng, steps, with_events) for _ in range(repeats)]
    runs = [batch * steps / wall for wall, _ in timings]
    cpu_runs = [batch * steps / cpu for _, cpu in timings]
    return {"batch_size": batch, "scenario": "events" if with_events else "base",
            "frames_per_run": batch * steps, "frames_per_s": statistics.median(runs),
            "frames_per_s_runs": runs, "frames_per_cpu_s": statistics.median(cpu_runs),
            "frames_per_cpu_s_runs": cpu_runs}


def _worker_rate(args: tuple[int, int, int, int]) -> float:
    batch, repeats, min_frames, size = args
    return measure(batch, True, repeats, min_frames, size)["frames_per_s"]


def parallel(batch: int, processes: int, repeats: int, min_frames: int, size: int) -> dict[str, Any]:
    """Total frames/s of `processes` simulator processes running side by side (one per core)."""
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        rates = pool.map(_worker_rate, [(batch, repeats, min_frames, size)] * processes)
    return {"batch_size": batch, "scenario": "events", "processes": processes,
            "frames_per_s_total": sum(rates), "frames_per_s_each": rates}


def profile(batch: int, repeats: int, size: int) -> dict[str, float]:
    """Median CPU milliseconds per batched step of each stage, under random events.

    A step applies the rules on the player's 7x7 neighbourhood; the view (map window of the
    visible tiles plus margin, coins, enemies, classes) is computed once when first asked for;
    then the frames are one table gather. Stages are timed cumulatively and differenced.
    """
    rng = np.random.default_rng(1)
    sim = ExplorerBatch(batch, ExplorerConfig(size=size), seed=0)
    sim.apply_events(random_events(rng, batch))
    noop = np.zeros(batch, dtype=np.int64)
    stages = {
        "step": lambda: sim.step(noop),
        "step + view": lambda: (sim.step(noop), sim.tile_classes()),
        "step + view + frames": lambda: (sim.step(noop), sim.render()),
    }
    cumulative = {}
    for name, call in stages.items():
        call()
        timings = []
        for _ in range(repeats):
            start = time.process_time()
            for _ in range(20):
                call()
            timings.append((time.process_time() - start) / 20 * 1000)
        cumulative[name] = statistics.median(timings)
    return {
        "rules_cpu_ms": cumulative["step"],
        "view_cpu_ms": cumulative["step + view"] - cumulative["step"],
        "frames_cpu_ms": cumulative["step + view + frames"] - cumulative["step + view"],
        "total_cpu_ms": cumulative["step + view + frames"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-frames", type=int, default=20000, help="frames per timed run")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="also run B=256 in this many processes")
    parser.add_argument("--out", type=Path, default=RESULTS / "explorer_sim.json")
    args = parser.parse_args()

    result: dict[str, Any] = {"benchmark": "explorer_sim", "machine": machine(),
                              "settings": {**vars(args), "out": str(args.out)}, "results": []}
    for with_events in (False, True):
        for batch in args.batch_sizes:
            row = measure(batch, with_events, args.repeats, args.min_frames, args.size)
            result["results"].append(row)
            print(f"{row['scenario']:>6}  B={batch:<5d} {row['frames_per_s']:>10,.0f} frames/s"
                  f"  ({row['frames_per_cpu_s']:,.0f} per CPU second)")
    if args.processes > 1:
        result["parallel"] = parallel(256, args.processes, args.repeats, args.min_frames, args.size)
        print(f"events  B=256 x {args.processes} processes "
              f"{result['parallel']['frames_per_s_total']:>10,.0f} frames/s in total")
    result["profile_b256"] = profile(256, args.repeats, args.size)
    print("profile (B=256):", {k: round(v, 2) for k, v in result["profile_b256"].items()})
    atomic_write_bytes(args.out, (json.dumps(result, indent=2) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
