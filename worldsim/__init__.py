"""worldsim: a learned video generator as a playable, trainable game engine.

`import worldsim` registers the Gymnasium environments and exposes `worldsim.load`; torch-heavy
modules are imported only when used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from worldsim.world import WorldModel


def load(name_or_path: str | None = None, device: str = "cpu", **kwargs: Any) -> "WorldModel":
    """Load a world: bundled name, local folder or Hub repo id (see `WorldModel.from_pretrained`)."""
    from worldsim.world import WorldModel

    return WorldModel.from_pretrained(name_or_path, device=device, **kwargs)


def _register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    if "worldsim/Explorer-v0" in registry:
        return
    register(id="worldsim/Explorer-v0", entry_point="worldsim.envs.explorer:ExplorerEnv", max_episode_steps=1000)
    register(
        id="worldsim/NeuralExplorer-v0",
        entry_point="worldsim.envs.neural:NeuralWorldEnv",
        max_episode_steps=1000,
        vector_entry_point="worldsim.envs.neural:NeuralWorldVectorEnv",
    )


_register_envs()
