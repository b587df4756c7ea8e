"""Shared test setup: headless pygame, a bounded number of torch threads, no network."""
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import torch  # noqa: E402

# Test models are tiny: one thread is as fast as two on an idle machine and far faster on a busy one
# (measured: a 128x32 linear layer took 0.06 ms with 1 thread, 23 ms with 2 under load 8).
torch.set_num_threads(1)

# tests/image_game.py is the suite's own recorded game, made by id ("tests.image_game:PaddleGame-v0"):
# the repository root must be importable, also when pytest runs as the `pytest` script.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
