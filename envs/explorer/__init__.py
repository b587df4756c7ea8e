"""The Explorer reference world: the ground-truth game every generated frame is checked against.

`ExplorerBatch` is the batched numpy simulator (the core); `ExplorerEnv` is the Gymnasium env
registered as `worldsim/Explorer-v0`; `events` holds the event vocabulary.
"""
from . import events
from .batch import ACTIONS, NUM_ACTIONS, ExplorerBatch, ExplorerConfig
from .env import ExplorerEnv
from .terrain import TILE_CLASSES

__all__ = [
    "ACTIONS", "NUM_ACTIONS", "TILE_CLASSES", "ExplorerBatch", "ExplorerConfig", "ExplorerEnv", "events",
]
