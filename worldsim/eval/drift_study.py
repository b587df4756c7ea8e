"""Long-horizon drift with 95 % intervals, per checkpoint and sampler: `worldsim eval --drift-study`.

Every checkpoint replays the same R long rollouts (an event switch every `switch_every` frames, the
same maps, actions, events and noise seeds) with every sampler; per window of W frames the Fréchet
distance of probe features and the tile-histogram distance to the real replay are measured next to
the real floor (the same script on other maps). Intervals resample whole rollouts, with the same
draws for every checkpoint and sampler (`drift_stats`), so the sampler comparison is paired. One
more rollout of `long_frames` frames per checkpoint and sampler is measured as it streams (series,
slopes, frames per second, resident memory after every window).

    summary = drift_study(["explorer-64"], "docs/eval/drift", DriftStudyConfig(rollouts=8, frames=2000))
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldsim.data.atomic import atomic_write_bytes, atomic_write_json
from worldsim.data.machine import describe_machine
from worldsim.eval import drift
from worldsim.eval.drift_stats import distance_tables, floor_contrasts, paired_contrasts, rollout_weights, \
    series_and_slopes
from worldsim.eval.evaluation import load_labelled, resolve_device
from worldsim.eval.plots import PlotStyle, Series, film_strip, line_plot, stack
from worldsim.eval.probes import Probes
from worldsim.eval.report import json_ready
from worldsim.eval.scenarios import DRIFT_FAMILY, LONG_DRIFT_FAMILY, drift_scenario, scenario_rng
from worldsim.imaging.png import write_png
from worldsim.sampling.simulator import SAMPLERS

__all__ = ["DriftStudyConfig", "drift_study"]

STRIP_COLUMNS = 8  # window ends shown in the film strips


@dataclass(frozen=True)
class DriftStudyConfig:
    rollouts: int = 8  # R, the units every interval resamples
    frames: int = 2000  # per rollout
    window: int = 100  # W, frames per window
    switch_every: tuple[int, int] = (100, 300)  # frames between event switches, drawn in this range
    long_frames: int = 10_000  # the single long rollout (0: none)
    samplers: tuple[str, ...] = ("frame", "rolling")
    seed: int = 0  # scripts, sampler noise and bootstrap draws
    resamples: int = 1000

    def __post_init__(self) -> None:
        if self.rollouts < 2:
            raise ValueError(f"drift study: --rollouts must be >= 2 (intervals resample rollouts), got {self.rollouts}")
        if self.window < 2:
            raise ValueError(f"drift study: --window must be >= 2 frames (a covariance), got {self.window}")
        if self.frames < 2 * self.window:
            raise ValueError(f"drift study: --frames ({self.frames}) must cover two windows of {self.window} "
                             "frames (a slope needs two)")
        if self.long_frames and self.long_frames < 2 * self.window:
            raise ValueError(f"drift study: --long-frames ({self.long_frames}) must be 0 or cover two windows of "
                             f"{self.window} frames")
        low, high = self.switch_every
        if not 1 <= low <= high:
            raise ValueError(f"drift study: --switch-every needs 1 <= LO <= HI, got {low} {high}")
        if not self.samplers or set(self.samplers) - set(SAMPLERS) or len(set(self.samplers)) != len(self.samplers):
            raise ValueError(f"drift study: --samplers must be distinct names from {', '.join(SAMPLERS)}, "
                             f"got {' '.join(self.samplers) or 'none'}")
        if self.resamples < 100:
            raise ValueError(f"drift study: --resamples must be >= 100 (the 2.5 % tails), got {self.resamples}")

    @property
    def windows(self) -> int:
        return self.frames // self.window


@dataclass
class _Measured:
    """One checkpoint × sampler: its replay of the R rollouts and its long rollout."""

    label: str
    sampler: str
    replay: drift.ModelReplay
    action_latency: int
    long: dict[str, Any] | None
    long_strip: np.ndarray | None


def _load(checkpoints: list[str], device: str, revision: str | None) -> tuple[list[Any], list[str]]:
    worlds, labels = load_labelled(checkpoints, device, revision)
    sizes = {world.config.image_size for world in worlds}
    if len(sizes) > 1:
        raise ValueError(f"drift study: the checkpoints' frame sizes differ ({sorted(sizes)}); one truth serves all")
    return worlds, labels


def _measure(world: Any, label: str, sampler: str, reference: drift.Reference, long_reference: drift.Reference | None,
             probes: Probes, seed: int) -> _Measured:
    # The long rollout first: its peak-memory figures then see the process before any batch of rollouts.
    long, long_strip = (drift.long_rollout(world, long_reference, probes, seed + 6, sampler)
                        if long_reference is not None else (None, None))
    replay = drift.record_model(world, reference, probes, seed + 3, sampler)
    latency = world.simulator(batch_size=1, sampler=sampler).action_latency
    return _Measured(label, sampler, replay, latency, long, long_strip)


def _results(measured: list[_Measured], reference: drift.Reference, config: DriftStudyConfig) -> dict[str, Any]:
    """Per checkpoint: per sampler its series, intervals against the floor and long rollout; and each
    later sampler minus the first on the same rollouts."""
    weights = rollout_weights(config.rollouts, config.resamples, config.seed)
    tables = distance_tables(reference.truth, [reference.floor, *(m.replay.stream for m in measured)], weights)
    found: dict[str, Any] = {}
    for row, item in enumerate(measured, start=1):
        point = {measure: table[0, row] for measure, table in tables.items()}
        floor = {measure: table[0, 0] for measure, table in tables.items()}
        found.setdefault(item.label, {})[item.sampler] = {
            **series_and_slopes(point, floor), **floor_contrasts(tables, row),
            "fps": item.replay.fps, "action_latency_frames": item.action_latency,
            **({"long": item.long} if item.long is not None else {})}
    rows = {(item.label, item.sampler): row for row, item in enumerate(measured, start=1)}
    first = config.samplers[0]
    for label in found:
        for sampler in config.samplers[1:]:
            found[label][f"{sampler}_minus_{first}"] = paired_contrasts(tables, rows[label, first],
                                                                        rows[label, sampler])
    return found


def drift_study(checkpoints: list[str], out: str | Path, config: DriftStudyConfig = DriftStudyConfig(),
                device: str = "cpu", probes_folder: str | Path | None = None,
                revision: str | None = None) -> dict[str, Any]:
    """Measure every checkpoint with every sampler; write summary.json, report.md and PNGs into `out`."""
    if not checkpoints:
        raise ValueError("drift study: needs at least one checkpoint")
    started, torch_device = time.time(), resolve_device(device)
    machine = describe_machine(torch_device)  # the load average at the start
    probes = Probes.load(probes_folder, device=torch_device)
    worlds, labels = _load(checkpoints, str(torch_device), revision)
    size = worlds[0].config.image_size
    scenario = drift_scenario(scenario_rng(config.seed, DRIFT_FAMILY), config.rollouts, config.frames,
                              config.switch_every)
    reference = drift.record_reference(scenario, probes, config.window, size)
    long_reference = None
    if config.long_frames:
        long_scenario = drift_scenario(scenario_rng(config.seed, LONG_DRIFT_FAMILY), 1, config.long_frames,
                                       config.switch_every)
        long_reference = drift.record_reference(long_scenario, probes, config.window, size)
    measured = [_measure(world, label, sampler, reference, long_reference, probes, config.seed)
                for world, label in zip(worlds, labels) for sampler in config.samplers]
    bootstrap_started = time.time()
    results = _results(measured, reference, config)
    summary: dict[str, Any] = {
        **asdict(config), "windows": config.windows, "checkpoints": dict(zip(labels, map(str, checkpoints))),
        **results, "bootstrap_s": round(time.time() - bootstrap_started, 1),
        "machine": machine, "wall_time_s": round(time.time() - started, 1),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary["plots"] = _write_figures(out, measured, reference, long_reference, summary)
    atomic_write_json(out / "summary.json", json_ready(summary))
    atomic_write_bytes(out / "report.md", _report(summary, labels).encode())
    return summary


# ------------------------------------------------------------------------------------------ figures
def _strip_figure(truth: np.ndarray, items: list[_Measured], strips: list[np.ndarray], window: int) -> np.ndarray:
    """Truth above each sampler's model at STRIP_COLUMNS window ends spread over the rollout."""
    columns = np.unique(np.linspace(0, len(truth) - 1, STRIP_COLUMNS).round().astype(int))
    return film_strip([truth[columns], *(strip[columns] for strip in strips)],
                      ["truth", *(f"{item.label} {item.sampler}" for item in items)],
                      [f"t={window * (c + 1)}" for c in columns])


def _series_figure(summary: dict[str, Any], labels: list[str], samplers: tuple[str, ...], long: bool) -> np.ndarray:
    panels = []
    for measure, unit in (("fd", "Frechet distance"), ("tile_tv", "tile-histogram TV")):
        series, floor = [], None
        for label in labels:
            for sampler in samplers:
                found = summary[label][sampler]["long"] if long else summary[label][sampler]
                ends = summary["window"] * np.arange(1, len(found[f"{measure}_by_window"]) + 1)
                series.append(Series(f"{label} {sampler}", ends, found[f"{measure}_by_window"]))
                floor = Series("real floor", ends, found[f"{measure}_real_floor_by_window"])
        title = f"{unit} per window, " + ("the long rollout" if long else f"{summary['rollouts']} rollouts pooled")
        panels.append(line_plot([*series, floor], title, "frames generated", unit, PlotStyle(markers=not long)))
    return stack(panels)


def _write_figures(out: Path, measured: list[_Measured], reference: drift.Reference,
                   long_reference: drift.Reference | None, summary: dict[str, Any]) -> list[str]:
    """drift.png (series of the R rollouts and of the long rollout) and one film strip per checkpoint:
    the long rollout's truth and models where there is one, else rollout 0."""
    labels, samplers = list(summary["checkpoints"]), tuple(summary["samplers"])
    panels = [_series_figure(summary, labels, samplers, long=False)]
    if long_reference is not None:
        panels.append(_series_figure(summary, labels, samplers, long=True))
    figures = {"drift.png": stack(panels)}
    for index, label in enumerate(labels):
        items = [item for item in measured if item.label == label]
        truth = (long_reference or reference).strip
        strips = [item.long_strip if long_reference else item.replay.strip for item in items]
        figures[f"filmstrip_{index}.png"] = _strip_figure(truth, items, strips, summary["window"])
    for name, image in figures.items():
        write_png(out / name, image)
    return list(figures)


# ------------------------------------------------------------------------------------------ report
def _number(value: Any) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.4g}"


def _interval(found: dict[str, Any], key: str) -> str:
    low, high = found[f"{key}_ci95"]
    return f"{_number(found[key])} [{_number(low)}, {_number(high)}]"


def _yes_no(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _floor_table(summary: dict[str, Any], labels: list[str], measure: str) -> list[str]:
    lines = ["| checkpoint | sampler | slope per window | floor's slope | slope − floor | last window − floor | "
             "mean over windows − floor | slope interval holds 0 | like the floor (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        for sampler in summary["samplers"]:
            found = summary[label][sampler]
            cells = [_interval(found, f"{measure}_{key}") for key in
                     ("slope_per_window", "real_floor_slope_per_window", "slope_minus_floor",
                      "last_window_minus_floor", "mean_minus_floor")]
            cells += [_yes_no(found[f"{measure}_slope_ci_contains_0"]),
                      _yes_no(found[f"{measure}_indistinguishable_from_floor"])]
            lines.append(f"| {label} | {sampler} | {' | '.join(cells)} |")
    return lines + [""]


def _sampler_lines(summary: dict[str, Any], labels: list[str]) -> list[str]:
    first, lines = summary["samplers"][0], []
    for label in labels:
        for sampler in summary["samplers"][1:]:
            found = summary[label][f"{sampler}_minus_{first}"]
            lines.append(f"- {label}, {sampler} − {first}: FD slope {_interval(found, 'fd_slope_difference')}, "
                         f"FD mean {_interval(found, 'fd_mean_difference')}; tile-TV slope "
                         f"{_interval(found, 'tile_tv_slope_difference')}, tile-TV mean "
                         f"{_interval(found, 'tile_tv_mean_difference')}")
    return lines + [""] if lines else []


def _long_table(summary: dict[str, Any], labels: list[str]) -> list[str]:
    lines = ["| checkpoint | sampler | FD slope (floor) | FD last window (floor) | tile-TV slope (floor) | "
             "tile-TV last window (floor) | frames/s | resident MB, first → last window (max) | "
             "peak MB before → first window → end |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label in labels:
        for sampler in summary["samplers"]:
            found = summary[label][sampler]["long"]
            cells = [f"{_number(found[f'{m}_slope_per_window'])} ({_number(found[f'{m}_real_floor_slope_per_window'])})"
                     if kind == "slope" else
                     f"{_number(found[f'{m}_by_window'][-1])} ({_number(found[f'{m}_real_floor_by_window'][-1])})"
                     for m in ("fd", "tile_tv") for kind in ("slope", "last")]
            cells += [_number(found["fps"]),
                      f"{_number(found['rss_mb_first_window'])} → {_number(found['rss_mb_last_window'])} "
                      f"({_number(found['rss_mb_max_over_windows'])})",
                      " → ".join(_number(found[f"peak_rss_mb_{when}"])
                                 for when in ("before", "first_window", "after"))]
            lines.append(f"| {label} | {sampler} | {' | '.join(cells)} |")
    return lines + [""]


def _report(summary: dict[str, Any], labels: list[str]) -> str:
    low, high = summary["switch_every"]
    lines = ["# Long-horizon drift", "",
             f"{summary['rollouts']} rollouts of {summary['frames']} frames (an event switch every {low}–{high} "
             f"frames), {summary['windows']} windows of {summary['window']} frames; every checkpoint and sampler "
             "replayed the same maps, actions, events and noise seeds from the true first frames. Per window: "
             "Fréchet distance (FD) of probe features and total variation (TV) of tile-class histograms between "
             "the generated frames and the real replay's; the real floor is the same distance for the same script "
             "replayed on other maps. Rolling-sampler frames are aligned with the truth (its "
             "action latency removed). Intervals: 95 %, percentile bootstrap over rollouts "
             f"({summary['resamples']} resamples, the same draws for every row, so differences are paired).", ""]
    for measure, name in (("fd", "Fréchet distance of probe features"), ("tile_tv", "Tile-class histogram TV")):
        lines += [f"## {name}", "", *_floor_table(summary, labels, measure)]
    if len(summary["samplers"]) > 1:
        lines += ["## Samplers on the same rollouts", "", *_sampler_lines(summary, labels)]
    if summary["long_frames"]:
        lines += ["## The long rollout", "",
                  f"One rollout of {summary['long_frames']} frames per checkpoint and sampler, measured as it streams. "
                  "One rollout gives no interval over rollouts (and its windows are not independent), so only the "
                  "series and their least-squares slopes are reported.", "", *_long_table(summary, labels)]
    lines += ["![drift](drift.png)", "",
              *[f"![{name}]({name})" for name in summary["plots"] if name.startswith("filmstrip")], ""]
    machine = summary["machine"]
    lines += [f"Machine: {machine['cpu_model']} ({machine['cpu_cores']} cores, {machine['torch_threads']} threads), "
              f"{machine['device']}, torch {machine['torch_version']}; {summary['wall_time_s']} s "
              f"(bootstrap {summary['bootstrap_s']} s).", ""]
    return "\n".join(lines)
