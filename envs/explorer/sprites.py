"""The Explorer's 4x4-pixel sprites and season palettes (pure data, read by render.py).

A sprite is drawn as four strings of four palette letters. Grounds fill the whole tile; objects
(coin, enemy, player) use '.' for transparent pixels and are laid over the ground they stand on.
Seasons repaint the living tiles (grass and trees) only, so every season keeps the same layout.

Emission says how much a pixel shines by itself (lava, coins, the enemies' eyes): at dusk and at
night those pixels keep their colour instead of being darkened, as a light source would.
"""
from __future__ import annotations

import numpy as np

from .terrain import BASALT, GRASS, LAVA, NUM_GROUNDS, PATH, ROCK, SAND, TREE, WATER

SEASONS: tuple[str, ...] = ("summer", "spring", "autumn")
OBJECTS: tuple[str, ...] = ("none", "coin", "enemy", "player")
NO_OBJECT, COIN_OBJECT, ENEMY_OBJECT, PLAYER_OBJECT = range(len(OBJECTS))

_GROUND_PATTERNS: dict[int, tuple[str, ...]] = {
    GRASS: ("ggdg", "gggg", "dggf", "gggg"),
    SAND: ("ssss", "sSss", "sssS", "ssss"),
    PATH: ("pppp", "pqpp", "pppq", "pqpp"),
    WATER: ("wwww", "wWWw", "wwww", "Wwww"),
    TREE: ("gccg", "cCcc", "cccc", "gttg"),
    ROCK: ("rRrr", "Rrrr", "rrrk", "rrkk"),
    LAVA: ("oyoo", "oool", "loyo", "oloo"),
    BASALT: ("bbbb", "bebb", "bbbe", "ebbb"),
}

# Colours every season shares.
_COMMON_COLOURS: dict[str, tuple[int, int, int]] = {
    "s": (222, 204, 140), "S": (196, 176, 112),       # sand, darker grain
    "p": (176, 138, 92), "q": (204, 174, 130),        # earth path, pebble
    "w": (46, 104, 196), "W": (120, 170, 232),        # water, wave crest
    "t": (104, 70, 40),                               # tree trunk
    "r": (128, 128, 134), "R": (172, 172, 178), "k": (88, 88, 96),  # rock, light, shadow
    "o": (236, 96, 24), "y": (255, 214, 64), "l": (200, 40, 20),    # lava, hot spot, deep red
    "b": (52, 48, 54), "e": (110, 64, 52),            # cooled basalt, dull crack
}

# Living colours per season: grass g, darker grass d, flower/detail f, canopy c, canopy light C.
_SEASON_COLOURS: dict[str, dict[str, tuple[int, int, int]]] = {
    "summer": {"g": (84, 158, 62), "d": (64, 132, 50), "f": (64, 132, 50),
               "c": (30, 98, 44), "C": (58, 132, 60)},
    "spring": {"g": (126, 196, 86), "d": (104, 176, 72), "f": (250, 228, 90),
               "c": (232, 150, 196), "C": (252, 208, 228)},
    "autumn": {"g": (160, 146, 72), "d": (134, 116, 58), "f": (196, 96, 40),
               "c": (214, 112, 30), "C": (236, 170, 50)},
}

_OBJECT_PATTERNS: dict[int, tuple[str, ...]] = {
    NO_OBJECT: ("....", "....", "....", "...."),
    COIN_OBJECT: (".YY.", "YHYY", "YYYO", ".OO."),
    ENEMY_OBJECT: (".mm.", "mEEm", "mmmm", "m..m"),
    PLAYER_OBJECT: (".hh.", "aaaa", ".aa.", ".nn."),
}
_OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "Y": (250, 204, 40), "H": (255, 250, 200), "O": (196, 140, 20),   # coin, highlight, rim
    "m": (170, 30, 70), "E": (255, 240, 120),                          # enemy body, glowing eyes
    "h": (250, 226, 196), "a": (0, 208, 220), "n": (30, 40, 90),       # player head, tunic, legs
}

# How much each palette letter shines by itself (0 = lit by the scene only).
_EMISSION: dict[str, float] = {"o": 1.0, "y": 1.0, "l": 1.0, "e": 0.35, "Y": 0.6, "H": 0.8,
                               "O": 0.5, "E": 1.0}

# How much snow covers each ground (0 = none, 1 = white).
SNOW_COVER = np.array([0.55, 0.45, 0.40, 0.12, 0.35, 0.45, 0.0, 0.35], dtype=np.float32)


def _paint(pattern: tuple[str, ...], colours: dict[str, tuple[int, int, int]]) -> np.ndarray:
    return np.array([[colours.get(letter, (0, 0, 0)) for letter in row] for row in pattern],
                    dtype=np.float32)


def _emission(pattern: tuple[str, ...]) -> np.ndarray:
    return np.array([[_EMISSION.get(letter, 0.0) for letter in row] for row in pattern],
                    dtype=np.float32)


def ground_sprites(season: str) -> np.ndarray:
    """float32 (NUM_GROUNDS, 4, 4, 3) colours 0..255 of every ground in `season`."""
    colours = {**_COMMON_COLOURS, **_SEASON_COLOURS[season]}
    return np.stack([_paint(_GROUND_PATTERNS[ground], colours) for ground in range(NUM_GROUNDS)])


def ground_emission() -> np.ndarray:
    """float32 (NUM_GROUNDS, 4, 4) self-illumination of every ground pixel."""
    return np.stack([_emission(_GROUND_PATTERNS[ground]) for ground in range(NUM_GROUNDS)])


def object_sprites() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(colours (4, 4, 4, 3), alpha (4, 4, 4), emission (4, 4, 4)) for each of OBJECTS."""
    patterns = [_OBJECT_PATTERNS[obj] for obj in range(len(OBJECTS))]
    colours = np.stack([_paint(pattern, _OBJECT_COLOURS) for pattern in patterns])
    alpha = np.stack([
        np.array([[letter != "." for letter in row] for row in pattern], dtype=np.float32)
        for pattern in patterns
    ])
    emission = np.stack([_emission(pattern) for pattern in patterns])
    return colours, alpha, emission
