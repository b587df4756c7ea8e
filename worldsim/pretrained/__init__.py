"""Bundled worlds: checkpoint folders shipped inside the package, addressed by a short name.

Each bundled world is a Hub-compatible folder `worldsim/pretrained/<name>/` (config.json, tokenizer.json,
*.safetensors, README.md), so `worldsim.load("explorer-64")` and `worldsim.load("org/explorer-64")`
read the same format. A name listed here whose folder holds no config.json is *announced but not
installed yet* (its weights come from training); loading it fails with a message that says so.
"""
from __future__ import annotations

from pathlib import Path

PRETRAINED_DIR = Path(__file__).resolve().parent

DEFAULT_WORLD = "explorer-64"

# name -> how the weights are produced (shown when the folder is still empty).
BUNDLED_WORLDS: dict[str, str] = {
    "explorer-64": "worldsim train recipe --world explorer --size compact",
}


def bundled_folder(name: str) -> Path | None:
    """The folder of bundled world `name`, or None when `name` is not a bundled world."""
    if name not in BUNDLED_WORLDS:
        return None
    return PRETRAINED_DIR / name


def is_installed(name: str) -> bool:
    """Whether bundled world `name` has its checkpoint files in the package."""
    folder = bundled_folder(name)
    return folder is not None and (folder / "config.json").is_file()
