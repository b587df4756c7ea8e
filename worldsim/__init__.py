"""worldsim: a learned video generator as a playable, trainable game engine.

`import worldsim` registers the Gymnasium environments and exposes `worldsim.load`; torch-heavy
modules are imported only when used.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from worldsim.world import WorldModel


def load(
    name_or_path: str | os.PathLike | None = None,
    device: str = "cpu",
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    token: str | bool | None = None,
    force_download: bool = False,
    local_files_only: bool | None = None,
    check_finite: bool = False,
) -> "WorldModel":
    """Load a world: bundled name, local folder or Hub repo id (None: the bundled explorer-64).

    The Hub arguments are huggingface_hub's: `revision` (branch, tag or commit), `cache_dir`,
    `token`, `force_download`, `local_files_only` (None: follow HF_HUB_OFFLINE).
    `check_finite=True` also rejects NaN or infinite weights. See `WorldModel.from_pretrained`.
    """
    from worldsim.world import WorldModel

    return WorldModel.from_pretrained(
        name_or_path, device=device, revision=revision, cache_dir=cache_dir, token=token,
        force_download=force_download, local_files_only=local_files_only, check_finite=check_finite,
    )  # fmt: skip


def _register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    if "worldsim/Explorer-v0" in registry:
        return
    register(
        id="worldsim/Explorer-v0",
        entry_point="worldsim.envs.explorer:ExplorerEnv",
        max_episode_steps=1000,
        vector_entry_point="worldsim.envs.explorer:ExplorerVectorEnv",
    )
    register(
        id="worldsim/NeuralExplorer-v0",
        entry_point="worldsim.envs.neural:NeuralWorldEnv",
        max_episode_steps=1000,
        vector_entry_point="worldsim.envs.neural:NeuralWorldVectorEnv",
    )


_register_envs()
