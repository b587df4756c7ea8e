"""What the commands check and set before they start work: output paths, the torch device, threads.

Each check raises a ValueError that names the flag and says what is wrong, so a command can exit
with a one-line error (status 2) before it loads a model or writes a file. Nothing here imports
torch at module level.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["DEFAULT_THREADS", "add_threads_argument", "check_device", "check_output_file",
           "check_output_folder", "set_threads"]

# torch's default uses every core. Per-frame stepping of a small world is a chain of small
# operations, and on a 2-core machine that other processes also use, extra threads mostly wait for
# each other: explorer-64 rollout at batch 1 ran at 14-17 FPS with 1 thread and 1.1-1.5 FPS with 2
# (load average 8), while on a quiet machine 2 threads gain about 40% (46.5 vs 33 FPS). One thread
# is the default that never collapses; --threads N asks for more.
DEFAULT_THREADS = 1


def add_threads_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads (default {DEFAULT_THREADS}: fastest for one world on a busy "
                             "machine; more help on idle machines with several cores)")


def set_threads(threads: int) -> None:
    """torch's intra-op thread count; a count below 1 is a ValueError."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {threads!r}")
    import torch

    torch.set_num_threads(threads)


def check_device(device: str) -> str:
    """A torch device string that this machine can run (`cuda` needs a CUDA build and a GPU)."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"--device {device!r} is not a torch device ({error}); use cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        reason = "was built without CUDA" if torch.version.cuda is None else "sees no CUDA device"
        raise ValueError(f"--device {device}: this torch {torch.__version__} {reason}; use --device cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device


def check_output_folder(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A folder that exists or can be created: neither it nor a folder above it is a regular file."""
    folder = Path(path)
    for candidate in (folder, *folder.parents):
        if candidate.exists() and not candidate.is_dir():
            where = "is" if candidate == folder else f"is below {candidate}, which is"
            raise ValueError(f"{flag} {folder}: {where} a file, not a folder")
    return folder


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A file path whose folder exists (nothing is created) and that is not itself a folder."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{flag} {file}: is a folder; give a file name")
    parent = file.parent
    check_output_folder(parent, flag)
    if not parent.is_dir():
        raise ValueError(f"{flag} {file}: the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{flag} {file}: the folder {parent} is not writable")
    return file
