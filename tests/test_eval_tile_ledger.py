"""The coin ledger: kept, revealed, appeared and vanished tiles between two parsed views."""
import numpy as np
import pytest

from worldsim.eval.tile_ledger import tile_ledger, view_steps

COIN, GRASS, ROCK = 8, 0, 5


def random_map(seed: int, size: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).choice([GRASS, ROCK, 1, 2, 3], size=(size, size))


def view_at(world: np.ndarray, x: int, y: int, view: int = 6) -> np.ndarray:
    """The view with the player on tile (view // 2, view // 2) at map tile (x, y)."""
    return world[y - view // 2 : y - view // 2 + view, x - view // 2 : x - view // 2 + view].copy()


@pytest.mark.parametrize("dx,dy", [(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)])
def test_view_steps_finds_the_players_step(dx, dy):
    world = random_map(1)
    before, after = view_at(world, 6, 6), view_at(world, 6 + dx, 6 + dy)
    assert view_steps(before[None], after[None]).tolist() == [[dx, dy]]


def test_a_coin_moving_with_the_view_is_kept_and_the_new_row_is_revealed():
    world = random_map(2)
    world[4, 4] = COIN  # in view before and after
    world[2, 6] = COIN  # comes into view with the step up (the top row of the view after)
    before, after = view_at(world, 6, 6), view_at(world, 6, 5)
    ledger = tile_ledger(before[None], after[None], np.array([[0, -1]]), COIN)
    assert {name: int(value[0]) for name, value in ledger.items()} == \
        {"visible": 2, "kept": 1, "revealed": 1, "appeared": 0, "vanished": 0}


def test_a_coin_in_known_ground_appears_and_a_lost_one_vanishes():
    before = np.full((1, 6, 6), GRASS)
    before[0, 1, 1] = COIN
    after = np.full((1, 6, 6), GRASS)
    after[0, 4, 4] = COIN  # where the view showed grass before
    ledger = tile_ledger(before, after, np.zeros((1, 2), dtype=int), COIN)
    assert (int(ledger["appeared"][0]), int(ledger["vanished"][0]), int(ledger["kept"][0])) == (1, 1, 0)


def test_the_players_tile_is_left_out():
    """A coin collected under the player is neither vanished nor kept."""
    before = np.full((1, 6, 6), GRASS)
    before[0, 2, 3] = COIN  # one tile above the player's tile (3, 3)
    after = np.full((1, 6, 6), GRASS)
    ledger = tile_ledger(before, after, np.array([[0, -1]]), COIN)
    assert all(int(value[0]) == 0 for value in ledger.values())


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="tile maps"):
        view_steps(np.zeros((2, 6, 6)), np.zeros((2, 6, 5)))
    with pytest.raises(ValueError, match="steps"):
        tile_ledger(np.zeros((2, 6, 6)), np.zeros((2, 6, 6)), np.zeros((3, 2)), COIN)
