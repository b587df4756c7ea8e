"""ExplorerBatch: B Explorer worlds simulated and rendered together with numpy.

Rules of the game (one step):
1. The action moves the player one tile (noop, up, down, left, right); water, trees and rock
   block the move (the player stays). Lava and cooled basalt are walkable.
2. The step counter advances; enemies walk their patrol lines (see terrain.py).
3. Standing on lava, sharing a tile with an enemy, or swapping tiles with one ends the episode
   with reward -1. Otherwise stepping on a coin collects it for reward +1.
A terminated world ignores further actions (reward 0) until it is reset.

Events (events.py) set *knobs* of the world state; knobs of one group change together, so an
event stays in force until another event of its group replaces it:
  time     day | dusk | night            weather  clear | rain | snow | fog
  season   summer | spring | autumn      coins    ordinary | coin shower
  enemies  ordinary | many | none        lava     small/large extent x hot/cooled
The base state after a reset is day, clear, summer, ordinary coins and enemies, small hot lava
pools; `state(i)["events"]` reports None for a group that no event has set since the reset.
Events never move terrain or object sites, they only switch sites on or off, so the map itself
survives every event.

Collected coins are remembered per world in a bounded 32x32 slot table keyed by the tile's
coordinates modulo 32: a coin stays collected unless another coin 32*k tiles away is collected
later (then the first one may come back), which keeps memory flat for unbounded play.

The view is `size // 4` tiles square with the player on tile (view // 2, view // 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .effects import TIMES, WEATHERS
from .events import EVENT_TYPES, GROUPS, EventType
from .noise import seed_to_u32
from .render import TILE_PIXELS, Renderer
from .sprites import COIN_OBJECT, ENEMY_OBJECT, NO_OBJECT, PLAYER_OBJECT, SEASONS
from .terrain import (
    BASALT, COIN, COIN_THRESHOLDS, ENEMY, ENEMY_THRESHOLDS, LAVA, NUM_GROUNDS, PLAYER, WALKABLE,
    EnemyHomes, MapWindow, enemy_homes, map_window, start_tiles,
)

ACTIONS: tuple[str, ...] = ("noop", "up", "down", "left", "right")
NUM_ACTIONS = len(ACTIONS)
FPS = 15  # frames per second the game is played and shown at
MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]], dtype=np.int64)  # (dx, dy) per action

KNOBS: tuple[str, ...] = ("time", "weather", "season", "coins", "enemies", "lava_extent", "lava_hot")
_BASE_KNOBS = {"time": 0, "weather": 0, "season": 0, "coins": 0, "enemies": 0,
               "lava_extent": 0, "lava_hot": 1}
EVENT_EFFECTS: dict[str, dict[str, int]] = {
    **{name: {"time": TIMES.index(name)} for name in TIMES},
    **{name: {"weather": WEATHERS.index(name)} for name in WEATHERS},
    **{name: {"season": SEASONS.index(name)} for name in SEASONS},
    "coins_normal": {"coins": 0},
    "coin_shower": {"coins": 1},
    "enemies_appear": {"enemies": 1},
    "enemies_vanish": {"enemies": 2},
    "lava_eruption": {"lava_extent": 1, "lava_hot": 1},
    "lava_cools": {"lava_hot": 0},
}
_missing_effects = {event.name for event in EVENT_TYPES} - set(EVENT_EFFECTS)
if _missing_effects:
    raise RuntimeError(f"events.json has events the simulator does not implement: {_missing_effects}")

_COIN_SLOTS = 32  # per axis; see the module docstring
_NO_COIN = np.iinfo(np.int64).min
_MARGIN = 2  # tiles around the view: enemies one tile outside may step in, their lines need one more
# The rules look at the tiles within _NEAR of the player: the move target, the enemies that can
# reach the new tile (homes up to two tiles away) and their patrol lines (one tile further).
_NEAR = 3
# What the frame parser should see for each render class (object * NUM_GROUNDS + ground):
# the object if there is one, else the ground.
_TILE_CLASS_OF_RENDER_CLASS = np.array(
    [ground for ground in range(NUM_GROUNDS)]
    + [tile for tile in (COIN, ENEMY, PLAYER) for _ in range(NUM_GROUNDS)], dtype=np.uint8)


def swapped_with_enemy(enemy_env: np.ndarray, enemy_before: np.ndarray, enemy_now: np.ndarray,
                       player_before: np.ndarray, player_now: np.ndarray) -> np.ndarray:
    """bool (B,): did the player and an enemy trade tiles this step (they met half-way)?

    enemy_env (N,) is the world of each enemy, enemy_before/enemy_now (N, 2) its (x, y) one step
    ago and now; player_before/player_now (B, 2) the player's (x, y).
    """
    crossed = ((enemy_before == player_now[enemy_env]).all(1)
               & (enemy_now == player_before[enemy_env]).all(1))
    return np.bincount(enemy_env[crossed], minlength=len(player_now)) > 0


@dataclass(frozen=True)
class ExplorerConfig:
    """size: frame side in pixels (a multiple of 4, at least 12); tiles are 4x4 pixels."""

    size: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise TypeError(f"ExplorerConfig.size must be an int, got {type(self.size).__name__}")
        if self.size < 12 or self.size % TILE_PIXELS:
            raise ValueError(f"ExplorerConfig.size must be a multiple of {TILE_PIXELS} and >= 12, "
                             f"got {self.size}")


def _coin_keys(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x << 32) | (y & 0xFFFFFFFF)


def _coin_slots(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (y % _COIN_SLOTS) * _COIN_SLOTS + x % _COIN_SLOTS


class ExplorerBatch:
    """`num_envs` Explorer worlds; world i starts with seed `seed + i` (see the module docstring)."""

    def __init__(self, num_envs: int, config: ExplorerConfig | None = None, seed: int = 0) -> None:
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.config = config or ExplorerConfig()
        self.view = self.config.size // TILE_PIXELS
        self._renderer = Renderer(self.config.size)
        shape = (self.num_envs,)
        self._seeds = np.zeros(shape, np.int64)
        self._keys = np.zeros(shape, np.uint32)
        self._x = np.zeros(shape, np.int64)
        self._y = np.zeros(shape, np.int64)
        self._steps = np.zeros(shape, np.int64)
        self._terminated = np.zeros(shape, bool)
        self._coins_collected = np.zeros(shape, np.int64)
        self._collected = np.full((self.num_envs, _COIN_SLOTS * _COIN_SLOTS), _NO_COIN, np.int64)
        self._knobs = np.zeros((self.num_envs, len(KNOBS)), np.int64)
        self._active = np.full((self.num_envs, len(GROUPS)), -1, np.int64)
        self._view: _View | None = None
        self.reset(int(seed) + np.arange(self.num_envs, dtype=np.int64))

    # ----------------------------------------------------------------------------------- input
    def _check_mask(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, dtype=bool)
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_envs,):
            raise ValueError(f"mask must be a bool array of shape ({self.num_envs},), "
                             f"got {mask.dtype} {mask.shape}")
        return mask

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be an integer array of shape ({self.num_envs},), "
                             f"got {actions.dtype} {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= NUM_ACTIONS):
            raise ValueError(f"actions must be in [0, {NUM_ACTIONS}) ({', '.join(ACTIONS)}), "
                             f"got values in [{actions.min()}, {actions.max()}]")
        return actions.astype(np.int64)

    # ---------------------------------------------------------------------------------- public
    def reset(self, seeds: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Start new episodes in the worlds where `mask` is True (all if None) with `seeds` (B,)."""
        seeds = np.asarray(seeds)
        if seeds.shape != (self.num_envs,) or not np.issubdtype(seeds.dtype, np.integer):
            raise ValueError(f"seeds must be an integer array of shape ({self.num_envs},), "
                             f"got {seeds.dtype} {seeds.shape}")
        rows = np.flatnonzero(self._check_mask(mask))
        if rows.size == 0:
            return
        self._seeds[rows] = seeds[rows]
        self._keys[rows] = seed_to_u32(seeds[rows])
        self._x[rows], self._y[rows] = start_tiles(self._keys[rows])
        self._steps[rows] = 0
        self._terminated[rows] = False
        self._coins_collected[rows] = 0
        self._collected[rows] = _NO_COIN
        self._knobs[rows] = [_BASE_KNOBS[knob] for knob in KNOBS]
        self._active[rows] = -1
        self._view = None

    def apply_events(self, event_types: Sequence[EventType | None]) -> None:
        """Put event_types[i] in force in world i; None leaves that world unchanged."""
        if len(event_types) != self.num_envs:
            raise ValueError(f"apply_events needs one entry per env ({self.num_envs}), "
                             f"got {len(event_types)}")
        for event in event_types:
            if event is not None and not isinstance(event, EventType):
                raise TypeError(f"apply_events takes EventType or None entries, got {type(event).__name__}"
                                " (use events.parse_event to turn a text into an EventType)")
        for row, event in enumerate(event_types):
            if event is None:
                continue
            for knob, value in EVENT_EFFECTS[event.name].items():
                self._knobs[row, KNOBS.index(knob)] = value
            self._active[row, GROUPS.index(event.group)] = EVENT_TYPES.index(event)
        self._view = None

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance every world one step; returns (rewards float32 (B,), terminated bool (B,)).

        The rules only read the tiles within _NEAR of the player; the visible view is computed
        later, once, when a frame, the tile classes or a state is asked for.
        """
        actions = self._check_actions(actions)
        alive = ~self._terminated
        moves = MOVES[actions] * alive[:, None]
        near = map_window(self._keys, self._x - _NEAR, self._y - _NEAR, 2 * _NEAR + 1, 2 * _NEAR + 1)
        worlds = np.arange(self.num_envs)
        moves[~WALKABLE[near.terrain[worlds, _NEAR + moves[:, 1], _NEAR + moves[:, 0]]]] = 0
        old_position = np.stack([self._x, self._y], 1)
        self._x += moves[:, 0]
        self._y += moves[:, 1]
        self._steps += alive
        self._view = None

        layers = self._layers(near)
        row, col = _NEAR + moves[:, 1], _NEAR + moves[:, 0]
        met_enemy = layers.enemy_now[worlds, row, col] | swapped_with_enemy(
            layers.enemies.env, layers.enemy_xy_before, layers.enemy_xy, old_position,
            np.stack([self._x, self._y], 1))
        died = alive & ((layers.ground[worlds, row, col] == LAVA) | met_enemy)
        collects = alive & ~died & layers.coins[worlds, row, col]
        self._collect_coins(np.flatnonzero(collects))
        self._terminated |= died
        rewards = collects.astype(np.float32) - died.astype(np.float32)
        return rewards, self._terminated.copy()

    def render(self) -> np.ndarray:
        """uint8 (B, size, size, 3) frames of the current state (a fresh array)."""
        view = self._visible()
        knob = {name: self._knobs[:, KNOBS.index(name)] for name in ("season", "time", "weather")}
        return self._renderer.frames(knob["season"], knob["time"], knob["weather"],
                                     view.render_classes, self._steps)

    def tile_classes(self) -> np.ndarray:
        """uint8 (B, view, view): the true class (index into TILE_CLASSES) of every visible tile."""
        return self._visible().tile_classes.copy()

    @property
    def terminated(self) -> np.ndarray:
        return self._terminated.copy()

    def state(self, i: int) -> dict:
        """The true state of world i: position, step, events by group, coins, visible enemies, tiles."""
        if not 0 <= i < self.num_envs:
            raise IndexError(f"world index {i} out of range for {self.num_envs} worlds")
        view = self._visible()
        return {
            "seed": int(self._seeds[i]),
            "position": (int(self._x[i]), int(self._y[i])),
            "step": int(self._steps[i]),
            "terminated": bool(self._terminated[i]),
            "coins_collected": int(self._coins_collected[i]),
            "events": {group: (EVENT_TYPES[index].name if index >= 0 else None)
                       for group, index in zip(GROUPS, self._active[i])},
            "enemies": [(int(x), int(y)) for x, y in view.enemies[view.enemy_env == i]],
            "tile_classes": view.tile_classes[i].copy(),
        }

    def batch_state(self) -> dict[str, Any]:
        """`state(i)` of every world at once, one array per key over the batch (the layout of a
        Gymnasium vector env's info): seed, step, coins_collected int64 (B,), terminated bool (B,),
        position and enemies object (B,) of tuples / lists, events {group: object (B,) of name or
        None}, tile_classes uint8 (B, view, view)."""
        view = self._visible()
        enemies: list[list[tuple[int, int]]] = [[] for _ in range(self.num_envs)]
        for env, (x, y) in zip(view.enemy_env.tolist(), view.enemies.tolist()):
            enemies[env].append((x, y))
        event_names = np.array([event.name for event in EVENT_TYPES] + [None], dtype=object)  # -1: None
        return {
            "seed": self._seeds.copy(),
            "position": _object_array([(int(x), int(y)) for x, y in zip(self._x.tolist(), self._y.tolist())]),
            "step": self._steps.copy(),
            "terminated": self._terminated.copy(),
            "coins_collected": self._coins_collected.copy(),
            "events": {group: event_names[self._active[:, g]] for g, group in enumerate(GROUPS)},
            "enemies": _object_array(enemies),
            "tile_classes": view.tile_classes.copy(),
        }

    # -------------------------------------------------------------------------------- internals
    def _visible(self) -> _View:
        """The visible world of every env, recomputed only after something changed it."""
        if self._view is None:
            self._view = self._compute_view()
        return self._view

    def _compute_view(self) -> _View:
        view = self.view
        side = view + 2 * _MARGIN
        window = map_window(self._keys, self._x - view // 2 - _MARGIN, self._y - view // 2 - _MARGIN,
                            side, side)
        layers = self._layers(window)
        inner = np.s_[:, _MARGIN:_MARGIN + view, _MARGIN:_MARGIN + view]
        objects = np.where(layers.coins[inner], COIN_OBJECT, NO_OBJECT).astype(np.uint8)
        objects[layers.enemy_now[inner]] = ENEMY_OBJECT
        objects[:, view // 2, view // 2] = PLAYER_OBJECT
        render_classes = objects * np.uint8(NUM_GROUNDS) + layers.ground[inner]
        top_left = window_origin(window, layers.enemies.env, _MARGIN)
        shown = ((layers.enemy_xy >= top_left) & (layers.enemy_xy < top_left + view)).all(1)
        return _View(
            render_classes=render_classes.reshape(self.num_envs, -1).astype(np.int64),
            tile_classes=_TILE_CLASS_OF_RENDER_CLASS[render_classes],
            enemy_env=layers.enemies.env[shown],
            enemies=layers.enemy_xy[shown],
        )

    def _knob(self, name: str) -> np.ndarray:
        return self._knobs[:, KNOBS.index(name)]

    def _layers(self, window: MapWindow) -> _Layers:
        """What `window` shows under each world's knobs at its current step."""
        homes = enemy_homes(window, ENEMY_THRESHOLDS[self._knob("enemies")])
        origin = window_origin(window, homes.env, 0)
        row, col = homes.positions(self._steps)
        row_before, col_before = homes.positions(self._steps - 1)
        enemy_now = np.zeros(window.terrain.shape, dtype=bool)
        enemy_now[homes.env, row, col] = True
        return _Layers(ground=self._ground(window), coins=self._coins(window), enemy_now=enemy_now,
                       enemies=homes, enemy_xy=origin + np.stack([col, row], 1),
                       enemy_xy_before=origin + np.stack([col_before, row_before], 1))

    def _ground(self, window: MapWindow) -> np.ndarray:
        large = self._knob("lava_extent")[:, None, None] == 1
        lava_sites = np.where(large, window.lava_field, window.lava_pool)
        hot = self._knob("lava_hot")[:, None, None] == 1
        return np.where(lava_sites, np.where(hot, LAVA, BASALT), window.terrain).astype(np.uint8)

    def _coins(self, window: MapWindow) -> np.ndarray:
        thresholds = COIN_THRESHOLDS[self._knob("coins")][:, None, None]
        coins = WALKABLE[window.terrain] & (window.coin_draw < thresholds)
        env, row, col = np.nonzero(coins)
        x, y = window.x0[env] + col, window.y0[env] + row
        taken = self._collected[env, _coin_slots(x, y)] == _coin_keys(x, y)
        coins[env[taken], row[taken], col[taken]] = False
        return coins

    def _collect_coins(self, rows: np.ndarray) -> None:
        x, y = self._x[rows], self._y[rows]
        self._collected[rows, _coin_slots(x, y)] = _coin_keys(x, y)
        self._coins_collected[rows] += 1


def _object_array(values: list) -> np.ndarray:
    """A 1-D object array holding each value as it is (numpy would unpack equal-length sequences)."""
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return array


def window_origin(window: MapWindow, env: np.ndarray, inset: int) -> np.ndarray:
    """(N, 2) map (x, y) of tile (inset, inset) of `window` in worlds `env`."""
    return np.stack([window.x0[env], window.y0[env]], 1) + inset


@dataclass
class _Layers:
    """A MapWindow as the worlds' knobs and step counts show it; arrays (B, h, w) except enemies."""

    ground: np.ndarray           # uint8 ground class (terrain, or lava/basalt over it)
    coins: np.ndarray            # bool: an uncollected coin lies here
    enemy_now: np.ndarray        # bool: an enemy stands here
    enemies: EnemyHomes          # every enemy whose home is in the window
    enemy_xy: np.ndarray         # int64 (N, 2): map (x, y) of each enemy now
    enemy_xy_before: np.ndarray  # int64 (N, 2): ... and one step ago


@dataclass
class _View:
    """What the player sees: derived from the state, recomputed lazily after each change."""

    render_classes: np.ndarray  # int64 (B, view * view)
    tile_classes: np.ndarray    # uint8 (B, view, view)
    enemy_env: np.ndarray       # int64 (N,): world of each visible enemy
    enemies: np.ndarray         # int64 (N, 2): map (x, y) of each visible enemy
