"""WorldModel and Simulator: determinism, conditioning, batching, validation, resets, long rollouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_world_fixtures import MICRO, make_world

from worldsim.model import to_frames, to_pixels


@pytest.fixture(scope="module")
def world():
    return make_world(seed=0)


def play(world, batch=1, seed=0, num_steps=4, event="a sunny meadow", actions=None, **simulator_options):
    sim = world.simulator(batch_size=batch, seed=seed, **simulator_options)
    frames = [sim.reset(event=event)]
    for index in range(num_steps):
        frames.append(sim.step(actions[index] if actions else [index % 5] * batch)[0])
    return torch.stack(frames, dim=1), sim


def assert_same_state(sim, twin):
    """Everything observable, and the future: the next step agrees too."""
    assert sim.events == twin.events
    assert torch.equal(sim.frames, twin.frames)
    assert torch.equal(sim.cache.num_frames, twin.cache.num_frames)
    assert torch.equal(sim._noise.counters, twin._noise.counters)
    actions = [1] * sim.batch_size
    assert torch.equal(sim.step(actions)[0], twin.step(actions)[0])


# ----------------------------------------------------------------------------------------------
# determinism and conditioning


def test_same_seed_gives_the_same_frames(world):
    first, _ = play(world, batch=2, seed=3)
    second, _ = play(world, batch=2, seed=3)
    assert torch.equal(first, second)
    other, _ = play(world, batch=2, seed=4)
    assert not torch.equal(first, other)


def test_events_change_the_frames(world):
    meadow, _ = play(world, event="a sunny meadow")
    night, _ = play(world, event="night falls")
    nothing, _ = play(world, event=None)
    assert not torch.equal(meadow, night)
    assert not torch.equal(meadow, nothing)


def test_an_event_switch_changes_the_following_frames(world):
    sim = world.simulator(batch_size=2, seed=0)
    sim.reset(event="a sunny meadow")
    sim.step([1, 1])
    sim.step([2, 2], events=["night falls", None])
    assert sim.events == ["night falls", "a sunny meadow"]
    frames = [sim.step([3, 3])[0], sim.step([4, 4])[0]]
    for row, switched in ((0, True), (1, False)):
        lone, _ = play(world, seed=row, num_steps=4, actions=[[1], [2], [3], [4]])
        differences = (torch.stack(frames)[:, row].int() - lone[0, -2:].int()).abs()
        assert (differences.max() > 1) == switched


def test_actions_change_the_frames(world):
    left, _ = play(world, actions=[[3]] * 4)
    right, _ = play(world, actions=[[4]] * 4)
    assert torch.equal(left[:, 0], right[:, 0])  # the first frame has no action yet
    assert not torch.equal(left[:, 1:], right[:, 1:])


def test_step_outputs(world):
    sim = world.simulator(batch_size=3, seed=0)
    frames = sim.reset(event=["a sunny meadow", None, "night falls"])
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == torch.uint8
    frames, reward, terminated = sim.step(np.array([0, 1, 2]))
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == torch.uint8
    assert reward.shape == (3,) and reward.dtype == torch.float32
    assert set(reward.tolist()) <= {-1.0, 0.0, 1.0}
    assert terminated.shape == (3,) and terminated.dtype == torch.bool
    assert frames.device == reward.device == terminated.device == world.device


def test_a_batch_equals_its_members_run_alone(world):
    """Over enough steps to evict from the cache window, with row 1 restarted midway, so the
    rows fill and evict out of step (each row's fused commit must use its own layout)."""
    batch, restart_at, restart_seed = 3, 6, 20
    actions = np.random.default_rng(0).integers(0, 5, size=(3 * world.config.transformer.window_frames, batch))
    events_at_step_2 = ["night falls", None, "enemies appear"]
    start_events = ["a sunny meadow", "it starts snowing", None]
    sim = world.simulator(batch_size=batch, seed=10)
    together = [sim.reset(event=start_events)]
    for index, step_actions in enumerate(actions):
        if index == restart_at:
            rows = torch.tensor([False, True, False])
            together.append(sim.reset(event="enemies appear", rows=rows, seed=[0, restart_seed, 0]))
        together.append(sim.step(step_actions, events=events_at_step_2 if index == 2 else None)[0])
    together = torch.stack(together, dim=1).int()
    for row, start_event in enumerate(start_events):
        alone_sim = world.simulator(batch_size=1, seed=10 + row)
        alone = [alone_sim.reset(event=start_event)]
        for index, step_actions in enumerate(actions):
            if index == restart_at:
                restarted = row == 1
                alone.append(alone_sim.reset(event="enemies appear", seed=restart_seed) if restarted else alone_sim.frames)
            events = [events_at_step_2[row]] if index == 2 else None
            alone.append(alone_sim.step([step_actions[row]], events=events)[0])
        alone = torch.stack(alone, dim=1).int()
        # Batched matrix products may round differently from single-row ones: allow one level.
        assert (together[row] - alone[0]).abs().max() <= 1
        assert (together[row] != alone[0]).float().mean() < 0.01
    assert sim.cache.num_frames.tolist() == [len(actions), len(actions) - restart_at, len(actions)]


def test_steps_override(world):
    assert world.simulator(batch_size=1, steps=1).sigmas == [1.0, 0.0]
    assert world.simulator(batch_size=1, steps=[1.0, 0.5]).sigmas == [1.0, 0.5, 0.0]
    one_step, _ = play(world, num_steps=2, steps=1)
    default, _ = play(world, num_steps=2)
    assert torch.equal(one_step[:, 0], default[:, 0])  # the first frame uses the first-frame steps
    assert not torch.equal(one_step[:, 1:], default[:, 1:])


# ----------------------------------------------------------------------------------------------
# bad input


def twins(world, batch=2):
    sims = []
    for _ in range(2):
        sim = world.simulator(batch_size=batch, seed=5)
        sim.reset(event="a sunny meadow")
        sim.step([1] * batch)
        sims.append(sim)
    return sims


BAD_STEPS = [
    ({"actions": [0, 5]}, "out of range"),
    ({"actions": [-1, 0]}, "out of range"),
    ({"actions": [0, 1, 2]}, "shape"),
    ({"actions": [0]}, "shape"),
    ({"actions": [0.5, 1.0]}, "integers"),
    ({"actions": torch.tensor([0.0, 1.0])}, "integer dtype"),
    ({"actions": [0, 1], "events": ["night falls"]}, "one entry per env"),
    ({"actions": [0, 1], "events": "night falls"}, "list"),
    ({"actions": [0, 1], "events": [None, 7]}, "string"),
    ({"actions": [0, 1], "events": [None, "night falls " * 30]}, "too long"),
]


@pytest.mark.parametrize("call, message", BAD_STEPS)
def test_bad_step_input_is_rejected_and_changes_nothing(world, call, message):
    sim, twin = twins(world)
    with pytest.raises(ValueError, match=message):
        sim.step(**call)
    assert_same_state(sim, twin)


BAD_RESETS = [
    ({"rows": [True, False, True]}, "shape"),
    ({"rows": [1, 0]}, "bool"),
    ({"event": 3}, "list"),
    ({"event": ["night falls"]}, "one entry per env"),
    ({"event": "snow " * 100}, "too long"),
    ({"context": np.zeros((32, 32, 3), np.uint8)}, "context"),
    ({"context": np.zeros((64, 64, 3), np.float32)}, "uint8"),
    ({"seed": [1]}, "seed"),
]


@pytest.mark.parametrize("call, message", BAD_RESETS)
def test_bad_reset_input_is_rejected_and_changes_nothing(world, call, message):
    sim, twin = twins(world)
    with pytest.raises(ValueError, match=message):
        sim.reset(**call)
    assert_same_state(sim, twin)


def test_order_of_calls_is_checked(world):
    sim = world.simulator(batch_size=2)
    with pytest.raises(RuntimeError, match="reset"):
        sim.step([0, 0])
    with pytest.raises(ValueError, match="first reset"):
        sim.reset(rows=[True, False])
    with pytest.raises(ValueError, match="batch_size"):
        world.simulator(batch_size=0)


# ----------------------------------------------------------------------------------------------
# resets


def test_resetting_some_rows_leaves_the_others_alone(world):
    sim, twin = twins(world, batch=3)
    frames = sim.reset(event="night falls", rows=torch.tensor([False, True, False]))
    assert torch.equal(frames[[0, 2]], twin.frames[[0, 2]])
    assert not torch.equal(frames[1], twin.frames[1])
    assert sim.events == ["a sunny meadow", "night falls", "a sunny meadow"]
    assert sim.cache.num_frames.tolist() == [1, 0, 1]
    stepped, twin_stepped = sim.step([1, 2, 3])[0], twin.step([1, 2, 3])[0]
    assert (stepped[[0, 2]].int() - twin_stepped[[0, 2]].int()).abs().max() <= 1


def test_reset_seed_restarts_the_noise_stream(world):
    sim = world.simulator(batch_size=2, seed=0)
    sim.reset(event="night falls")
    sim.step([1, 1])
    again = sim.reset(event="night falls", seed=0)
    fresh = world.simulator(batch_size=2, seed=0).reset(event="night falls")
    assert torch.equal(again, fresh)


def test_reset_from_given_context_frames(world):
    rng = np.random.default_rng(0)
    start = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    sim = world.simulator(batch_size=2, seed=0)
    frames = sim.reset(context=start)
    with torch.no_grad():
        expected = to_frames(world.autoencoder.decode(world.autoencoder.encode(to_pixels(start))))
    assert torch.equal(frames, expected)
    shared = sim.reset(context=start[0])
    assert torch.equal(shared[0], shared[1])


def test_reset_picks_the_checkpoint_context_frames_by_seed():
    candidates = np.stack([np.full((64, 64, 3), value, np.uint8) for value in (0, 90, 180, 250)])
    world = make_world(seed=0, context_frames=candidates)
    with torch.no_grad():
        decoded = to_frames(world.autoencoder.decode(world.autoencoder.encode(to_pixels(candidates))))
    sim = world.simulator(batch_size=8, seed=0)
    frames = sim.reset()
    picks = [next(k for k in range(4) if torch.equal(frame, decoded[k])) for frame in frames]
    assert len(set(picks)) > 1
    assert torch.equal(world.simulator(batch_size=8, seed=0).reset(), frames)


# ----------------------------------------------------------------------------------------------
# events and re-cache


def test_encode_events_caches_per_string_and_maps_empty_to_zero(world):
    vectors = world.encode_events(["night falls", "", None, "night falls"])
    assert vectors.shape == (4, world.config.events.dim)
    assert torch.equal(vectors[1], torch.zeros_like(vectors[1])) and torch.equal(vectors[2], vectors[1])
    assert torch.equal(vectors[0], vectors[3]) and vectors[0].abs().sum() > 0


def test_recache_on_switch(world):
    actions = [[1, 1], [2, 2], [3, 3], [4, 4], [0, 0], [1, 1], [2, 2]]
    plain, _ = play(world, batch=2, num_steps=7, actions=actions)
    recached, _ = play(world, batch=2, num_steps=7, actions=actions, recache_on_switch=True)
    assert torch.equal(plain, recached)  # without a switch the flag changes nothing

    def switched(flag):
        sim = world.simulator(batch_size=2, seed=0, recache_on_switch=flag)
        sim.reset(event="a sunny meadow")
        for step_actions in actions:
            sim.step(step_actions)
        return sim.step([1, 1], events=["night falls", None])[0], sim.step([2, 2])[0]

    (switch_plain, next_plain), (switch_recached, next_recached) = switched(False), switched(True)
    assert not torch.equal(switch_plain[0], switch_recached[0])
    assert torch.equal(switch_plain[1], switch_recached[1])
    assert torch.equal(next_plain[1], next_recached[1])


def test_switch_guidance_acts_on_the_switched_rows_for_its_frames(world, monkeypatch):
    from worldsim.sampling import simulator as simulator_module

    guided_calls = []
    original = simulator_module.sample_frames_guided

    def counting(*args, **kwargs):
        guided_calls.append(args[4].tolist())  # the per-row scale
        return original(*args, **kwargs)

    monkeypatch.setattr(simulator_module, "sample_frames_guided", counting)

    def switched(scale):
        sim = world.simulator(batch_size=2, seed=0, switch_guidance=scale, switch_guidance_frames=2)
        sim.reset(event="a sunny meadow")
        frames = [sim.step([1, 1])[0], sim.step([2, 2], events=["night falls", None])[0]]
        frames += [sim.step([3, 3])[0] for _ in range(3)]
        return torch.stack(frames, dim=1)

    plain = switched(1.0)
    assert guided_calls == []
    guided = switched(4.0)
    assert guided_calls == [[4.0, 1.0], [4.0, 1.0]]  # the switch frame and the one after, row 0 only
    assert torch.equal(plain[:, 0], guided[:, 0])
    assert (plain[1].int() - guided[1].int()).abs().max() <= 1  # row 1 never switched (rounding aside)
    assert not torch.equal(plain[0, 1], guided[0, 1])
    with pytest.raises(ValueError, match="switch guidance"):
        world.simulator(sampler="rolling", switch_guidance=2.0)


# ----------------------------------------------------------------------------------------------
# the rolling sampler


def test_rolling_with_one_level_is_the_frame_sampler(world):
    frame, _ = play(world, batch=2, num_steps=3, steps=1)
    rolling, _ = play(world, batch=2, num_steps=3, steps=1, sampler="rolling")
    assert torch.equal(frame, rolling)


def test_rolling_actions_show_one_window_later(world):
    def last_two(final_action):
        frames, _ = play(world, num_steps=5, sampler="rolling", actions=[[1], [2], [3], [final_action], [0]])
        return frames[0, -2], frames[0, -1]

    (before_a, after_a), (before_b, after_b) = last_two(1), last_two(4)
    assert torch.equal(before_a, before_b)  # with 2 levels, the action of step 4 is in flight at step 4...
    assert not torch.equal(after_a, after_b)  # ...and shows at step 5


def test_rolling_resets_and_memory(world):
    sim = world.simulator(batch_size=2, seed=0, sampler="rolling")
    sim.reset(event="a sunny meadow")
    sim.step([1, 2])
    start_bytes = sim.nbytes()
    frames = sim.reset(event="night falls", rows=torch.tensor([True, False]))
    assert sim.cache.num_frames.tolist() == [0, 1]
    for _ in range(sim.cache.capacity + 2):
        frames, reward, _ = sim.step([3, 4])
    assert sim.nbytes() == start_bytes and torch.isfinite(reward).all() and frames.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="sampler"):
        world.simulator(sampler="diagonal")
    with pytest.raises(ValueError, match="re-cache"):
        world.simulator(sampler="rolling", recache_on_switch=True)


# ----------------------------------------------------------------------------------------------
# long rollouts


def test_ten_thousand_frames_keep_memory_flat_and_stay_finite():
    world = make_world(seed=0, overrides=MICRO)
    sim = world.simulator(batch_size=1, seed=0, steps=1)
    sim.reset(event="a sunny meadow")
    rng = np.random.default_rng(0)
    sim.step([0])
    start_bytes = sim.nbytes()
    capacity = sim.cache.capacity
    for index in range(1, 10_000):
        frames, reward, terminated = sim.step(rng.integers(0, 5, size=1))
        if index % 2500 == 0:
            assert sim.nbytes() == start_bytes
            positions, valid = sim.cache.slot_layout()
            assert valid.all() and positions.max() < capacity
            assert torch.isfinite(sim._pending.latents).all()
    assert sim.cache.num_frames.tolist() == [10_000]
    assert sim.nbytes() == start_bytes
    assert torch.isfinite(sim._recent).all() and torch.isfinite(reward).all()
    assert frames.shape == (1, 16, 16, 3)
