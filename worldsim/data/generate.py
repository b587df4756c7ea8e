"""`worldsim data generate`: a game's datasets made by parallel workers, resumable after a kill.

The game supplies the settings and the content of each shard (`GenerateSettings`, from its
`GameSpec.generate_settings`); shard i is a pure function of (settings, i), so the result is the same for
any worker count and any number of interruptions. Workers write shards atomically; only this
process rewrites the manifest, after each finished shard. On restart, shards already in the
manifest are kept (after checking their checksums), leftovers of a killed writer are deleted
and the missing shards are made.
"""
from __future__ import annotations

import fcntl
import functools
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import traceback
import warnings
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from tqdm import tqdm

from worldsim.data.atomic import remove_stale_temp_files, sha256_file
from worldsim.data.format import MANIFEST_NAME, DatasetError, ShardArrays, ShardLayout
from worldsim.data.manifest import Manifest, ShardRecord, load_manifest, save_manifest
from worldsim.data.reader import Dataset
from worldsim.data.shards import write_shard

LOCK_NAME = ".generate.lock"
MAX_WORKERS = 64
_POLL_SECONDS = 0.5


class GenerateSettings(Protocol):
    """A game's settings for one generated dataset: what `generate` needs to split, resume and check
    the work. Workers are spawned processes, so the settings must pickle."""

    world: str  # the manifest's world: the game's name
    frames: int  # total frames
    compress: bool  # shards stored compressed

    @property
    def num_shards(self) -> int: ...

    def shard_length(self, index: int) -> int: ...

    def settings(self) -> dict[str, Any]:
        """The manifest's record of the settings; a resumed run must match it exactly."""

    def layout(self) -> ShardLayout:
        """The shards' layout; settings the game cannot generate raise ValueError."""

    def event_texts(self) -> tuple[str, ...]:
        """The manifest's event text table."""

    def rollout_shard(self, index: int, on_frames: Callable[[int], None] | None = None) -> ShardArrays:
        """The content of shard `index`; `on_frames(n)` reports progress (the calls add up to its length)."""


def generate(
    out: str | Path, config: GenerateSettings, workers: int = 1, progress: bool = True,
    on_shard: Callable[[ShardRecord], None] | None = None,
) -> Dataset:
    """Generate (or finish generating) the dataset `config` describes in folder `out`.

    `on_shard` is called after each shard is committed to the manifest (tests use it to
    simulate an interruption).
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an int in [1, {MAX_WORKERS}], got {workers!r}")
    config.layout()  # bad settings fail here, before any folder or worker is made
    out = Path(out)
    _check_free_or_dataset(out)
    with _exclusive(out):
        manifest = _start_or_resume(out, config, workers)
        manifest = _add_missing_shards(out, config, manifest, workers, progress, on_shard)
        save_manifest(out, replace(manifest, complete=True))
    return Dataset(out)


def _add_missing_shards(
    out: Path, config: GenerateSettings, manifest: Manifest, workers: int, progress: bool,
    on_shard: Callable[[ShardRecord], None] | None,
) -> Manifest:
    done = {shard.index for shard in manifest.shards}
    todo = [index for index in range(config.num_shards) if index not in done]
    bar = tqdm(total=config.frames, initial=manifest.num_frames, unit="frame", desc="generate",
               disable=not progress, smoothing=0.1)
    # closing(): the workers stop as soon as anything goes wrong here, not whenever GC runs
    with bar, closing(_produce(out, config, todo, workers, bar.update)) as records:
        for record in records:
            manifest = manifest.with_shard(record)
            save_manifest(out, manifest)
            if on_shard is not None:
                on_shard(record)
    return manifest


def _check_free_or_dataset(out: Path) -> None:
    """Refuse to write into a folder that holds something other than a dataset, or below a file."""
    existing = next(path for path in (out, *out.absolute().parents) if path.exists())
    if not existing.is_dir():
        where = "is" if existing == out else f"lies below {existing}, which is"
        raise DatasetError(f"{out} {where} a file, not a folder; choose another --out")
    if out.is_dir() and not (out / MANIFEST_NAME).exists():
        if any(path.name != LOCK_NAME for path in out.iterdir()):
            raise DatasetError(f"{out} is not empty and holds no dataset; choose a new --out")


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Hold a lock file so that two generators never write into one folder at once."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_NAME, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(f"{out}: another generator is writing into this folder") from None
        yield


def _start_or_resume(out: Path, config: GenerateSettings, workers: int) -> Manifest:
    settings = {**config.settings(), "workers": workers}
    previous = load_manifest(out) if (out / MANIFEST_NAME).exists() else None
    if previous is not None and not _made_nothing(previous, config):
        _check_resumable(previous, config, out)
        remove_stale_temp_files(out)
        intact = tuple(shard for shard in previous.shards if _is_intact(out, shard))
        if len(intact) < len(previous.shards):
            warnings.warn(f"{out}: {len(previous.shards) - len(intact)} missing or damaged "
                          "shard(s) will be generated again", stacklevel=3)
        manifest = replace(previous, shards=intact, generator=settings, complete=False)
    else:
        remove_stale_temp_files(out)
        layout = config.layout()
        manifest = Manifest(world=config.world, frame_shape=layout.frame_shape,
                            num_actions=layout.num_actions,
                            event_texts=config.event_texts(), generator=settings)
    save_manifest(out, manifest)
    return manifest


def _made_nothing(manifest: Manifest, config: GenerateSettings) -> bool:
    """A generate run stopped before its first shard: start afresh, with any settings."""
    made_by_generate = manifest.world == config.world and manifest.generator.get("kind") == "generate"
    return made_by_generate and not manifest.shards


def _check_resumable(manifest: Manifest, config: GenerateSettings, out: Path) -> None:
    previous = {k: v for k, v in manifest.generator.items() if k != "workers"}
    wanted = config.settings()
    if manifest.world != config.world or previous.get("kind") != "generate":
        raise DatasetError(f"{out} holds a '{manifest.world}' dataset not made by generate")
    for key in sorted(set(previous) | set(wanted)):
        if previous.get(key) != wanted.get(key):
            raise DatasetError(
                f"{out} was generated with {key}={previous.get(key)!r}, not {wanted.get(key)!r}; "
                "rerun with the same settings to resume it, or choose a new --out"
            )
    if manifest.event_texts != config.event_texts():
        raise DatasetError(f"{out}: its event text table differs from this worldsim's {config.world} events")


def _is_intact(out: Path, shard: ShardRecord) -> bool:
    path = out / shard.file
    return (path.is_file() and path.stat().st_size == shard.num_bytes
            and sha256_file(path) == shard.sha256)


def _produce(
    out: Path, config: GenerateSettings, todo: list[int], workers: int,
    on_frames: Callable[[int], Any],
) -> Iterator[ShardRecord]:
    """Yield the record of every shard in `todo` once it is on disk (in completion order)."""
    if workers == 1 or len(todo) <= 1:
        for index in todo:
            yield _make_shard(out, config, index, on_frames)
    else:
        yield from _produce_in_workers(out, config, todo, min(workers, len(todo)), on_frames)


def _make_shard(out: Path, config: GenerateSettings, index: int,
                on_frames: Callable[[int], Any] | None) -> ShardRecord:
    arrays = config.rollout_shard(index, on_frames)
    return write_shard(out, index, arrays, config.layout(), compress=config.compress)


def _produce_in_workers(
    out: Path, config: GenerateSettings, todo: list[int], workers: int,
    on_frames: Callable[[int], Any],
) -> Iterator[ShardRecord]:
    # "spawn": workers start clean (no copied locks or threads from a parent that may hold torch).
    context = multiprocessing.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    for index in todo:
        tasks.put(index)
    for _ in range(workers):
        tasks.put(None)
    processes = [context.Process(target=_worker_main, args=(out, config, tasks, results),
                                 daemon=True) for _ in range(workers)]
    for process in processes:
        process.start()
    try:
        remaining = len(todo)
        while remaining:
            kind, payload = _next_message(results, processes)
            if kind == "progress":
                on_frames(payload)
            elif kind == "shard":
                remaining -= 1
                yield payload
            else:
                raise RuntimeError(f"a generator worker failed:\n{payload}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _next_message(results: Any, processes: list) -> tuple[str, Any]:
    while True:
        try:
            return results.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            crashed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if crashed:
                raise RuntimeError(f"a generator worker died (exit code {crashed[0]})") from None


def _worker_main(out: Path, config: GenerateSettings, tasks: Any, results: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent, which stops us
    _exit_with_parent()
    report = functools.partial(_put_progress, results)
    try:
        while (index := tasks.get()) is not None:
            results.put(("shard", _make_shard(out, config, index, report)))
    except Exception:  # reported to the parent, which stops the run with the traceback
        results.put(("error", traceback.format_exc()))


def _exit_with_parent() -> None:
    """If the parent is killed (it cannot stop us then), exit instead of writing on unobserved."""
    parent = multiprocessing.parent_process()

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _put_progress(results: Any, frames: int) -> None:
    results.put(("progress", frames))
