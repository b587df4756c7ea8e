"""Frames per second of two worlds in one process, alternating rounds (batch 1, decode included).

    python side_by_side_fps.py WORLD_A WORLD_B --threads 2 --out RESULT.json

Each round steps one Simulator per world 60 frames (actions cycling through the four moves), after
20 warm-up frames each; the worlds take turns, so machine load falls on both alike.
"""
import argparse
import json
import statistics
import time

import torch

import worldsim
from worldsim.data.machine import describe_machine


def frames_per_second(simulator, frames: int) -> float:
    start = time.perf_counter()
    for index in range(frames):
        simulator.step(torch.tensor([1 + index % 4]))
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("worlds", nargs=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    simulators = {}
    for name in args.worlds:
        simulator = worldsim.load(name).simulator(batch_size=1, seed=0)
        simulator.reset()
        simulators[name] = simulator
    runs: dict[str, list[float]] = {name: [] for name in simulators}
    with torch.inference_mode():
        for simulator in simulators.values():
            frames_per_second(simulator, 20)
        for _ in range(args.rounds):
            for name, simulator in simulators.items():
                runs[name].append(round(frames_per_second(simulator, args.frames), 1))
    result = {"threads": args.threads, "frames_per_round": args.frames, "machine": describe_machine(torch.device("cpu")),
              "worlds": {name: {"fps_median": statistics.median(values), "fps_rounds": values}
                         for name, values in runs.items()}}
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(json.dumps(result["worlds"]))


if __name__ == "__main__":
    main()
