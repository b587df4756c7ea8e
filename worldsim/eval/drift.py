"""Long rollouts measured window by window: the suite's drift family and its long rollout, and the
drift study (`drift_study`), all through these functions.

A replay yields one frame of every rollout per step (`replay`); every `window` frames the window's
probe features and tile-class counts are kept and its frames dropped, so no video is ever held
whole. The truth replays a scenario in the real game (a player who dies starts over on a fresh
map); the real floor replays the same script on other maps, the distance that sampling alone
produces; the model replays it in a Simulator from the true first frames, with either sampler
(frames aligned with the truth, see `replay.generated_steps`).

    reference = record_reference(scenario, probes, window=100, size=64)
    model = record_model(world, reference, probes, window=100, seed=3, sampler="rolling")
    found = drift_measures(reference, model.stream)      # the suite's `drift.*` keys
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.eval.drift_stats import MEASURES, WindowedStream, distance_tables, series_and_slopes
from worldsim.eval.probes import Probes
from worldsim.eval.replay import Step, generated_steps, truth_steps
from worldsim.eval.scenarios import Scenario
from worldsim.eval.true_frames import EventClasses
from worldsim.eval.truth import TRUTH


@dataclass
class Window:
    """One window of a replay, all rollouts."""

    features: np.ndarray  # float32 [R, W, D] probe features (computed in float32 by the probes)
    tile_counts: np.ndarray  # int64 [R, C] tiles of each class: true ones for the truth, parsed for a model
    last_frame: np.ndarray  # uint8 [H, W, 3] rollout 0 at the window's end, for film strips


def _measure(probes: Probes, frames: list[np.ndarray], tiles: list[np.ndarray | None]) -> Window:
    video = np.stack(frames, axis=1)  # [R, W, H, W, 3]
    flat = video.reshape(-1, *video.shape[2:])
    labels = probes.parse_tiles(flat) if tiles[0] is None else np.stack(tiles, axis=1)
    labels = labels.reshape(len(video), -1)
    num_classes = len(TRUTH.tile_classes)
    if labels.max() >= num_classes:
        raise ValueError(f"drift: tile class {labels.max()} >= the game's {num_classes} classes")
    counts = np.stack([np.bincount(row, minlength=num_classes) for row in labels.astype(np.int64)])
    features = probes.features(flat).astype(np.float32).reshape(*video.shape[:2], -1)
    return Window(features, counts, video[0, -1])


def measured_windows(steps: Iterable[Step], probes: Probes, window: int) -> Iterator[Window]:
    """A `Window` every `window` frames of a replay; frame 0 (the given context, never generated)
    is skipped and a short tail dropped."""
    frames: list[np.ndarray] = []
    tiles: list[np.ndarray | None] = []
    for step in steps:
        if step.t == 0:
            continue
        frames.append(step.frames)
        tiles.append(step.tiles)
        if len(frames) == window:
            yield _measure(probes, frames, tiles)
            frames, tiles = [], []


def stacked(windows: Iterable[Window]) -> tuple[WindowedStream, np.ndarray]:
    """The windows as one stream, and the film-strip frames `uint8 [K, H, W, 3]`."""
    windows = list(windows)
    if not windows:
        raise ValueError("drift: the replay is shorter than one window")
    stream = WindowedStream(np.stack([w.features for w in windows], axis=1),
                            np.stack([w.tile_counts for w in windows], axis=1))
    return stream, np.stack([w.last_frame for w in windows])


@dataclass
class Reference:
    """What every model replaying `scenario` is measured against."""

    scenario: Scenario
    window: int  # frames per window
    first_frames: np.ndarray  # uint8 [R, H, W, 3] the true first frames, the models' context
    truth: WindowedStream
    floor: WindowedStream  # the same script on other maps
    strip: np.ndarray  # uint8 [K, H, W, 3] the truth's rollout 0 at each window's end


def other_maps(scenario: Scenario) -> Scenario:
    return Scenario(f"{scenario.name}-other-maps", scenario.seeds + 1, scenario.actions, scenario.switches)


def record_reference(scenario: Scenario, probes: Probes, window: int, size: int) -> Reference:
    """Replay `scenario` and its other-maps twin in the real game, window by window."""
    classes = EventClasses(probes.spec.event_groups)
    truth_replay = truth_steps(scenario, size, classes, restart_dead=True)
    first = next(truth_replay)
    truth, strip = stacked(measured_windows(truth_replay, probes, window))
    floor, _ = stacked(measured_windows(truth_steps(other_maps(scenario), size, classes, restart_dead=True),
                                        probes, window))
    return Reference(scenario, window, first.frames, truth, floor, strip)


class _TimedSteps:
    """Steps of a replay, counting the seconds spent producing them (generation, not measuring)."""

    def __init__(self, steps: Iterator[Step]) -> None:
        self._steps, self.seconds, self.frames = steps, 0.0, 0

    def __iter__(self) -> "_TimedSteps":
        return self

    def __next__(self) -> Step:
        started = time.perf_counter()
        try:
            step = next(self._steps)
        finally:
            self.seconds += time.perf_counter() - started
        self.frames += len(step.frames) if step.t else 0
        return step

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


def _model_steps(world: Any, reference: Reference, seed: int, sampler: str) -> _TimedSteps:
    return _TimedSteps(generated_steps(world, reference.scenario, reference.first_frames, seed, sampler))


@dataclass
class ModelReplay:
    stream: WindowedStream
    strip: np.ndarray  # uint8 [K, H, W, 3] rollout 0 at each window's end
    fps: float  # generated frames (all rollouts) per second of simulator time


def record_model(world: Any, reference: Reference, probes: Probes, seed: int, sampler: str = "frame") -> ModelReplay:
    """Replay the reference's scenario in `world`, window by window."""
    steps = _model_steps(world, reference, seed, sampler)
    stream, strip = stacked(measured_windows(steps, probes, reference.window))
    return ModelReplay(stream, strip, steps.fps)


def _point(tables: dict[str, np.ndarray], row: int) -> dict[str, np.ndarray]:
    return {measure: tables[measure][0, row] for measure in MEASURES}


def drift_measures(reference: Reference, model: WindowedStream) -> dict[str, Any]:
    """The suite's drift keys: per-window distances of the model and of the floor, and their slopes."""
    ones = np.ones((1, reference.truth.num_rollouts))
    tables = distance_tables(reference.truth, [model, reference.floor], ones)
    return {"rollouts": reference.scenario.num_rollouts, "frames": reference.scenario.num_steps,
            "window_frames": reference.window, **series_and_slopes(_point(tables, 0), _point(tables, 1))}


def peak_rss_mb() -> float | None:
    """The process's highest resident memory so far, in MB (None where `resource` is missing)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def rss_mb() -> float | None:
    """The process's resident memory now, in MB (Linux's /proc; None elsewhere)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import resource

    return round(resident_pages * resource.getpagesize() / 2**20, 1)


def _resident_summary(resident: list[float | None]) -> dict[str, float | None]:
    """Resident memory at the first and last window's end, its growth between them and its maximum."""
    known = None not in resident
    return {"rss_mb_first_window": resident[0], "rss_mb_last_window": resident[-1],
            "rss_growth_mb": round(resident[-1] - resident[0], 1) if known else None,
            "rss_mb_max_over_windows": max(resident) if known else None}


def long_rollout(world: Any, reference: Reference, probes: Probes, seed: int,
                 sampler: str = "frame") -> tuple[dict[str, Any], np.ndarray]:
    """One long rollout measured as it streams: each window's distances are computed as soon as it
    is complete and its features dropped, so memory stays flat however long the rollout: resident
    memory at every window's end and the process's peak before, after the first window (one-time
    costs such as embedding the first event are in by then) and at the end show it. Returns the
    measures and the film-strip frames.

    One rollout allows no interval over rollouts, and windows of one rollout are not independent,
    so only the series and their slopes are reported.
    """
    if reference.truth.num_rollouts != 1:
        raise ValueError(f"long rollout: one rollout, got {reference.truth.num_rollouts}")
    peak_before, started = peak_rss_mb(), time.perf_counter()
    steps = _model_steps(world, reference, seed, sampler)
    per_window, strip, resident, peak_first_window = [], [], [], None
    for index, window in enumerate(measured_windows(steps, probes, reference.window)):
        generated, _ = stacked([window])
        per_window.append(distance_tables(reference.truth.window(index), [generated, reference.floor.window(index)],
                                          np.ones((1, 1))))
        strip.append(window.last_frame)
        resident.append(rss_mb())
        if index == 0:  # one-time costs (embedding the first event) are in by now
            peak_first_window = peak_rss_mb()
    tables = {measure: np.concatenate([t[measure] for t in per_window], axis=2) for measure in MEASURES}
    found = {"frames": reference.scenario.num_steps, "window_frames": reference.window, "sampler": sampler,
             **series_and_slopes(_point(tables, 0), _point(tables, 1)),
             "fps": steps.fps, "wall_time_s": round(time.perf_counter() - started, 1),
             "peak_rss_mb_before": peak_before, "peak_rss_mb_first_window": peak_first_window,
             "peak_rss_mb_after": peak_rss_mb(), **_resident_summary(resident)}
    return found, np.stack(strip)

