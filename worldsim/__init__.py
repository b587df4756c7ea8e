"""worldsim: a learned video generator as a playable, trainable game engine.

`import worldsim` registers the Gymnasium environments (`worldsim.envs.register_envs`, where
Gymnasium is installed) and exposes `worldsim.load`; torch-heavy modules are imported only when used.
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


def _bind_envs_beside() -> None:
    """Make `worldsim.envs` the `envs/` folder beside this `worldsim` package in a source checkout.

    An editable install maps `worldsim.envs` to its own checkout's `envs/` through an import hook.
    Running another checkout's code (its folder first on sys.path) would then mix that checkout's
    `worldsim` with the installed checkout's `worldsim.envs`; binding the sibling folder here keeps
    the two from one tree. An installed wheel has `worldsim/envs/` inside the package: nothing to do.
    """
    import importlib.util
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parent
    sibling = package.parent / "envs" / "__init__.py"
    if "worldsim.envs" in sys.modules or (package / "envs").is_dir() or not sibling.is_file():
        return
    spec = importlib.util.spec_from_file_location("worldsim.envs", sibling,
                                                  submodule_search_locations=[str(sibling.parent)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["worldsim.envs"] = module
    spec.loader.exec_module(module)
    globals()["envs"] = module


def _register_envs() -> None:
    from worldsim.envs import register_envs

    try:
        register_envs()
    except ModuleNotFoundError as error:
        # Training, data and evaluation need no Gymnasium: on a machine without it (a GPU box
        # with only torch) the package imports and only the envs are unavailable.
        if (error.name or "").split(".")[0] != "gymnasium":
            raise


_bind_envs_beside()
_register_envs()
