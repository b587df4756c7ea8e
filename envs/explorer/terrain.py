"""The Explorer map: tile classes and everything that is a pure function of (seed, x, y).

Coordinates: x grows to the right, y grows downwards (screen order); tiles are integers.

Terrain comes from value noise: an elevation field (two octaves) gives water, sand, grass and
rock; a moisture field thickens forests; the level line of a third field draws winding paths.
Objects sit on *sites* fixed by one per-tile hash, and the world's event state only decides which
sites are active, never where they are. That is why events can add coins, enemies or lava while
the map itself stays exactly the same:

- coin sites:  walkable tiles whose `coin_draw` byte is below the coin level's threshold
  (the coin-shower threshold is higher, so its coins are a superset of the ordinary ones);
- lava sites:  rare single-tile pools, plus noise blobs that only flow during an eruption; lava
  only covers grass or sand and never a tile that can hold a coin;
- enemy homes: walkable tiles whose `enemy_draw` byte is below the enemy level's threshold and
  whose patrol line (one tile either side, horizontal or vertical) is walkable too.
  An enemy walks its patrol line with the period-8 pattern `PATROL`, shifted by its own phase.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import NoiseAxes, hash_u32, noise_axes, value_noise

TILE_CLASSES: tuple[str, ...] = (
    "grass", "sand", "path", "water", "tree", "rock", "lava", "basalt", "coin", "enemy", "player",
)
GRASS, SAND, PATH, WATER, TREE, ROCK, LAVA, BASALT, COIN, ENEMY, PLAYER = range(len(TILE_CLASSES))
NUM_GROUNDS = 8  # grass .. basalt: what a tile shows when no object stands on it

# Indexed by terrain class (GRASS..ROCK): can the player or an enemy stand there?
WALKABLE = np.array([True, True, True, False, False, False], dtype=bool)

# Thresholds on a tile's random byte, one per event level (see batch.py for the levels).
COIN_THRESHOLDS = np.array([6, 48], dtype=np.uint8)        # ordinary, coin shower
ENEMY_THRESHOLDS = np.array([3, 14, 0], dtype=np.uint8)    # ordinary, enemies appear, enemies vanish
MAX_COIN_THRESHOLD = int(COIN_THRESHOLDS.max())
MAX_ENEMY_THRESHOLD = int(ENEMY_THRESHOLDS.max())
LAVA_POOL_THRESHOLD = 2          # rare single-tile pools that exist without an eruption
LAVA_ERUPTION_LEVEL = 0.64       # eruption blobs where the lava noise field exceeds this

PATROL = np.array([0, 0, 1, 1, 0, 0, -1, -1], dtype=np.int64)  # enemy offset along its line

# Salts keep the independent noise fields apart.
_SALT_ELEVATION_COARSE, _SALT_ELEVATION_FINE, _SALT_MOISTURE = 1, 2, 3
_SALT_PATHS, _SALT_LAVA, _SALT_TILE, _SALT_ENEMY = 4, 5, 6, 7


@dataclass
class MapWindow:
    """A rectangular piece of the map for each of B worlds; arrays are (B, height, width)."""

    key: np.ndarray            # uint32 (B,): the worlds' hash keys
    x0: np.ndarray             # int64 (B,): map x of the window's column 0
    y0: np.ndarray             # int64 (B,): map y of the window's row 0
    terrain: np.ndarray        # uint8 in GRASS..ROCK
    coin_draw: np.ndarray      # uint8; a coin site if below the coin threshold (walkable tiles only)
    lava_pool: np.ndarray      # bool; lava in every lava state except cooled
    lava_field: np.ndarray     # bool; lava during an eruption (includes the pools)
    enemy_draw: np.ndarray     # uint8; an enemy home if below the enemy threshold and the line is free


@dataclass
class EnemyHomes:
    """The enemy homes of a window, one entry per enemy (arrays of length N)."""

    env: np.ndarray       # int64: which world
    row: np.ndarray       # int64: window row of the home
    col: np.ndarray       # int64: window column of the home
    vertical: np.ndarray  # bool: the patrol line is vertical (else horizontal)
    phase: np.ndarray     # int64 in [0, 8): the home's shift in the PATROL pattern

    def positions(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window (row, col) of every enemy at its world's step count `steps` (B,)."""
        offset = PATROL[(steps[self.env] + self.phase) % len(PATROL)]
        return (self.row + np.where(self.vertical, offset, 0),
                self.col + np.where(self.vertical, 0, offset))


# Terrain from three binary-coded facts: elevation band (0 water, 1 sand, 2 grass, 3 rock),
# +4 if a tree grows here, +8 if a path runs here. Trees only grow on grass; paths cross grass,
# sand and forest but stop at water and rock.
_ELEVATION_BANDS = (0.33, 0.39, 0.70)
_TERRAIN_BY_CODE = np.array(
    [WATER, SAND, GRASS, ROCK,  # plain
     WATER, SAND, TREE, ROCK,   # tree
     WATER, PATH, PATH, ROCK,   # path
     WATER, PATH, PATH, ROCK],  # tree and path
    dtype=np.uint8,
)


def _terrain(key: np.ndarray, scales: dict[int, NoiseAxes], tile_bytes: np.ndarray) -> np.ndarray:
    elevation = 0.65 * value_noise(key, scales[4], _SALT_ELEVATION_COARSE)
    elevation += 0.35 * value_noise(key, scales[2], _SALT_ELEVATION_FINE)
    moisture = value_noise(key, scales[3], _SALT_MOISTURE)
    path_field = value_noise(key, scales[4], _SALT_PATHS)

    code = (elevation >= _ELEVATION_BANDS[0]).view(np.uint8)
    code += elevation >= _ELEVATION_BANDS[1]
    code += elevation > _ELEVATION_BANDS[2]
    # Forests are dense where it is moist, single trees are rare elsewhere.
    tree_chance = np.where(moisture > 0.60, np.uint8(150), np.uint8(7))
    code += (tile_bytes < tree_chance).view(np.uint8) << 2
    path_field -= 0.5
    code += (np.abs(path_field) < 0.022).view(np.uint8) << 3
    return _TERRAIN_BY_CODE[code]


def map_window(key: np.ndarray, x0: np.ndarray, y0: np.ndarray, height: int, width: int) -> MapWindow:
    """The map on tiles [x0, x0+width) x [y0, y0+height) of each world (key, x0, y0 are (B,))."""
    xs = x0[:, None, None] + np.arange(width, dtype=np.int64)[None, None, :]
    ys = y0[:, None, None] + np.arange(height, dtype=np.int64)[None, :, None]
    tile_hash = hash_u32(key[:, None, None], xs, ys, _SALT_TILE)
    tree_byte = (tile_hash & np.uint32(0xFF)).astype(np.uint8)
    coin_draw = ((tile_hash >> np.uint32(8)) & np.uint32(0xFF)).astype(np.uint8)
    pool_byte = ((tile_hash >> np.uint32(16)) & np.uint32(0xFF)).astype(np.uint8)
    enemy_draw = (tile_hash >> np.uint32(24)).astype(np.uint8)

    # Lattice layouts of the three noise scales (4, 8 and 16 tiles), shared by all fields.
    scales = {log2: noise_axes(x0, y0, height, width, log2) for log2 in (2, 3, 4)}
    terrain = _terrain(key, scales, tree_byte)
    lava_ground = ((terrain == GRASS) | (terrain == SAND)) & (coin_draw >= MAX_COIN_THRESHOLD)
    lava_pool = lava_ground & (pool_byte < LAVA_POOL_THRESHOLD)
    lava_noise = value_noise(key, scales[3], _SALT_LAVA)
    lava_field = lava_pool | (lava_ground & (lava_noise > LAVA_ERUPTION_LEVEL))

    return MapWindow(key=key, x0=x0, y0=y0, terrain=terrain, coin_draw=coin_draw, lava_pool=lava_pool,
                     lava_field=lava_field, enemy_draw=enemy_draw)


def enemy_homes(window: MapWindow, thresholds: np.ndarray) -> EnemyHomes:
    """The enemy homes in `window` for per-world `thresholds` (B,).

    A home needs its whole patrol line walkable, so tiles on the window's border (whose
    neighbours are outside the window) are never homes: callers keep a margin of two tiles.
    Only the few candidate tiles are hashed for their line direction and phase.
    """
    walkable = WALKABLE[window.terrain]
    candidates = walkable & (window.enemy_draw < thresholds[:, None, None])
    env, row, col = np.nonzero(candidates[:, 1:-1, 1:-1])
    row, col = row + 1, col + 1
    enemy_hash = hash_u32(window.key[env], window.x0[env] + col, window.y0[env] + row, _SALT_ENEMY)
    vertical = (enemy_hash & np.uint32(1)).astype(bool)
    step_row, step_col = vertical.astype(np.int64), (~vertical).astype(np.int64)
    line_free = (walkable[env, row - step_row, col - step_col]
                 & walkable[env, row + step_row, col + step_col])
    phase = ((enemy_hash >> np.uint32(1)) & np.uint32(7)).astype(np.int64)
    return EnemyHomes(env=env[line_free], row=row[line_free], col=col[line_free],
                      vertical=vertical[line_free], phase=phase[line_free])


def _patrol_cells(shape: tuple[int, ...], homes: EnemyHomes) -> np.ndarray:
    """bool: every tile some enemy of `homes` can ever stand on (home and both line neighbours)."""
    cells = np.zeros(shape, dtype=bool)
    step_row, step_col = homes.vertical.astype(np.int64), (~homes.vertical).astype(np.int64)
    for direction in (-1, 0, 1):
        cells[homes.env, homes.row + direction * step_row, homes.col + direction * step_col] = True
    return cells


def _walkable_neighbours(walkable: np.ndarray) -> np.ndarray:
    count = np.zeros(walkable.shape, dtype=np.int8)
    count[:, 1:, :] += walkable[:, :-1, :]
    count[:, :-1, :] += walkable[:, 1:, :]
    count[:, :, 1:] += walkable[:, :, :-1]
    count[:, :, :-1] += walkable[:, :, 1:]
    return count


def safe_start_mask(window: MapWindow) -> np.ndarray:
    """bool: tiles where a player may start whatever the events: walkable with two walkable
    neighbours, never lava, coin or enemy patrol tile at any event level."""
    walkable = WALKABLE[window.terrain]
    max_thresholds = np.full(len(walkable), MAX_ENEMY_THRESHOLD, dtype=np.uint8)
    patrolled = _patrol_cells(walkable.shape, enemy_homes(window, max_thresholds))
    return (walkable & (_walkable_neighbours(walkable) >= 2) & ~window.lava_field
            & (window.coin_draw >= MAX_COIN_THRESHOLD) & ~patrolled)


_START_RADIUS = 12
_START_SIDE = 2 * _START_RADIUS + 1
_START_TRIES = 64
# Tiles of a search square sorted by distance from its centre: the first safe one wins.
_START_OFFSETS = np.stack(np.meshgrid(np.arange(_START_SIDE), np.arange(_START_SIDE), indexing="ij"),
                          -1).reshape(-1, 2) - _START_RADIUS  # (tiles, 2) as (dy, dx)
_START_PRIORITY = np.abs(_START_OFFSETS).sum(1) * len(_START_OFFSETS) + np.arange(len(_START_OFFSETS))


def start_tiles(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int64 (B,): the safe tile nearest to the origin of each world (see safe_start_mask).

    Searches squares of 25x25 tiles, the first around (0, 0), then further east along the x axis
    (a whole square of water or rock is rare, so more than one try almost never happens).
    """
    x = np.zeros(len(key), dtype=np.int64)
    y = np.zeros(len(key), dtype=np.int64)
    pending = np.arange(len(key))
    for attempt in range(_START_TRIES):
        centre_x = np.full(len(pending), attempt * _START_SIDE, dtype=np.int64)
        centre_y = np.zeros(len(pending), dtype=np.int64)
        # One extra tile of margin on each side so patrol lines just outside the square count.
        window = map_window(key[pending], centre_x - _START_RADIUS - 2, centre_y - _START_RADIUS - 2,
                            _START_SIDE + 4, _START_SIDE + 4)
        safe = safe_start_mask(window)[:, 2:-2, 2:-2].reshape(len(pending), -1)
        best = np.where(safe, _START_PRIORITY[None, :], _START_PRIORITY.max() + 1).argmin(axis=1)
        found = safe[np.arange(len(pending)), best]
        x[pending[found]] = centre_x[found] + _START_OFFSETS[best[found], 1]
        y[pending[found]] = centre_y[found] + _START_OFFSETS[best[found], 0]
        pending = pending[~found]
        if pending.size == 0:
            return x, y
    raise RuntimeError(f"no safe start tile found for {pending.size} world(s) after {_START_TRIES} tries")
