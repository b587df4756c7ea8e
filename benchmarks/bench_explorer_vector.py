"""Env-steps per second of the real Explorer as a Gymnasium vector env.

    python benchmarks/bench_explorer_vector.py     # -> benchmarks/results/explorer_vector_env.json
    python benchmarks/bench_explorer_vector.py --batch-sizes 256 --repeats 5

`gym.make_vec("worldsim/Explorer-v0", num_envs=B, vectorization_mode=MODE)` stepped with random
actions (episodes end and autoreset as they come, max_episode_steps 1000), for the batched
`vector_entry_point` (`ExplorerVectorEnv`, numpy over the whole batch) and, as the baseline, `sync`
(`SyncVectorEnv` over B single envs). One env-step = one env advancing once with its frame and its
info. Each figure is the median of `--repeats` runs of at least `--min-seconds`, after a warm-up;
`env_steps_per_cpu_s` uses this process's CPU time, which other work on the machine inflates less
than the wall clock (the load average is recorded). The env is single-threaded numpy: one process
uses one core.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import worldsim  # noqa: F401  (registers the environments)
from worldsim.data.machine import cpu_model
from worldsim.data.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),  # other work sharing the cores
        "numpy_version": np.__version__,
        "gymnasium_version": version("gymnasium"),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def timed_steps(envs: gym.vector.VectorEnv, rng: np.random.Generator, steps: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of `steps` vector steps with random actions."""
    actions = rng.integers(0, 5, (steps, envs.num_envs))
    wall, cpu = time.perf_counter(), time.process_time()
    for step_actions in actions:
        envs.step(step_actions)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(mode: str, batch_size: int, repeats: int, min_seconds: float) -> dict[str, Any]:
    envs = gym.make_vec("worldsim/Explorer-v0", num_envs=batch_size, vectorization_mode=mode)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    warm_wall, _ = timed_steps(envs, rng, 5)
    steps = max(5, int(min_seconds / max(warm_wall / 5, 1e-6)))
    walls, cpus = zip(*(timed_steps(envs, rng, steps) for _ in range(repeats)))
    envs.close()
    rates = [batch_size * steps / wall for wall in walls]
    return {
        "mode": mode,
        "batch_size": batch_size,
        "steps_per_run": steps,
        "env_steps_per_s": round(statistics.median(rates), 1),
        "env_steps_per_s_runs": [round(rate, 1) for rate in rates],
        "env_steps_per_cpu_s": round(statistics.median(batch_size * steps / cpu for cpu in cpus), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256])
    parser.add_argument("--modes", nargs="+", default=["vector_entry_point", "sync"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--out", default=str(RESULTS / "explorer_vector_env.json"))
    args = parser.parse_args()
    record = {"benchmark": "explorer_vector_env", "machine": machine(), "settings": vars(args), "results": []}
    for batch_size in args.batch_sizes:
        for mode in args.modes:
            result = measure(mode, batch_size, args.repeats, args.min_seconds)
            print(json.dumps(result), flush=True)
            record["results"].append(result)
    record["machine"]["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    atomic_write_json(args.out, record)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
