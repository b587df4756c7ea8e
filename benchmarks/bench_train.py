"""Training throughput per stage (samples/s) on this machine, and the tiny recipe's stage timings.

    python benchmarks/bench_train.py                       # tiny stages, 32 px; writes train_cpu.json
    python benchmarks/bench_train.py --size small --image-size 64 --steps 1 --repeats 2 --batch-size 2 \
        --stages autoencoder,teacher,ar-teacher,causal-cd,dmd,reward --out benchmarks/results/train_cpu_small.json
    python benchmarks/bench_train.py --recipe              # also time `worldsim train recipe --size tiny`

Each stage is built exactly as `worldsim train` builds it (the recipe preset's batch sizes and
lengths), on a freshly generated dataset and freshly initialised worlds (throughput does not
depend on the weights). After one warm-up step, `--steps` steps are timed, `--repeats` times;
the JSON holds the median samples/s and seconds per step, with the machine described. A
"sample" is what the stage's step consumes: an image (autoencoder), a clip (teacher, ar-teacher,
causal-cd), a rollout (dmd, rolling), a chunk window (stream, delta) or a K-frame window (reward).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worldsim.training.checkpoint import atomic_write_json  # noqa: E402
from worldsim.training.common import world_config_for  # noqa: E402
from worldsim.training.distributed import DistributedContext  # noqa: E402
from worldsim.training.event_conditioning import training_texts_for  # noqa: E402
from worldsim.training.recipe import RECIPE_STAGES, USES_TEACHER, build_recipe_config, run_recipe  # noqa: E402
from worldsim.training.stages import stage_classes  # noqa: E402
from worldsim.training.trainer import seed_everything  # noqa: E402


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "load_average_1min_at_start": os.getloadavg()[0],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def make_inputs(folder: Path, size: str, image_size: int) -> tuple[str, str]:
    """A small generated dataset and a random world of `size` for its frames."""
    from worldsim.data import Dataset
    from worldsim.data.generate import generate
    from worldsim.envs.explorer.dataset import GenerateConfig
    from worldsim.world import WorldModel

    data = folder / "data"
    generate(data, GenerateConfig(frames=2048, seed=0, size=image_size, shard_frames=2048), progress=False)
    texts = training_texts_for(Dataset(data).event_texts, "explorer")
    world = WorldModel.create(world_config_for(size, image_size), texts, seed=0).save_pretrained(folder / "world")
    return str(data), str(world)


def bench_stage(stage: str, field_name: str, recipe, data: str, world: str, steps: int, repeats: int,
                batch_size: int | None) -> dict:
    config_class, stage_class = stage_classes(stage)
    values = dict(data=data, progress=False, device="cpu")
    if batch_size is not None:
        values["batch_size"] = batch_size
    values.update(size=recipe.size) if stage == "autoencoder" else values.update(init=world)
    if stage in USES_TEACHER:
        values["teacher"] = world
    config = dataclasses.replace(getattr(recipe, field_name), **values)
    config.validate()
    seed_everything(0)
    instance = stage_class(config, DistributedContext())
    instance.train_step(0)  # warm-up: first-call allocations, lazy imports
    seconds = []
    for repeat in range(repeats):
        started = time.perf_counter()
        for step in range(1 + repeat * steps, 1 + (repeat + 1) * steps):
            instance.train_step(step)
        seconds.append((time.perf_counter() - started) / steps)
    per_step = statistics.median(seconds)
    return {"samples_per_step": instance.samples_per_step, "seconds_per_step": round(per_step, 4),
            "samples_per_s": round(instance.samples_per_step / per_step, 2),
            "batch_size": config.batch_size, "repeats": repeats, "steps_per_repeat": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=["tiny", "compact", "small", "base"])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny models are fastest on 1)")
    parser.add_argument("--batch-size", type=int, help="override every stage's batch size")
    parser.add_argument("--stages", help="comma-separated stages to time (default: all)")
    parser.add_argument("--recipe", action="store_true", help="also run the tiny recipe and record stage timings")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "train_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = build_recipe_config(None, [f"size={args.size}", f"image_size={args.image_size}", "progress=false"])
    chosen = args.stages.split(",") if args.stages else [stage for stage, _ in RECIPE_STAGES]
    result = {"benchmark": "train", "machine": machine(),
              "settings": {"size": args.size, "image_size": args.image_size, "device": "cpu",
                           "batch_size_override": args.batch_size}, "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data, world = make_inputs(Path(tmp), args.size, args.image_size)
        for stage, field_name in RECIPE_STAGES:
            if stage not in chosen:
                continue
            result["stages"][stage] = bench_stage(stage, field_name, recipe, data, world, args.steps, args.repeats,
                                                  args.batch_size)
            print(stage, result["stages"][stage], flush=True)
            atomic_write_json(Path(args.out), result)  # keep what is measured if a later stage is cut short
        if args.recipe:
            tiny = build_recipe_config(None, ["size=tiny", "progress=false"])
            run = run_recipe(tiny, Path(tmp) / "recipe")
            result["tiny_recipe"] = {
                "command": "worldsim train recipe --size tiny",
                "stage_wall_time_s": {r["stage"]: r["wall_time_s"] for r in run.stages},
                "stage_loss_first_last": {r["stage"]: [r["first_loss"], r["last_loss"]] for r in run.stages},
                "train_wall_time_s": run.wall_time_s,
            }
            print(result["tiny_recipe"], flush=True)
    atomic_write_json(Path(args.out), result)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
