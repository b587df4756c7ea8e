"""Shared test setup: headless pygame, a bounded number of torch threads, no network."""
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import torch  # noqa: E402

# CI has 2 cores; more threads than cores only slows small test models down.
torch.set_num_threads(min(2, os.cpu_count() or 1))
