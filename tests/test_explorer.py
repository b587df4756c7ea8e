"""The Explorer simulator: determinism, blocking, rewards, termination, events and the map."""
import numpy as np
import pytest

from worldsim.envs.explorer import NUM_ACTIONS, ExplorerBatch, ExplorerConfig, events
from worldsim.envs.explorer.batch import MOVES, swapped_with_enemy
from worldsim.envs.explorer.noise import noise_axes, seed_to_u32, value_noise
from worldsim.envs.explorer.terrain import (
    BASALT, COIN, ENEMY, GRASS, LAVA, PLAYER, ROCK, SAND, TREE, WATER, map_window,
)

BLOCKING = [WATER, TREE, ROCK]
NOOP = 0
by_name = events.event_by_name


def noops(sim: ExplorerBatch) -> np.ndarray:
    return np.zeros(sim.num_envs, dtype=np.int64)


def positions(sim: ExplorerBatch) -> np.ndarray:
    return np.array([sim.state(i)["position"] for i in range(sim.num_envs)])


def neighbour_classes(sim: ExplorerBatch) -> np.ndarray:
    """(B, NUM_ACTIONS): tile class the player would step onto with each action."""
    centre = sim.view // 2
    classes = sim.tile_classes()
    return np.stack([classes[:, centre + dy, centre + dx] for dx, dy in MOVES], axis=1)


def visibly_different(a: np.ndarray, b: np.ndarray) -> bool:
    """At least 1% of the pixels changed by more than 24 levels in some channel."""
    changed = (np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > 24).mean()
    return changed >= 0.01


def test_frames_and_classes_have_the_documented_shapes():
    sim = ExplorerBatch(3, ExplorerConfig(size=32), seed=5)
    frames = sim.render()
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    classes = sim.tile_classes()
    assert classes.shape == (3, 8, 8) and classes.dtype == np.uint8
    assert (classes[:, 4, 4] == PLAYER).all()
    frames[:] = 0  # a fresh array: writing to it changes nothing inside
    assert sim.render().any()
    with pytest.raises(ValueError):
        ExplorerConfig(size=30)


def test_equal_seeds_actions_and_events_give_equal_rollouts():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, NUM_ACTIONS, (40, 6))
    switches = {5: "night falls", 12: "lava erupts", 20: "it starts raining", 30: "enemies appear"}

    def rollout(seed: int):
        sim = ExplorerBatch(6, seed=seed)
        frames, rewards = [], []
        for step, action in enumerate(actions):
            if step in switches:
                sim.apply_events([events.parse_event(switches[step])] * 6)
            reward, _ = sim.step(action)
            frames.append(sim.render())
            rewards.append(reward)
        return np.stack(frames), np.stack(rewards), [sim.state(i)["position"] for i in range(6)]

    first, second, other = rollout(7), rollout(7), rollout(8)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_start_tile_is_walkable_and_safe():
    sim = ExplorerBatch(64, seed=100)
    classes = sim.tile_classes()
    centre = sim.view // 2
    assert (classes[:, centre, centre] == PLAYER).all()
    walkable_around = np.isin(neighbour_classes(sim)[:, 1:], BLOCKING, invert=True).sum(1)
    assert (walkable_around >= 2).all()
    sim.apply_events([by_name("lava_eruption")] * 64)
    sim.apply_events([by_name("enemies_appear")] * 64)
    for _ in range(8):  # a full patrol period standing still: nothing can hurt the player
        rewards, terminated = sim.step(noops(sim))
        assert not terminated.any()


def test_water_trees_and_rock_block_movement():
    rng = np.random.default_rng(1)
    sim = ExplorerBatch(32, seed=3)
    blocked_seen = moved_seen = 0
    for _ in range(60):
        actions = rng.integers(1, NUM_ACTIONS, sim.num_envs)
        target = neighbour_classes(sim)[np.arange(sim.num_envs), actions]
        alive = ~sim.terminated
        before = positions(sim)
        sim.step(actions)
        after = positions(sim)
        blocked = np.isin(target, BLOCKING) & alive
        moved = ~np.isin(target, BLOCKING) & alive
        np.testing.assert_array_equal(after[blocked], before[blocked])
        np.testing.assert_array_equal(after[moved], before[moved] + MOVES[actions[moved]])
        blocked_seen += blocked.sum()
        moved_seen += moved.sum()
    assert blocked_seen > 20 and moved_seen > 200


def test_coin_gives_plus_one_once():
    sim = ExplorerBatch(48, seed=11)
    sim.apply_events([by_name("coin_shower")] * sim.num_envs)
    coin_actions = neighbour_classes(sim)[:, 1:] == COIN
    worlds = np.flatnonzero(coin_actions.any(1))
    assert worlds.size >= 5
    actions = noops(sim)
    actions[worlds] = coin_actions[worlds].argmax(1) + 1
    rewards, terminated = sim.step(actions)
    assert (rewards[worlds] == 1.0).all() and not terminated[worlds].any()
    assert (np.delete(rewards, worlds) == 0.0).all()
    assert all(sim.state(i)["coins_collected"] == 1 for i in worlds)
    back = {1: 2, 2: 1, 3: 4, 4: 3}
    sim.step(np.array([back.get(a, 0) for a in actions]))
    rewards, _ = sim.step(actions)  # onto the same tile again: the coin is gone
    assert (rewards[worlds] == 0.0).all()


def test_lava_ends_the_episode_with_minus_one():
    sim = ExplorerBatch(48, seed=21)
    sim.apply_events([by_name("lava_eruption")] * sim.num_envs)
    lava_actions = neighbour_classes(sim)[:, 1:] == LAVA
    worlds = np.flatnonzero(lava_actions.any(1))
    assert worlds.size >= 3
    actions = noops(sim)
    actions[worlds] = lava_actions[worlds].argmax(1) + 1
    rewards, terminated = sim.step(actions)
    assert (rewards[worlds] == -1.0).all() and terminated[worlds].all()
    assert not np.delete(terminated, worlds).any()
    frozen = positions(sim)
    rewards, terminated = sim.step(np.full(sim.num_envs, 2))
    assert (rewards[worlds] == 0.0).all() and terminated[worlds].all()  # stays over until reset
    np.testing.assert_array_equal(positions(sim)[worlds], frozen[worlds])
    sim.reset(np.arange(sim.num_envs), mask=terminated)
    assert not sim.terminated.any()


def test_enemy_contact_ends_the_episode():
    rng = np.random.default_rng(2)
    sim = ExplorerBatch(64, seed=31)
    sim.apply_events([by_name("enemies_appear")] * sim.num_envs)
    deaths = 0
    for _ in range(40):
        centre = sim.view // 2
        near = sim.tile_classes()[:, centre - 2:centre + 3, centre - 2:centre + 3]
        enemy_near = (near == ENEMY).any((1, 2))
        on_lava = neighbour_classes(sim) == LAVA
        actions = rng.integers(0, NUM_ACTIONS, sim.num_envs)
        alive = ~sim.terminated
        rewards, terminated = sim.step(actions)
        died = terminated & alive
        # Every death is explained by lava underfoot or an enemy that was close.
        assert (enemy_near[died] | on_lava[np.arange(sim.num_envs), actions][died]).all()
        assert (rewards[died] == -1.0).all()
        deaths += (died & ~on_lava[np.arange(sim.num_envs), actions]).sum()
    assert deaths >= 3


def test_every_event_changes_the_frame_and_persists_until_replaced():
    before_of = {
        "day": "night", "dusk": "day", "night": "day", "clear": "rain", "rain": "clear",
        "snow": "clear", "fog": "clear", "summer": "autumn", "spring": "summer", "autumn": "summer",
        "coin_shower": "coins_normal", "coins_normal": "coin_shower",
        "enemies_appear": "enemies_vanish", "enemies_vanish": "enemies_appear",
        "lava_eruption": "lava_cools", "lava_cools": "lava_eruption",
    }
    assert set(before_of) == set(events.EVENT_NAMES)
    worlds = 6
    for event in events.EVENT_TYPES:
        before = by_name(before_of[event.name])
        twin, sim = ExplorerBatch(worlds, seed=40), ExplorerBatch(worlds, seed=40)
        for world in (twin, sim):
            world.apply_events([before] * worlds)
        sim.apply_events([event] * worlds)
        for _ in range(5):  # the event stays in force while time passes
            twin.step(noops(twin))
            sim.step(noops(sim))
        during, without = sim.render(), twin.render()
        changed = [visibly_different(a, b) for a, b in zip(during, without)]
        local = event.group in ("coins", "enemies", "lava")  # these show where their sites are in view
        assert (np.mean(changed) >= 0.5) if local else all(changed), event.name
        assert all(sim.state(i)["events"][event.group] == event.name for i in range(worlds))
        sim.apply_events([before] * worlds)
        assert all(sim.state(i)["events"][event.group] == before.name for i in range(worlds))
        if event.group != "lava":  # cooled lava keeps the extent the last eruption gave it
            np.testing.assert_array_equal(sim.render(), twin.render())
        else:
            assert not np.array_equal(sim.render(), during)


def test_events_of_different_groups_combine():
    sim = ExplorerBatch(1, seed=0)
    for text in ("night falls", "it starts raining", "autumn arrives"):
        sim.apply_events([events.parse_event(text)])
    state_events = sim.state(0)["events"]
    groups = ("time", "weather", "season")
    assert tuple(state_events[group] for group in groups) == ("night", "rain", "autumn")
    night_only = ExplorerBatch(1, seed=0)
    night_only.apply_events([by_name("night")])
    assert visibly_different(sim.render()[0], night_only.render()[0])


def test_the_map_layout_survives_every_event():
    rng = np.random.default_rng(4)
    worlds = 8
    sim, twin = ExplorerBatch(worlds, seed=50), ExplorerBatch(worlds, seed=50)
    overlays = [LAVA, BASALT, COIN, ENEMY, PLAYER]
    for step in range(48):
        sim.apply_events([events.EVENT_TYPES[i] for i in rng.integers(0, len(events.EVENT_TYPES), worlds)])
        sim.step(noops(sim))
        twin.step(noops(twin))
        evented, plain = sim.tile_classes(), twin.tile_classes()
        differs = evented != plain
        assert (np.isin(evented[differs], overlays) | np.isin(plain[differs], overlays)).all()
        # Blocking terrain is exactly the same; lava and basalt only ever cover grass or sand.
        np.testing.assert_array_equal(np.isin(evented, BLOCKING), np.isin(plain, BLOCKING))
        covered = np.isin(evented, [LAVA, BASALT]) & ~np.isin(plain, [LAVA, BASALT, ENEMY, COIN])
        assert np.isin(plain[covered], [GRASS, SAND]).all()


def test_map_windows_agree_wherever_they_overlap():
    key = seed_to_u32(np.array([9, 10]))
    big = map_window(key, np.array([-40, 10**9]), np.array([-25, -(10**9)]), 30, 40)
    small = map_window(key, np.array([-33, 10**9 + 17]), np.array([-20, -(10**9) + 4]), 12, 9)
    np.testing.assert_array_equal(small.terrain[0], big.terrain[0, 5:17, 7:16])
    np.testing.assert_array_equal(small.terrain[1], big.terrain[1, 4:16, 17:26])
    np.testing.assert_array_equal(small.coin_draw[1], big.coin_draw[1, 4:16, 17:26])
    square = map_window(key, np.array([-35, 10**9 + 2]), np.array([-21, -(10**9)]), 16, 16)
    np.testing.assert_array_equal(square.terrain[0], big.terrain[0, 4:20, 5:21])
    np.testing.assert_array_equal(square.lava_field[1], big.lava_field[1, :16, 2:18])
    assert len(np.unique(big.terrain)) >= 4


def test_value_noise_is_smooth_and_in_range():
    key = seed_to_u32(np.array([1]))
    axes = noise_axes(np.array([-70]), np.array([5]), 48, 64, 3)
    field = value_noise(key, axes, salt=1)
    assert field.min() >= 0.0 and field.max() < 1.0
    assert np.abs(np.diff(field, axis=2)).max() < 0.35  # neighbours differ by less than one jump


def test_bad_input_is_rejected_and_changes_nothing():
    sim = ExplorerBatch(2, seed=0)
    frames, state = sim.render(), sim.state(0)
    for bad in (np.array([0, 5]), np.array([0, -1]), np.array([0.0, 1.0]), np.zeros(3, np.int64)):
        with pytest.raises(ValueError):
            sim.step(bad)
    with pytest.raises(ValueError):
        sim.reset(np.zeros(3, np.int64))
    with pytest.raises(ValueError):
        sim.reset(np.zeros(2, np.int64), mask=np.array([1, 0]))
    with pytest.raises(ValueError):
        sim.apply_events([by_name("night")])
    with pytest.raises(TypeError):
        sim.apply_events(["night falls", None])
    np.testing.assert_array_equal(sim.render(), frames)
    assert sim.state(0)["position"] == state["position"] and sim.state(0)["step"] == 0


def test_reset_with_a_mask_only_touches_those_worlds():
    sim = ExplorerBatch(3, seed=0)
    sim.apply_events([by_name("night")] * 3)
    sim.step(np.array([1, 2, 3]))
    sim.reset(np.array([100, 101, 102]), mask=np.array([False, True, False]))
    assert [sim.state(i)["step"] for i in range(3)] == [1, 0, 1]
    assert sim.state(1)["seed"] == 101 and sim.state(1)["events"]["time"] is None
    assert sim.state(0)["events"]["time"] == "night"


def test_trading_tiles_with_an_enemy_counts_as_contact():
    enemy_env = np.array([0, 1, 1])
    enemy_before = np.array([[5, 5], [0, 0], [9, 9]])
    enemy_now = np.array([[4, 5], [0, 1], [9, 8]])
    player_before = np.array([[4, 5], [3, 3], [0, 0]])
    player_now = np.array([[5, 5], [3, 4], [1, 0]])
    np.testing.assert_array_equal(
        swapped_with_enemy(enemy_env, enemy_before, enemy_now, player_before, player_now),
        [True, False, False])
