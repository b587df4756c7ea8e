"""The Explorer reference world: the ground-truth game every generated frame is checked against.

`ExplorerBatch` is the batched numpy simulator (the core); `ExplorerEnv` is the Gymnasium env
registered as `worldsim/Explorer-v0` and `ExplorerVectorEnv` its vector entry point (all worlds
stepped as one batch); `events` holds the event vocabulary. The two env classes load on first use,
so the simulator, data generation and training run where Gymnasium is not installed.
"""
from typing import Any

from . import events
from .batch import ACTIONS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .terrain import TILE_CLASSES

_GYMNASIUM_CLASSES = {"ExplorerEnv": ".env", "ExplorerVectorEnv": ".vector"}


def __getattr__(name: str) -> Any:
    if name in _GYMNASIUM_CLASSES:
        import importlib

        return getattr(importlib.import_module(_GYMNASIUM_CLASSES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ACTIONS", "NUM_ACTIONS", "TILE_CLASSES", "ExplorerBatch", "ExplorerConfig", "ExplorerEnv", "ExplorerVectorEnv",
    "events",
]
