"""Vectorised frame rendering: render classes -> pixels with one table lookup per tile.

A *render class* is `object * NUM_GROUNDS + ground` (e.g. a coin on sand). Because the view is
always centred on the player, every screen effect (lantern glow, fog thickness) depends only on
the screen cell. So for each *style* (season x time of day x weather) we precompute a table of
the final 4x4 pixels of every (screen cell, render class) pair; a frame is then one gather of
those 48-byte rows and a transpose. Only the falling rain/snow particles, which animate with the
step counter, are drawn afterwards as a sparse overlay. Styles are built lazily on first use and
shared by every renderer of the same frame size (`style_table`).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .effects import (
    FOG, FOG_COLOUR, PRECIPITATION_PHASES, RAIN, RAIN_ALPHA, RAIN_COLOUR, RAIN_WETNESS, SNOW,
    SNOW_ALPHA, SNOW_COLOUR, SNOW_WHITE, TIMES, WEATHERS, fog_alpha, light, rain_pixels, skylight,
    snow_pixels,
)
from .sprites import OBJECTS, SEASONS, SNOW_COVER, ground_emission, ground_sprites, object_sprites
from .terrain import NUM_GROUNDS

TILE_PIXELS = 4
NUM_RENDER_CLASSES = len(OBJECTS) * NUM_GROUNDS
NUM_STYLES = len(SEASONS) * len(TIMES) * len(WEATHERS)
_TILE_BYTES = TILE_PIXELS * TILE_PIXELS * 3
_PIXEL_ROW = np.dtype(f"V{TILE_PIXELS * 3}")  # one pixel row of a tile as an opaque item


def style_index(season: np.ndarray, time: np.ndarray, weather: np.ndarray) -> np.ndarray:
    """Index of the (season, time of day, weather) style; arrays broadcast."""
    return (season * len(TIMES) + time) * len(WEATHERS) + weather


def _tile_pixels(season: int, weather: int) -> tuple[np.ndarray, np.ndarray]:
    """Colours (K, 4, 4, 3) and emission (K, 4, 4) of every render class under season/weather."""
    grounds = ground_sprites(SEASONS[season])
    if weather == SNOW:
        grounds = grounds + (SNOW_WHITE - grounds) * SNOW_COVER[:, None, None, None]
    elif weather == RAIN:
        grounds = grounds * RAIN_WETNESS
    object_colours, object_alpha, object_emission = object_sprites()
    alpha = object_alpha[:, None, :, :, None]  # (objects, 1, 4, 4, 1)
    colours = grounds[None] * (1.0 - alpha) + object_colours[:, None] * alpha
    emission = ground_emission()[None] * (1.0 - alpha[..., 0]) + object_emission[:, None] * alpha[..., 0]
    return (colours.reshape(NUM_RENDER_CLASSES, TILE_PIXELS, TILE_PIXELS, 3),
            emission.reshape(NUM_RENDER_CLASSES, TILE_PIXELS, TILE_PIXELS))


def _per_cell(image: np.ndarray) -> np.ndarray:
    """(H, W, C) screen image -> (cells, 4, 4, C), cells in row-major screen order."""
    height, width, channels = image.shape
    rows, cols = height // TILE_PIXELS, width // TILE_PIXELS
    cells = image.reshape(rows, TILE_PIXELS, cols, TILE_PIXELS, channels).transpose(0, 2, 1, 3, 4)
    return cells.reshape(rows * cols, TILE_PIXELS, TILE_PIXELS, channels)


def decode_style(style: int) -> tuple[int, int, int]:
    """(season, time, weather) of a style index."""
    season, rest = divmod(style, len(TIMES) * len(WEATHERS))
    time, weather = divmod(rest, len(WEATHERS))
    return season, time, weather


def style_is_spatial(style: int) -> bool:
    """Whether the style's pixels depend on the screen cell (lantern glow, fog); other styles
    look the same on every cell, so they need (and use) only the table of cell 0."""
    _, time, weather = decode_style(style)
    return TIMES[time] == "night" or weather == FOG


def build_style(size: int, style: int) -> np.ndarray:
    """uint8 (cells, K, 48): final pixels of every render class on every screen cell
    (a single cell for styles that are not spatial)."""
    season, time, weather = decode_style(style)
    cells = (size // TILE_PIXELS) ** 2 if style_is_spatial(style) else 1
    colours, emission = _tile_pixels(season, weather)
    pixels = np.broadcast_to(colours[None], (cells, *colours.shape))
    if weather == FOG:
        fog = _per_cell(fog_alpha(size, size))[:cells, None]
        pixels = pixels + (FOG_COLOUR - pixels) * fog
    lighting = _per_cell(light(time, size, size))[:cells, None]  # (cells, 1, 4, 4, 3)
    glowing = emission[None, ..., None]
    lit = pixels * (lighting + (1.0 - lighting) * glowing) + skylight(time) * (1.0 - glowing)
    return np.clip(lit + 0.5, 0, 255).astype(np.uint8).reshape(cells, NUM_RENDER_CLASSES, _TILE_BYTES)


class StyleTable:
    """Final tile pixels of every style for one frame size, built lazily and shared."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cells = (size // TILE_PIXELS) ** 2
        # np.zeros maps pages lazily: styles that are never used cost no memory.
        self._table = np.zeros((NUM_STYLES, self.cells, NUM_RENDER_CLASSES, _TILE_BYTES), np.uint8)
        self.rows = self._table.reshape(-1, _TILE_BYTES)
        self._built = np.zeros(NUM_STYLES, dtype=bool)
        self.spatial = np.array([style_is_spatial(style) for style in range(NUM_STYLES)])

    def ensure_built(self, styles: np.ndarray) -> None:
        for style in np.unique(styles[~self._built[styles]]):
            pixels = build_style(self.size, int(style))
            self._table[style, :len(pixels)] = pixels
            self._built[style] = True


@lru_cache(maxsize=4)
def style_table(size: int) -> StyleTable:
    """The shared style table for frames of `size` pixels."""
    return StyleTable(size)


class Renderer:
    """Renders batches of frames of one size (one per simulator: it keeps a scratch buffer)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.view = size // TILE_PIXELS
        self._table = style_table(size)
        self._cell_offsets = np.arange(self._table.cells, dtype=np.int64) * NUM_RENDER_CLASSES
        self._tiles = np.empty((0, self._table.cells, _TILE_BYTES), np.uint8)
        # Particles are lit like the scene: multiplier and added light per time of day and pixel.
        lights = np.stack([light(time, size, size) for time in range(len(TIMES))])
        skylights = np.stack([skylight(time) for time in range(len(TIMES))])[:, None, None, :]
        self._particles = {
            RAIN: _Particles(rain_pixels(size, size), RAIN_COLOUR, RAIN_ALPHA, lights, skylights),
            SNOW: _Particles(snow_pixels(size, size), SNOW_COLOUR, SNOW_ALPHA, lights, skylights),
        }

    def frames(self, season: np.ndarray, time: np.ndarray, weather: np.ndarray,
               render_classes: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """uint8 (B, size, size, 3) frames, a fresh array.

        season, time, weather, steps: (B,) ints; render_classes: (B, cells) in row-major order.
        """
        styles = style_index(season, time, weather).astype(np.int64)
        self._table.ensure_built(styles)
        cells = self._cell_offsets * self._table.spatial[styles][:, None]  # cell 0 if not spatial
        rows = (styles[:, None] * self._table.cells) * NUM_RENDER_CLASSES + cells + render_classes
        batch = len(styles)
        if self._tiles.shape[0] != batch:
            self._tiles = np.empty((batch, self._table.cells, _TILE_BYTES), np.uint8)
        np.take(self._table.rows, rows, axis=0, out=self._tiles)
        # Reorder (tile row, tile col, pixel row) -> (tile row, pixel row, tile col), moving each
        # tile's pixel row (4 pixels = 12 bytes) as one opaque item: much faster than per byte.
        tile_rows = self._tiles.reshape(batch, self.view, self.view, _TILE_BYTES).view(_PIXEL_ROW)
        frames = np.empty((batch, self.view, TILE_PIXELS, self.view), _PIXEL_ROW)
        frames[...] = tile_rows.transpose(0, 1, 3, 2)
        frames = frames.view(np.uint8).reshape(batch, self.size, self.size, 3)
        self._draw_particles(frames, time, weather, steps)
        return frames

    def _draw_particles(self, frames: np.ndarray, time: np.ndarray, weather: np.ndarray,
                        steps: np.ndarray) -> None:
        pixels = frames.reshape(-1, 3)
        area = self.size * self.size
        for kind, particles in self._particles.items():
            envs = np.flatnonzero(weather == kind)
            if envs.size:
                where = particles.pixels[steps[envs] % PRECIPITATION_PHASES]  # (n, N) flat indices
                targets = (envs[:, None] * area + where).ravel()
                lit = particles.premultiplied[(time[envs][:, None] * area + where).ravel()]
                under = pixels[targets].astype(np.uint16)
                pixels[targets] = ((under * particles.keep + lit + 128) >> 8).astype(np.uint8)


class _Particles:
    """Rain or snow: where the particles are in each phase and their colour, in 8.8 fixed point
    (`premultiplied` = lit colour x alpha x 256 per time of day and pixel, `keep` = (1 - alpha) x 256)."""

    def __init__(self, pixels: np.ndarray, colour: np.ndarray, alpha: float, light: np.ndarray,
                 skylight: np.ndarray) -> None:
        self.pixels = pixels
        lit = np.clip(colour * light + skylight, 0, 255)  # (times, H, W, 3)
        self.premultiplied = np.round(lit * alpha * 256).astype(np.uint16).reshape(-1, 3)
        self.keep = np.uint16(round((1.0 - alpha) * 256))
