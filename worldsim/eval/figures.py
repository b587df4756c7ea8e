"""The evaluation's PNG figures, built from one or several labelled `SuiteResult`s (one line each).

    horizon.png            rollout PSNR (whole frame and known region) and SSIM by frames since the true start frame
    switch.png             tile agreement around the switch (with / without it) and event recognition
    drift.png              per-window Fréchet distance and tile-histogram distance, with the real floor
    filmstrip_*.png        truth above model (single-checkpoint reports only)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from worldsim.eval.plots import PlotStyle, Series, film_strip, line_plot, stack
from worldsim.imaging.png import write_png
from worldsim.eval.suite import SuiteResult

Labelled = list[tuple[str, SuiteResult]]


def horizon_figure(results: Labelled) -> np.ndarray:
    steps = np.arange(1, len(results[0][1].curves["fidelity"]["psnr_by_step"]) + 1)
    panels = []
    for key, title, unit in (("psnr_by_step", "Rollout PSNR from the true start frame", "PSNR (dB)"),
                             ("known_psnr_by_step", "Rollout PSNR on the known region (tiles of the start frame)",
                              "PSNR (dB)"),
                             ("ssim_by_step", "Rollout SSIM from the true start frame", "SSIM")):
        series = [Series(label, steps, r.curves["fidelity"][key]) for label, r in results]
        panels.append(line_plot(series, title, "frames generated", unit, PlotStyle(markers=len(steps) <= 40)))
    return stack(panels)


def switch_figure(results: Labelled) -> np.ndarray:
    switch_frame = results[0][1].curves["consistency"]["switch_frame"]
    agreement_series = []
    for label, result in results:
        curves = result.curves["consistency"]["agreement_by_frame"]
        frames = np.arange(len(curves["switch"])) - switch_frame
        agreement_series.append(Series(f"{label} switch", frames, curves["switch"]))
        if len(results) == 1:  # a comparison shows the switch curves only, to stay readable
            agreement_series.append(Series(f"{label} no switch", frames, curves["no_switch"]))
    agreement = line_plot(agreement_series, "Tile agreement with the truth around event switches",
                          "frames from switch", "agreement", PlotStyle(markers=False, vertical_lines=[0]))
    recognition_series = []
    for label, result in results:
        curves = result.curves["reactivity"]["recognised_by_offset"]
        offsets = np.arange(len(curves["generated"]))
        recognition_series.append(Series(label, offsets, curves["generated"]))
    truth = results[0][1].curves["reactivity"]["recognised_by_offset"]["truth"]
    recognition_series.append(Series("real frames", np.arange(len(truth)), truth))
    recognition = line_plot(recognition_series, "Share of switches where the classifier sees the new event",
                            "frames from switch", "share", PlotStyle(markers=False))
    return stack([agreement, recognition])


def drift_figure(results: Labelled) -> np.ndarray:
    panels = []
    for key, title, unit in (("fd", "Frechet distance to real frames per window", "FD"),
                             ("tile_tv", "Tile-class histogram distance per window", "total variation")):
        curves = results[0][1].curves["drift"]
        window = results[0][1].metrics["drift"]["window_frames"]
        ends = window * np.arange(1, len(curves[key]) + 1)
        series = [Series(label, ends, r.curves["drift"][key]) for label, r in results]
        series.append(Series("real vs real", ends, curves[f"{key}_real_floor"]))
        panels.append(line_plot(series, title, "frames generated", unit))
    return stack(panels)


def write_figures(results: Labelled, folder: Path, film_strips: bool) -> list[str]:
    """Write every figure into `folder`; returns the file names."""
    figures = {"horizon.png": horizon_figure(results), "switch.png": switch_figure(results),
               "drift.png": drift_figure(results)}
    if film_strips:
        for name, (rows, row_labels, column_labels) in results[0][1].strips.items():
            figures[f"{name}.png"] = film_strip(rows, row_labels, column_labels)
    for name, image in figures.items():
        write_png(folder / name, image)
    return list(figures)
