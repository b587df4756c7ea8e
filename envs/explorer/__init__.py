"""The Explorer reference world: the ground-truth game every generated frame is checked against.

`ExplorerBatch` is the batched numpy simulator (the core); `ExplorerEnv` is the Gymnasium env
registered as `worldsim/Explorer-v0` and `ExplorerVectorEnv` its vector entry point (all worlds
stepped as one batch); `events` holds the event vocabulary.
"""
from . import events
from .batch import ACTIONS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .env import ExplorerEnv
from .terrain import TILE_CLASSES
from .vector import ExplorerVectorEnv

__all__ = [
    "ACTIONS", "NUM_ACTIONS", "TILE_CLASSES", "ExplorerBatch", "ExplorerConfig", "ExplorerEnv", "ExplorerVectorEnv",
    "events",
]
