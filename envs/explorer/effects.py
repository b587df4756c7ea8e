"""Screen-space effects of time of day and weather, as pure functions of the frame geometry.

The view is centred on the player, so every effect can be computed once per screen pixel:

- light:  a per-pixel colour multiplier (plus a `skylight` colour added on top) for each time of
          day. Dusk is a dimmer, rose-orange sunset cast; night
          is a dark blue with a warm lantern glow around the player, so the player's
          surroundings stay readable while the frame unmistakably looks like night.
- fog:    a blend towards grey that thickens with distance from the player.
- rain and snow: sparse animated particles (streaks, flakes) given as flat pixel indices for
          each of `PRECIPITATION_PHASES` animation phases; the phase is the env's step counter
          modulo that period, and particles travel a whole frame per period so the loop is seamless.
"""
from __future__ import annotations

import numpy as np

TIMES: tuple[str, ...] = ("day", "dusk", "night")
WEATHERS: tuple[str, ...] = ("clear", "rain", "snow", "fog")
CLEAR, RAIN, SNOW, FOG = range(len(WEATHERS))
PRECIPITATION_PHASES = 16

_DUSK_TINT = np.array([0.80, 0.52, 0.50], dtype=np.float32)
_DUSK_SKYLIGHT = np.array([70.0, 22.0, 30.0], dtype=np.float32)  # warm rose light of the low sun
_NIGHT_TINT = np.array([0.20, 0.24, 0.44], dtype=np.float32)
_LANTERN_TINT = np.array([0.80, 0.74, 0.58], dtype=np.float32)
_LANTERN_RADIUS_TILES = 4.5
FOG_COLOUR = np.array([196.0, 200.0, 206.0], dtype=np.float32)
RAIN_WETNESS = np.array([0.78, 0.82, 0.92], dtype=np.float32)
RAIN_COLOUR = np.array([190.0, 210.0, 245.0], dtype=np.float32)
RAIN_ALPHA = 0.65
SNOW_COLOUR = np.array([250.0, 252.0, 255.0], dtype=np.float32)
SNOW_ALPHA = 0.95
SNOW_WHITE = np.array([236.0, 240.0, 248.0], dtype=np.float32)
_RAIN_DROPS, _SNOW_FLAKES, _STREAK_LENGTH = 36, 56, 4


def distance_from_player(height: int, width: int, tile: int = 4) -> np.ndarray:
    """float32 (H, W): distance in tiles from each pixel centre to the player's tile centre."""
    centre_y = (height // tile // 2) * tile + tile / 2
    centre_x = (width // tile // 2) * tile + tile / 2
    ys = np.arange(height, dtype=np.float32)[:, None] + 0.5 - centre_y
    xs = np.arange(width, dtype=np.float32)[None, :] + 0.5 - centre_x
    return np.sqrt(ys * ys + xs * xs) / tile


def skylight(time: int) -> np.ndarray:
    """float32 (3,): light added to every lit pixel at time of day `time` (after `light`)."""
    return _DUSK_SKYLIGHT if TIMES[time] == "dusk" else np.zeros(3, dtype=np.float32)


def light(time: int, height: int, width: int) -> np.ndarray:
    """float32 (H, W, 3) colour multiplier of time of day `time` (index into TIMES)."""
    if TIMES[time] == "day":
        return np.ones((height, width, 3), dtype=np.float32)
    if TIMES[time] == "dusk":
        return np.broadcast_to(_DUSK_TINT, (height, width, 3)).copy()
    glow = np.clip(1.0 - distance_from_player(height, width) / _LANTERN_RADIUS_TILES, 0.0, 1.0)
    glow = glow[..., None] ** 1.5
    return _NIGHT_TINT + (_LANTERN_TINT - _NIGHT_TINT) * glow


def fog_alpha(height: int, width: int) -> np.ndarray:
    """float32 (H, W, 1): how much fog hides each pixel (thin near the player, thick far away)."""
    far = np.clip((distance_from_player(height, width) - 2.0) / 6.0, 0.0, 1.0)
    return (0.30 + 0.32 * far)[..., None].astype(np.float32)


def _particle_origins(count: int, height: int, width: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(salt)  # fixed pattern: the same on every run
    return rng.integers(0, height, count), rng.integers(0, width, count)


def rain_pixels(height: int, width: int) -> np.ndarray:
    """int64 (PRECIPITATION_PHASES, N): flat pixel indices of the rain streaks in each phase.

    Streaks slant one pixel left per two down and fall two frame heights per loop (drifting one
    frame width left), so phase 0 follows the last phase without a jump.
    """
    oy, ox = _particle_origins(_RAIN_DROPS, height, width, salt=11)
    phases = np.arange(PRECIPITATION_PHASES)[:, None, None]
    along = np.arange(_STREAK_LENGTH)[None, None, :]
    ys = oy[None, :, None] + phases * (2 * height) // PRECIPITATION_PHASES + along
    xs = ox[None, :, None] - phases * width // PRECIPITATION_PHASES - along // 2
    return ((ys % height) * width + xs % width).reshape(PRECIPITATION_PHASES, -1)


def snow_pixels(height: int, width: int) -> np.ndarray:
    """int64 (PRECIPITATION_PHASES, N): flat pixel indices of the snowflakes in each phase.

    Flakes fall one frame height per loop and sway sideways on a sine, both periodic in the loop.
    """
    oy, ox = _particle_origins(_SNOW_FLAKES, height, width, salt=12)
    sway_phase = np.random.default_rng(13).uniform(0, 2 * np.pi, _SNOW_FLAKES)
    phases = np.arange(PRECIPITATION_PHASES)[:, None]
    ys = oy[None, :] + phases * height // PRECIPITATION_PHASES
    sway = np.round(1.5 * np.sin(2 * np.pi * phases / PRECIPITATION_PHASES + sway_phase[None, :]))
    xs = ox[None, :] + sway.astype(np.int64)
    return (ys % height) * width + xs % width
