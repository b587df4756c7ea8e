"""`worldsim bench`: speed figures of a world, as JSON with the machine described.

    worldsim bench --checkpoint explorer-64 --device cpu --out benchmarks/results/bench_cpu.json
    worldsim bench --checkpoint explorer-64 --device cuda --batch-sizes 1,16,256,1024

Figures (every one the median of `--repeats` runs, each run listed too):
- `fps_batch1`: steady frames per second of one env, decoding included, with the window full
  (and `cpu_ms_per_frame_batch1`, the process CPU time per frame: load-independent with 1 thread);
- `first_frame_latency_ms`: a reset at batch 1 until its frame is on the host;
- `action_to_frame_latency_ms`: one `step` at batch 1 until its frame is on the host (median, p90);
- `batched`: frames (env steps) per second of a B-env simulator for each B.
`--profile` adds the operators that take the most time in steady batch-1 stepping.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worldsim.data.atomic import atomic_write_json
from worldsim.data.machine import describe_machine
from worldsim.runtime import add_threads_argument, check_device, check_output_folder, set_threads

if TYPE_CHECKING:
    import torch

    from worldsim.world import WorldModel

BENCH_EVENT = "a sunny meadow"
DEFAULT_BATCH_SIZES = {"cpu": (1, 4, 16, 64), "cuda": (1, 16, 256, 1024)}


@dataclass
class BenchSettings:
    batch_sizes: Sequence[int] = (1, 4, 16, 64)
    frames: int = 60  # steady frames per timed batch-1 run
    repeats: int = 5
    min_batched_seconds: float = 1.0  # each batched run lasts at least this long
    steps: int | None = None  # denoising steps (default: the world's config)
    sampler: str = "frame"  # or "rolling"
    compile: bool | None = None  # None: on CUDA only
    seed: int = 0

    def simulator(self, world: "WorldModel", batch_size: int):
        return world.simulator(
            batch_size=batch_size, seed=self.seed, steps=self.steps, sampler=self.sampler, compile=self.compile
        )


@dataclass
class BenchResult:
    machine: dict[str, Any]
    world: dict[str, Any]
    settings: dict[str, Any]
    fps_batch1: float = 0.0
    fps_batch1_runs: list[float] = field(default_factory=list)
    cpu_ms_per_frame_batch1: float = 0.0
    first_frame_latency_ms: dict[str, Any] = field(default_factory=dict)
    action_to_frame_latency_ms: dict[str, Any] = field(default_factory=dict)
    batched: list[dict[str, Any]] = field(default_factory=list)
    profile: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Machine and timing


def synchronizer(device: "torch.device") -> Callable[[], None]:
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_call(call: Callable[[], Any], sync: Callable[[], None]) -> float:
    """Seconds one call takes, the device drained before and after."""
    sync()
    start = time.perf_counter()
    call()
    sync()
    return time.perf_counter() - start


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    ordered = sorted(seconds)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "median": 1000 * statistics.median(ordered),
        "p90": 1000 * p90,
        "runs": [round(1000 * s, 3) for s in seconds],
    }


# ----------------------------------------------------------------------------------------------
# Measurements


def _steady_simulator(world: "WorldModel", batch_size: int, settings: BenchSettings):
    """A simulator past reset with its cache window full (the steady state of long play)."""
    sim = settings.simulator(world, batch_size)
    sim.reset(event=BENCH_EVENT)
    actions = [0] * batch_size
    for _ in range(sim.cache.capacity + 2):
        sim.step(actions)
    return sim, actions


def measure_batch1(world: "WorldModel", settings: BenchSettings, result: BenchResult, sync) -> None:
    sim = settings.simulator(world, 1)
    resets = [time_call(lambda: sim.reset(event=BENCH_EVENT).cpu(), sync) for _ in range(settings.repeats)]
    result.first_frame_latency_ms = summary_ms(resets)
    result.first_frame_latency_ms["source"] = "context frame" if len(world.context_frames) else "generated"
    sim, actions = _steady_simulator(world, 1, settings)
    steps = [time_call(lambda: sim.step(actions)[0].cpu(), sync) for _ in range(settings.frames)]
    result.action_to_frame_latency_ms = summary_ms(steps)
    runs, cpu_seconds = [], []
    for _ in range(settings.repeats):
        cpu_start = time.process_time()
        seconds = time_call(lambda: [sim.step(actions) for _ in range(settings.frames)], sync)
        cpu_seconds.append((time.process_time() - cpu_start) / settings.frames)
        runs.append(settings.frames / seconds)
    result.fps_batch1_runs = [round(fps, 2) for fps in runs]
    result.fps_batch1 = statistics.median(runs)
    # CPU time the process used per frame (all its threads): with one thread, 1000 / this is
    # the frame rate the code reaches on a core of its own, whatever else the machine runs.
    result.cpu_ms_per_frame_batch1 = 1000 * statistics.median(cpu_seconds)


def measure_batched(world: "WorldModel", settings: BenchSettings, result: BenchResult, sync) -> None:
    for batch_size in settings.batch_sizes:
        sim, actions = _steady_simulator(world, batch_size, settings)
        step_seconds = time_call(lambda: sim.step(actions), sync)
        steps_per_run = max(1, int(settings.min_batched_seconds / max(step_seconds, 1e-6)))
        runs = []
        for _ in range(settings.repeats):
            seconds = time_call(lambda: [sim.step(actions) for _ in range(steps_per_run)], sync)
            runs.append(batch_size * steps_per_run / seconds)
        result.batched.append({
            "batch_size": batch_size,
            "env_steps_per_second": statistics.median(runs),
            "runs": [round(r, 1) for r in runs],
            "steps_per_run": steps_per_run,
        })  # fmt: skip
        del sim


def measure_profile(world: "WorldModel", settings: BenchSettings, result: BenchResult, top: int = 15) -> None:
    """Where steady batch-1 stepping spends its time: worldsim's own stages, then the slowest operators.

    The stages are the `worldsim.*` labels the samplers put around transformer passes, decoding,
    the reward model and noise; "step (total)" is the whole `Simulator.step`.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    sim, actions = _steady_simulator(world, 1, settings)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if sim.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(settings.frames):
            with record_function("worldsim.step (total)"):
                sim.step(actions)
    events = list(prof.key_averages())
    per_frame = settings.frames
    result.profile = [
        {"stage": e.key, "cpu_ms_per_frame": round(e.cpu_time_total / 1000 / per_frame, 3),
         "calls_per_frame": round(e.count / per_frame, 2)}
        for e in sorted(events, key=lambda e: e.cpu_time_total, reverse=True)
        if e.key.startswith("worldsim.")
    ]  # fmt: skip
    operators = sorted((e for e in events if not e.key.startswith("worldsim.")),
                       key=lambda e: e.self_cpu_time_total, reverse=True)  # fmt: skip
    total = sum(e.self_cpu_time_total for e in operators) or 1.0
    result.profile += [
        {"op": e.key, "self_cpu_ms_per_frame": round(e.self_cpu_time_total / 1000 / per_frame, 3),
         "share": round(e.self_cpu_time_total / total, 3), "calls_per_frame": round(e.count / per_frame, 1)}
        for e in operators[:top]
    ]  # fmt: skip


def run_bench(world: "WorldModel", settings: BenchSettings, source: str, profile: bool = False) -> BenchResult:
    device = world.device
    sync = synchronizer(device)
    config = world.config
    result = BenchResult(
        machine=describe_machine(device),
        world={
            "source": source,
            "parameters": world.parameter_counts(),
            "image_size": config.image_size,
            "tokens_per_frame": config.transformer.tokens_per_frame,
            "steps": settings.steps or config.sampling.num_steps,
            "first_frame_steps": config.sampling.first_frame_steps,
            "cache_frames": config.transformer.sink_frames + config.transformer.window_frames,
        },
        settings=asdict(settings),
    )
    measure_batch1(world, settings, result, sync)
    measure_batched(world, settings, result, sync)
    if profile:
        measure_profile(world, settings, result)
    if hasattr(os, "getloadavg"):
        result.machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    result.world["compiled"] = world.compiled
    result.world["bf16"] = device.type == "cuda"
    return result


# ----------------------------------------------------------------------------------------------
# Command line


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure FPS, latencies and batched env-steps/s of a world (JSON)",
        description=__doc__.split("\n\n")[0],
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", default=None, help="bundled name, local folder or Hub repo id")
    parser.add_argument("--revision", default=None, help="Hub branch, tag or commit of a Hub repo id")
    source.add_argument("--preset", default=None, help="random weights of a preset size: tiny, compact, small, base")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated, default 1,4,16,64 (cpu) / 1,16,256,1024 (cuda)")
    parser.add_argument("--frames", type=int, default=60, help="frames per timed batch-1 run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps per frame (default: the config's)")
    parser.add_argument("--sampler", choices=("frame", "rolling"), default="frame")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile the hot paths (auto: on CUDA only)")  # fmt: skip
    add_threads_argument(parser)
    parser.add_argument("--profile", action="store_true", help="add the slowest operators of batch-1 stepping")
    parser.add_argument("--out", default=None, help="write the JSON here as well as to stdout")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import torch

    from worldsim.model import WorldConfig
    from worldsim.world import WorldModel

    try:
        set_threads(args.threads)
        device = torch.device(check_device(args.device))
        if args.out:
            check_output_folder(Path(args.out).parent)  # created when missing, after the measurements
        if args.revision is not None and args.preset is not None:
            raise ValueError("--revision picks a Hub checkpoint; --preset builds random weights")
        sizes = args.batch_sizes or ",".join(map(str, DEFAULT_BATCH_SIZES.get(device.type, (1,))))
        batch_sizes = [int(size) for size in sizes.split(",")]
        if min(batch_sizes) < 1 or args.frames < 1 or args.repeats < 1:
            raise ValueError("--batch-sizes, --frames and --repeats must be positive")
        if args.preset is not None:
            world = WorldModel.create(WorldConfig.preset(args.preset), [BENCH_EVENT], seed=0, device=device)
            source = f"preset {args.preset} (random weights)"
        else:
            world = WorldModel.from_pretrained(args.checkpoint, device=device, revision=args.revision)
            source = args.checkpoint or "default world"
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"worldsim bench: error: {error}", file=sys.stderr)
        return 2
    compile_choice = {"auto": None, "on": True, "off": False}[args.compile]
    settings = BenchSettings(
        batch_sizes=batch_sizes, frames=args.frames, repeats=args.repeats, steps=args.steps,
        sampler=args.sampler, compile=compile_choice,
    )  # fmt: skip
    result = run_bench(world, settings, source, profile=args.profile)
    record = asdict(result)
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, record)
    return 0
