"""Atomic file writes and checksums: a reader never sees a half-written file."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

TEMP_MARKER = ".tmp-"
_HASH_CHUNK = 1 << 20


def temp_path_for(path: Path) -> Path:
    """A unique hidden sibling of `path`; the rename to `path` is then atomic (same filesystem)."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file for writing; on success fsync it and rename it to `path`.

    On error the temporary file is removed and `path` keeps its previous content (if any).
    """
    path = Path(path)
    temp = temp_path_for(path)
    try:
        with open(temp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike, document: Any) -> None:
    """`document` as indented UTF-8 JSON (keys in insertion order), written atomically."""
    atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse fsync on directories.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temporary files left behind by a killed writer; returns what was removed."""
    stale = [p for p in directory.iterdir() if p.name.startswith(".") and TEMP_MARKER in p.name]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
