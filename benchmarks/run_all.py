"""Run every benchmark in turn (`make bench`); each writes its JSON to benchmarks/results/.

    python benchmarks/run_all.py                 # CPU figures
    python benchmarks/run_all.py --device cuda   # GPU figures for the model and the envs too

Benchmarks run one after another, never beside each other, so that they do not share the cores.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"


def commands(device: str) -> list[list[str]]:
    python = sys.executable
    suffix = "cpu" if device == "cpu" else "cuda"
    return [
        [python, str(BENCHMARKS / "bench_explorer.py")],
        [python, str(BENCHMARKS / "bench_explorer_vector.py")],
        [python, str(BENCHMARKS / "bench_datagen.py")],
        [python, "-m", "worldsim.cli", "bench", "--checkpoint", "explorer-64", "--device", device,
         "--out", str(RESULTS / f"bench_{suffix}.json")],
        [python, str(BENCHMARKS / "bench_envs.py"), "--device", device, "--preset", "compact"],
        [python, str(BENCHMARKS / "bench_train.py")],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    for command in commands(args.device):
        print("$", " ".join(command), flush=True)
        if subprocess.call(command) != 0:
            print(f"benchmark failed: {command[1]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
