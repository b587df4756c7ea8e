"""Gymnasium environments shipped with worldsim (installed as worldsim.envs).

`import worldsim` calls `register_envs()`; entry points are strings, so no env module is imported
until an env is made.
"""
from __future__ import annotations


def register_envs() -> None:
    """Register the shipped games' envs and the neural-world envs with Gymnasium (once)."""
    from gymnasium.envs.registration import register, registry

    if "worldsim/Explorer-v0" in registry:
        return
    register(
        id="worldsim/Explorer-v0",
        entry_point="worldsim.envs.explorer:ExplorerEnv",
        max_episode_steps=1000,
        vector_entry_point="worldsim.envs.explorer:ExplorerVectorEnv",
    )
    # Any trained world, with its own action space: gym.make("worldsim/Neural-v0", checkpoint=DIR).
    # NeuralExplorer-v0 is the same env whose checkpoint defaults to the bundled world.
    for env_id in ("worldsim/NeuralExplorer-v0", "worldsim/Neural-v0"):
        register(
            id=env_id,
            entry_point="worldsim.envs.neural:NeuralWorldEnv",
            max_episode_steps=1000,
            vector_entry_point="worldsim.envs.neural:NeuralWorldVectorEnv",
        )
