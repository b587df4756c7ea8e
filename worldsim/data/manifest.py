"""`manifest.json`: what a dataset holds, validated strictly on load and saved atomically."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worldsim.data.atomic import atomic_write_bytes
from worldsim.data.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_NAME,
    DatasetError,
    ShardLayout,
    shard_file_name,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ShardRecord:
    """One committed shard: its frame count, episode id range and checksum."""

    index: int
    frames: int
    first_episode: int
    last_episode: int
    sha256: str
    num_bytes: int

    @property
    def file(self) -> str:
        return shard_file_name(self.index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "index": self.index,
            "frames": self.frames,
            "episodes": [self.first_episode, self.last_episode],
            "sha256": self.sha256,
            "bytes": self.num_bytes,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "ShardRecord":
        _check_keys(data, {"file", "index", "frames", "episodes", "sha256", "bytes"}, where)
        index = _get(data, "index", int, where)
        record = cls(
            index=index,
            frames=_get(data, "frames", int, where),
            first_episode=_get_pair(data, "episodes", where)[0],
            last_episode=_get_pair(data, "episodes", where)[1],
            sha256=_get(data, "sha256", str, where),
            num_bytes=_get(data, "bytes", int, where),
        )
        if index < 0 or data["file"] != shard_file_name(index):
            raise DatasetError(f"{where}: file {data['file']!r} does not match index {index}")
        if record.frames <= 0 or record.num_bytes <= 0:
            raise DatasetError(f"{where}: 'frames' and 'bytes' must be positive")
        if not 0 <= record.first_episode <= record.last_episode:
            raise DatasetError(f"{where}: 'episodes' must be [first, last] with 0 <= first <= last")
        if not _SHA256.match(record.sha256):
            raise DatasetError(f"{where}: 'sha256' is not a lowercase hex sha256 digest")
        return record


@dataclass(frozen=True)
class Manifest:
    """Everything a reader needs to know about a dataset folder."""

    world: str
    frame_shape: tuple[int, int, int]
    num_actions: int
    event_texts: tuple[str, ...]
    shards: tuple[ShardRecord, ...] = ()
    generator: dict[str, Any] = field(default_factory=dict)  # settings that produced the data
    complete: bool = False  # False while a writer or generator is still adding shards
    version: int = FORMAT_VERSION

    @property
    def layout(self) -> ShardLayout:
        return ShardLayout(self.frame_shape, self.num_actions, len(self.event_texts))

    @property
    def num_frames(self) -> int:
        return sum(shard.frames for shard in self.shards)

    def with_shard(self, record: ShardRecord) -> "Manifest":
        """A copy holding `record` (replacing a shard of the same index), shards kept in order."""
        others = [shard for shard in self.shards if shard.index != record.index]
        shards = tuple(sorted([*others, record], key=lambda shard: shard.index))
        return replace(self, shards=shards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "world": self.world,
            "frame_shape": list(self.frame_shape),
            "num_actions": self.num_actions,
            "event_texts": list(self.event_texts),
            "complete": self.complete,
            "generator": self.generator,
            "shards": [shard.to_dict() for shard in self.shards],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST_NAME) -> "Manifest":
        keys = {"format", "version", "world", "frame_shape", "num_actions", "event_texts",
                "complete", "generator", "shards"}
        _check_keys(data, keys, where)
        _check_version(data, where)
        manifest = cls(
            world=_get(data, "world", str, where),
            frame_shape=_get_frame_shape(data, where),
            num_actions=_get(data, "num_actions", int, where),
            event_texts=_get_texts(data, where),
            shards=_get_shards(data, where),
            generator=_get(data, "generator", dict, where),
            complete=_get(data, "complete", bool, where),
            version=data["version"],
        )
        if manifest.num_actions <= 0:
            raise DatasetError(f"{where}: 'num_actions' must be positive")
        _check_episode_order(manifest.shards, where)
        return manifest


def load_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: not found (is {directory} a worldsim dataset folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from error
    return Manifest.from_dict(data, where=str(path))


def save_manifest(directory: str | Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.to_dict(), indent=1) + "\n"
    atomic_write_bytes(Path(directory) / MANIFEST_NAME, text.encode("utf-8"))


def _check_keys(data: Any, expected: set[str], where: str) -> None:
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing, unknown = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing:
        raise DatasetError(f"{where}: missing key(s) {missing}")
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {unknown}")


def _check_version(data: dict, where: str) -> None:
    if data["format"] != FORMAT_NAME:
        raise DatasetError(f"{where}: 'format' is {data['format']!r}, expected {FORMAT_NAME!r}")
    version = data["version"]
    if not _is_int(version) or version < 1:
        raise DatasetError(f"{where}: 'version' must be a positive integer")
    if version > FORMAT_VERSION:
        raise DatasetError(
            f"{where}: format version {version} is newer than this worldsim supports "
            f"({FORMAT_VERSION}); upgrade worldsim"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(data: dict, key: str, kind: type, where: str) -> Any:
    value = data[key]
    ok = _is_int(value) if kind is int else isinstance(value, kind)
    if not ok:
        raise DatasetError(f"{where}: key '{key}' must be {kind.__name__}, got {value!r}")
    return value


def _get_pair(data: dict, key: str, where: str) -> tuple[int, int]:
    value = data[key]
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value)):
        raise DatasetError(f"{where}: key '{key}' must be a list of two integers, got {value!r}")
    return value[0], value[1]


def _get_frame_shape(data: dict, where: str) -> tuple[int, int, int]:
    shape = data["frame_shape"]
    valid = (isinstance(shape, list) and len(shape) == 3 and all(_is_int(v) and v > 0 for v in shape)
             and shape[2] == 3)
    if not valid:
        raise DatasetError(f"{where}: key 'frame_shape' must be [H, W, 3], got {shape!r}")
    return tuple(shape)


def _get_texts(data: dict, where: str) -> tuple[str, ...]:
    texts = data["event_texts"]
    if not (isinstance(texts, list) and all(isinstance(t, str) and t for t in texts)):
        raise DatasetError(f"{where}: key 'event_texts' must be a list of non-empty strings")
    if len(set(texts)) != len(texts):
        raise DatasetError(f"{where}: key 'event_texts' holds duplicates")
    return tuple(texts)


def _get_shards(data: dict, where: str) -> tuple[ShardRecord, ...]:
    if not isinstance(data["shards"], list):
        raise DatasetError(f"{where}: key 'shards' must be a list")
    shards = tuple(
        ShardRecord.from_dict(entry, f"{where}: shards[{position}]")
        for position, entry in enumerate(data["shards"])
    )
    indices = [shard.index for shard in shards]
    if indices != sorted(set(indices)):
        raise DatasetError(f"{where}: shard indices must be unique and increasing, got {indices}")
    return shards


def _check_episode_order(shards: tuple[ShardRecord, ...], where: str) -> None:
    # An episode may continue into the next shard (long recordings) but never reappear later.
    for previous, current in zip(shards, shards[1:]):
        if current.first_episode < previous.last_episode:
            raise DatasetError(
                f"{where}: {current.file} starts at episode {current.first_episode}, before "
                f"the last episode {previous.last_episode} of {previous.file}"
            )
