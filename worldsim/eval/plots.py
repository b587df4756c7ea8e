"""Raster plots as `uint8 [H, W, 3]` images: line plots and film strips (no plotting dependency).

Drawing works directly on numpy images; `worldsim.imaging.png.write_png` saves them. Text uses the
bitmap font of `worldsim.eval.font`, so labels are upper case.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from worldsim.imaging.font import GLYPH_HEIGHT, text_mask, text_width

Colour = tuple[int, int, int]
WHITE: Colour = (255, 255, 255)
BLACK: Colour = (0, 0, 0)
GRID: Colour = (225, 225, 225)
AXIS: Colour = (90, 90, 90)
# Distinguishable line colours (also for colour-blind readers: blue/orange first).
PALETTE: tuple[Colour, ...] = (
    (31, 119, 180), (230, 120, 20), (44, 160, 44), (200, 40, 40),
    (148, 103, 189), (140, 86, 75), (220, 100, 180), (120, 120, 120),
)


def blank(height: int, width: int, colour: Colour = WHITE) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = colour
    return image


def paint_mask(image: np.ndarray, mask: np.ndarray, x: int, y: int, colour: Colour) -> None:
    """Colour the true cells of `mask` with its top-left corner at (x, y), clipped to the image."""
    height, width = image.shape[:2]
    top, left = max(0, y), max(0, x)
    bottom, right = min(height, y + mask.shape[0]), min(width, x + mask.shape[1])
    if top >= bottom or left >= right:
        return
    region = mask[top - y : bottom - y, left - x : right - x]
    image[top:bottom, left:right][region] = colour


def draw_text(image: np.ndarray, text: str, x: int, y: int, colour: Colour = BLACK,
              scale: int = 1, vertical: bool = False) -> None:
    """Draw `text` with its top-left corner at (x, y); `vertical` reads bottom to top."""
    mask = text_mask(text, scale)
    paint_mask(image, np.rot90(mask) if vertical else mask, x, y, colour)


def draw_line(image: np.ndarray, start: tuple[float, float], end: tuple[float, float],
              colour: Colour, thickness: int = 1, dash: int = 0) -> None:
    """Line from (x0, y0) to (x1, y1) by dense sampling; `dash` > 0 draws dashes of that length."""
    (x0, y0), (x1, y1) = start, end
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, steps)).astype(int)
    ys = np.rint(np.linspace(y0, y1, steps)).astype(int)
    if dash:
        keep = (np.arange(steps) // dash) % 2 == 0
        xs, ys = xs[keep], ys[keep]
    dot = np.ones((thickness, thickness), dtype=bool)
    for x, y in zip(xs, ys):
        paint_mask(image, dot, x - thickness // 2, y - thickness // 2, colour)


def nice_ticks(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [low, high]."""
    span = high - low
    raw_step = span / max(1, max_ticks - 1)
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.ceil(low / step - 1e-9) * step
    count = int(math.floor((high - first) / step + 1e-9)) + 1
    return [first + i * step for i in range(count)]


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels for evenly spaced ticks, with just enough decimals to tell neighbours apart."""
    if len(ticks) < 2:
        return [f"{t:.3g}" for t in ticks]
    step = abs(ticks[1] - ticks[0])
    largest = max(abs(t) for t in ticks)
    if largest >= 1e5 or step < 1e-4:
        return [f"{t:.2e}".replace("e+0", "e").replace("e-0", "e-") for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return [f"{t:.{decimals}f}" for t in ticks]


@dataclass
class Series:
    """One line of a plot: `y` over `x`; non-finite `y` values leave a gap."""

    label: str
    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.float64)
        if self.x.shape != self.y.shape or self.x.ndim != 1:
            raise ValueError(f"Series {self.label!r}: x {self.x.shape} and y {self.y.shape} must be equal 1-D")


@dataclass
class PlotStyle:
    width: int = 480
    height: int = 300
    log2_x: bool = False  # horizons 1, 8, 32 spread evenly
    markers: bool = True
    vertical_lines: list[float] = field(default_factory=list)  # e.g. the switch frame, dashed


def _value_range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        pad = max(1.0, abs(low) * 0.1)
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


@dataclass
class _Axes:
    """Maps data coordinates to the pixel box [left, right] × [top, bottom]."""

    left: int
    right: int
    top: int
    bottom: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    log2_x: bool

    def px(self, x: float) -> float:
        low, high = self.x_range
        value = math.log2(x) if self.log2_x else x
        return self.left + (value - low) / (high - low) * (self.right - self.left)

    def py(self, y: float) -> float:
        low, high = self.y_range
        return self.bottom - (y - low) / (high - low) * (self.bottom - self.top)


def _x_ticks(all_x: np.ndarray, log2_x: bool) -> list[float]:
    if not log2_x:
        return nice_ticks(*_value_range(all_x))
    distinct = np.unique(all_x)
    if len(distinct) <= 8:
        return [float(x) for x in distinct]
    return [2.0**k for k in range(int(np.log2(distinct.min())), int(np.log2(distinct.max())) + 1)]


def _draw_axes(image: np.ndarray, axes: _Axes, x_ticks: list[float], y_ticks: list[float]) -> None:
    for y, label in zip(y_ticks, tick_labels(y_ticks)):
        row = round(axes.py(y))
        draw_line(image, (axes.left, row), (axes.right, row), GRID)
        draw_text(image, label, axes.left - 4 - text_width(label), row - GLYPH_HEIGHT // 2, AXIS)
    x_labels = tick_labels(x_ticks) if not axes.log2_x else [f"{x:g}" for x in x_ticks]
    for x, label in zip(x_ticks, x_labels):
        column = round(axes.px(x))
        draw_line(image, (column, axes.top), (column, axes.bottom), GRID)
        draw_text(image, label, column - text_width(label) // 2, axes.bottom + 5, AXIS)
    draw_line(image, (axes.left, axes.top), (axes.left, axes.bottom), AXIS)
    draw_line(image, (axes.left, axes.bottom), (axes.right, axes.bottom), AXIS)


def _draw_series(image: np.ndarray, axes: _Axes, series: Series, colour: Colour, markers: bool) -> None:
    finite = np.isfinite(series.y)
    points = [(axes.px(x), axes.py(y)) if ok else None for x, y, ok in zip(series.x, series.y, finite)]
    for start, end in zip(points, points[1:]):
        if start is not None and end is not None:
            draw_line(image, start, end, colour, thickness=2)
    if markers:
        for point in points:
            if point is not None:
                paint_mask(image, np.ones((5, 5), bool), round(point[0]) - 2, round(point[1]) - 2, colour)


def _draw_legend(image: np.ndarray, series: list[Series], x: int, y: int) -> None:
    for index, line in enumerate(series):
        row = y + index * (GLYPH_HEIGHT + 6)
        colour = PALETTE[index % len(PALETTE)]
        paint_mask(image, np.ones((4, 12), bool), x, row + 2, colour)
        draw_text(image, line.label, x + 16, row, BLACK)


def line_plot(series: list[Series], title: str, x_label: str, y_label: str,
              style: PlotStyle | None = None) -> np.ndarray:
    """A titled line plot with axes, grid, tick labels and a legend on the right."""
    style = style or PlotStyle()
    image = blank(style.height, style.width)
    draw_text(image, title, 8, 6, BLACK, scale=1)
    all_x = np.concatenate([s.x for s in series]) if series else np.zeros(0)
    all_y = np.concatenate([s.y for s in series]) if series else np.zeros(0)
    finite = np.isfinite(all_y)
    if not finite.any():
        draw_text(image, "NO DATA", style.width // 2 - 20, style.height // 2, AXIS)
        return image
    legend_width = max(text_width(s.label) for s in series) + 28
    y_range = _value_range(all_y[finite])
    y_ticks = nice_ticks(*y_range)
    tick_width = max(text_width(label) for label in tick_labels(y_ticks))
    x_values = np.log2(all_x) if style.log2_x else all_x
    axes = _Axes(
        left=tick_width + 22, right=style.width - legend_width - 10, top=24, bottom=style.height - 34,
        x_range=_value_range(x_values), y_range=y_range, log2_x=style.log2_x,
    )
    _draw_axes(image, axes, _x_ticks(all_x, style.log2_x), y_ticks)
    for x in style.vertical_lines:
        column = round(axes.px(x))
        draw_line(image, (column, axes.top), (column, axes.bottom), AXIS, dash=4)
    for index, line in enumerate(series):
        _draw_series(image, axes, line, PALETTE[index % len(PALETTE)], style.markers)
    draw_text(image, x_label, (axes.left + axes.right - text_width(x_label)) // 2, style.height - 14, BLACK)
    draw_text(image, y_label, 4, (axes.top + axes.bottom - text_width(y_label)) // 2, BLACK, vertical=True)
    _draw_legend(image, series, axes.right + 12, axes.top)
    return image


def film_strip(rows: list[np.ndarray], row_labels: list[str], column_labels: list[str],
               scale: int = 2, gap: int = 2) -> np.ndarray:
    """Grid of frames: one row per `[T, H, W, 3]` sequence, labelled rows and columns.

    Frames are enlarged `scale`× by pixel repetition so that 64×64 tiles stay crisp.
    """
    if not rows or len(rows) != len(row_labels):
        raise ValueError(f"film_strip: need one label per row, got {len(rows)} rows and {len(row_labels)} labels")
    num_columns, height, width = rows[0].shape[:3]
    if any(r.shape != rows[0].shape for r in rows) or len(column_labels) != num_columns:
        raise ValueError("film_strip: every row must have the same shape and one label per column")
    cell_h, cell_w = height * scale, width * scale
    label_width = max(text_width(label) for label in row_labels) + 10
    header = GLYPH_HEIGHT + 8
    image = blank(header + len(rows) * (cell_h + gap) + gap, label_width + num_columns * (cell_w + gap) + gap)
    for c, label in enumerate(column_labels):
        x = label_width + gap + c * (cell_w + gap)
        draw_text(image, label, x + (cell_w - text_width(label)) // 2, 4, BLACK)
    for r, (frames, label) in enumerate(zip(rows, row_labels)):
        y = header + gap + r * (cell_h + gap)
        draw_text(image, label, 4, y + (cell_h - GLYPH_HEIGHT) // 2, BLACK)
        for c, frame in enumerate(frames):
            x = label_width + gap + c * (cell_w + gap)
            image[y : y + cell_h, x : x + cell_w] = frame.repeat(scale, axis=0).repeat(scale, axis=1)
    return image


def stack(images: list[np.ndarray], vertical: bool = True, gap: int = 8) -> np.ndarray:
    """Place images one below (or beside) the other on a white background."""
    if not images:
        raise ValueError("stack: no images")
    along, across = (0, 1) if vertical else (1, 0)
    length = sum(i.shape[along] for i in images) + gap * (len(images) - 1)
    breadth = max(i.shape[across] for i in images)
    canvas = blank(length, breadth) if vertical else blank(breadth, length)
    offset = 0
    for image in images:
        h, w = image.shape[:2]
        if vertical:
            canvas[offset : offset + h, :w] = image
        else:
            canvas[:h, offset : offset + w] = image
        offset += image.shape[along] + gap
    return canvas
