"""Env-steps per second of the neural world: the single env and the batched vector env.

    python benchmarks/bench_envs.py                       # CPU -> benchmarks/results/envs_cpu.json
    python benchmarks/bench_envs.py --device cuda         # GPU -> benchmarks/results/envs_cuda.json
    python benchmarks/bench_envs.py --batch-sizes 1 16 --repeats 3

The world is a randomly initialised model of the given preset ("compact" = the bundled world's size)
with a few start frames, as a trained checkpoint ships them. Speed does not depend on the weights,
except through episode ends: a random reward model ends most episodes at once, so the benchmark
world never terminates and episodes end by truncation after `--max-episode-steps`, as in a trained
world. Each figure is the median over `--repeats` timed runs of `--steps` env steps (after
`--warmup` steps) with random actions, in env-steps per wall second and per CPU second of this
process (on a shared machine the wall figure also measures the other tenants). Vector-env
observations are numpy arrays on the host, as an RL library receives them; `--array-type torch`
keeps them on the device. A batch size whose kv cache and activations would not fit in
`--max-memory-gb` is recorded as skipped, with the estimate.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import worldsim  # noqa: F401  (registers the environments)
from worldsim.bench import synchronizer
from worldsim.data.machine import describe_machine
from worldsim.data.atomic import atomic_write_json
from worldsim.model.config import WorldConfig
from worldsim.model.reward import NeverTerminates
from worldsim.world import WorldModel

RESULTS = Path(__file__).resolve().parent / "results"
EVENT_TEXTS = ["a sunny meadow", "night falls", "it starts snowing", "enemies appear"]


def time_steps(step: Callable[[], None], num_steps: int, sync: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for `num_steps` calls of `step()`, device drained."""
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(num_steps):
        step()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(step: Callable[[], None], env_steps_per_call: int, args: argparse.Namespace) -> dict[str, Any]:
    """Median env-steps per wall second (and per CPU second: on a shared machine the wall figure
    also measures the other tenants) over `args.repeats` runs after `args.warmup` steps."""
    sync = synchronizer(torch.device(args.device))
    time_steps(step, args.warmup, sync)
    runs = [time_steps(step, args.steps, sync) for _ in range(args.repeats)]
    env_steps = env_steps_per_call * args.steps
    return {
        "env_steps_per_s": env_steps / statistics.median(wall for wall, _ in runs),
        "env_steps_per_cpu_s": env_steps / statistics.median(cpu for _, cpu in runs),
        "wall_seconds": [round(wall, 4) for wall, _ in runs],
        "cpu_seconds": [round(cpu, 4) for _, cpu in runs],
    }


def bench_single(world: WorldModel, args: argparse.Namespace) -> dict[str, Any]:
    env = gym.make("worldsim/NeuralExplorer-v0", checkpoint=world, device=args.device,
                   max_episode_steps=args.max_episode_steps)
    env.reset(seed=0)
    env.action_space.seed(0)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()

    result = measure(step, 1, args)
    env.close()
    return result


def bench_vector(world: WorldModel, num_envs: int, args: argparse.Namespace) -> dict[str, Any]:
    envs = gym.make_vec("worldsim/NeuralExplorer-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                        checkpoint=world, device=args.device, max_episode_steps=args.max_episode_steps,
                        array_type=args.array_type)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        envs.step(rng.integers(envs.single_action_space.n, size=num_envs))

    result = measure(step, num_envs, args)
    envs.close()
    return result


def benchmark_world(preset: str, device: str) -> WorldModel:
    config = WorldConfig.preset(preset)
    size = config.image_size
    start_frames = np.random.default_rng(0).integers(0, 256, size=(8, size, size, 3), dtype=np.uint8)
    world = WorldModel.create(config, event_texts=EVENT_TEXTS, seed=0, device=device, context_frames=start_frames)
    world.reward_model = NeverTerminates(world.reward_model)
    return world


def memory_estimate_gb(world: WorldModel, num_envs: int) -> float:
    """The kv cache of `num_envs` rows, doubled for activations and the frames around it."""
    cache = world.transformer.new_cache(1, device=world.device, dtype=torch.float32)
    return 2 * num_envs * cache.nbytes() / 2**30


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    world = benchmark_world(args.preset, args.device)
    report: dict[str, Any] = {
        "benchmark": "env_steps_per_second",
        "preset": args.preset, "device": args.device, "array_type": args.array_type,
        "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
        "max_episode_steps": args.max_episode_steps, "machine": describe_machine(torch.device(args.device)),
        # The machine may be shared: its load says how much of it these figures had.
        "load_average_1m_before": os.getloadavg()[0],
        "single_env": bench_single(world, args), "vector_env": {},
    }
    print(f"single env: {report['single_env']['env_steps_per_s']:.1f} env-steps/s", flush=True)
    for num_envs in args.batch_sizes:
        estimate = memory_estimate_gb(world, num_envs)
        if estimate > args.max_memory_gb:
            reason = f"needs about {estimate:.1f} GB > --max-memory-gb {args.max_memory_gb}"
            result: dict[str, Any] = {"skipped": reason}
        else:
            result = bench_vector(world, num_envs, args)
        report["vector_env"][str(num_envs)] = result
        print(f"vector env B={num_envs}: {result.get('env_steps_per_s', result.get('skipped'))}", flush=True)
    report["load_average_1m_after"] = os.getloadavg()[0]
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="compact", help="model size (compact: the bundled explorer-64's)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 1024])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-episode-steps", type=int, default=200)
    parser.add_argument("--array-type", choices=["numpy", "torch"], default="numpy")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--max-memory-gb", type=float, default=8.0)
    parser.add_argument("--out", default=None, help="default: benchmarks/results/envs_<device type>.json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    report = run(args)
    out = Path(args.out or RESULTS / f"envs_{torch.device(args.device).type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
