"""Writing and reading one shard file (`shard-XXXXX.npz`), with validation and checksums."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from worldsim.data.atomic import atomic_write_bytes, sha256_bytes
from worldsim.data.format import (
    ARRAY_DTYPES,
    EXTRA_DTYPES,
    LABEL_NAMES,
    DatasetError,
    ShardArrays,
    ShardLayout,
    check_arrays,
    shard_file_name,
)
from worldsim.data.manifest import ShardRecord

_DEFLATE_LEVEL = 3
# np.load raises any of these on a damaged archive.
_READ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)


def write_shard(
    directory: Path, index: int, arrays: ShardArrays, layout: ShardLayout, compress: bool = True
) -> ShardRecord:
    """Validate `arrays`, write them atomically as shard `index` and return its manifest record."""
    name = shard_file_name(index)
    check_arrays(arrays.as_dict(), layout, where=f"{name} (being written)")
    data = npz_bytes(arrays.as_dict(), compress)
    atomic_write_bytes(Path(directory) / name, data)
    return ShardRecord(
        index=index,
        frames=len(arrays),
        first_episode=int(arrays.episode[0]),
        last_episode=int(arrays.episode[-1]),
        sha256=sha256_bytes(data),
        num_bytes=len(data),
    )


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool) -> bytes:
    """The arrays as an .npz archive (what np.savez writes), deflated at a fast level.

    np.savez_compressed offers no level; level 3 writes about twice as fast as its level 6 for
    shards about 1.5x larger. Entries carry a fixed timestamp, so equal arrays give equal bytes.
    """
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method, compresslevel=_DEFLATE_LEVEL) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def read_shard(
    directory: Path, record: ShardRecord, layout: ShardLayout, verify: bool = True
) -> ShardArrays:
    """Load and validate a whole shard; with `verify`, first check its size and sha256."""
    path = check_present(directory, record)
    if verify:
        data = path.read_bytes()
        if sha256_bytes(data) != record.sha256:
            raise DatasetError(f"{path}: checksum mismatch, the file is corrupted")
        source: Path | io.BytesIO = io.BytesIO(data)
    else:
        source = path
    arrays = _load_arrays(source, path, set(ARRAY_DTYPES))
    _check_against_record(arrays, record, layout, path, with_frames=True)
    extras = {name: arrays.pop(name) for name in EXTRA_DTYPES if name in arrays}
    return ShardArrays(**arrays, extras=extras)


def read_labels(directory: Path, record: ShardRecord, layout: ShardLayout) -> dict[str, np.ndarray]:
    """Load only the small per-frame arrays, optional labels included (no frames, no checksum)."""
    path = check_present(directory, record)
    arrays = _load_arrays(path, path, set(LABEL_NAMES))
    _check_against_record(arrays, record, layout, path, with_frames=False)
    return arrays


def check_present(directory: Path, record: ShardRecord) -> Path:
    """The shard's path, after checking it exists with the size the manifest recorded."""
    path = Path(directory) / record.file
    if not path.is_file():
        raise DatasetError(f"{path}: shard listed in the manifest is missing")
    size = path.stat().st_size
    if size != record.num_bytes:
        raise DatasetError(
            f"{path}: file is {size} bytes but the manifest says {record.num_bytes} "
            "(truncated or replaced)"
        )
    return path


def _load_arrays(source: Path | io.BytesIO, path: Path, names: set[str]) -> dict[str, np.ndarray]:
    """`names` and whichever optional label arrays the shard holds."""
    try:
        with np.load(source, allow_pickle=False) as archive:
            stored = set(archive.files)
            extras = stored - set(ARRAY_DTYPES)
            if not set(ARRAY_DTYPES) <= stored or not extras <= set(EXTRA_DTYPES):
                raise DatasetError(
                    f"{path}: holds arrays {sorted(stored)}, expected {sorted(ARRAY_DTYPES)} "
                    f"and optionally {sorted(EXTRA_DTYPES)}"
                )
            return {name: archive[name] for name in sorted(names | extras)}
    except DatasetError:
        raise
    except _READ_ERRORS as error:
        raise DatasetError(f"{path}: unreadable shard ({type(error).__name__}: {error})") from error


def _check_against_record(
    arrays: dict[str, np.ndarray], record: ShardRecord, layout: ShardLayout, path: Path,
    with_frames: bool,
) -> None:
    check_arrays(arrays, layout, where=str(path), with_frames=with_frames)
    episode = arrays["episode"]
    if len(episode) != record.frames:
        raise DatasetError(f"{path}: holds {len(episode)} frames, the manifest says {record.frames}")
    if (int(episode[0]), int(episode[-1])) != (record.first_episode, record.last_episode):
        raise DatasetError(
            f"{path}: episodes {int(episode[0])}..{int(episode[-1])} differ from the manifest's "
            f"{record.first_episode}..{record.last_episode}"
        )
