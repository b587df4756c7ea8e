"""Samplers: step lists, the denoising step, fused commits, chunks, the rolling window, noise, re-cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_world_fixtures import make_world

from worldsim.model import flow
from worldsim.sampling import inputs
from worldsim.sampling import frame_sampler
from worldsim.sampling.frame_sampler import (
    CleanFrames,
    Conditions,
    commit,
    denoise_step,
    fused_commit_is_exact,
    sample_frames,
    sample_frames_guided,
    step_sigmas,
)
from worldsim.sampling.noise import RowNoise, gaussian_noise, hash32, seeds_for_batch
from worldsim.model.kv_cache import frame_slot
from worldsim.sampling.recache import FrameHistory, recache_rows
from worldsim.sampling.rolling import RollingSampler


@pytest.fixture(scope="module")
def world():
    return make_world(seed=1)


def conditions(world, batch: int, frames: int = 1, action: int = 1, event: str = "night falls") -> Conditions:
    vectors = world.encode_events([event] * batch)
    return Conditions(
        torch.full((batch, frames), action, dtype=torch.long), vectors[:, None].expand(-1, frames, -1).clone()
    )


def latent_shape(world):
    config = world.config.transformer
    return (config.latent_channels, config.latent_size, config.latent_size)


def random_clean(world, batch: int, frames: int = 1, seed: int = 0) -> CleanFrames:
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, frames, *latent_shape(world), generator=generator)
    return CleanFrames(latents, conditions(world, batch, frames, action=world.config.no_action, event=""))


# ----------------------------------------------------------------------------------------------
# steps and the denoising step


def test_step_sigmas_from_a_count_follow_the_shifted_grid():
    assert step_sigmas(2, 1.0) == pytest.approx([1.0, 0.5, 0.0])
    shifted = step_sigmas(2, 3.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and shifted[1] == pytest.approx(0.75)


def test_step_sigmas_from_a_list_append_the_final_zero():
    assert step_sigmas([1.0, 0.6, 0.2], 3.0) == pytest.approx([1.0, 0.6, 0.2, 0.0])
    assert step_sigmas([1.0, 0.5, 0.0], 3.0) == pytest.approx([1.0, 0.5, 0.0])


@pytest.mark.parametrize("bad", [0, -1, True, [], [0.5], [1.0, 1.0], [1.0, 0.7, 0.8], [1.0, -0.1]])
def test_step_sigmas_reject_bad_lists(bad):
    with pytest.raises(ValueError):
        step_sigmas(bad, 1.0)


def test_denoise_step_with_the_true_velocity_recovers_x0_and_renoises_it():
    generator = torch.Generator().manual_seed(0)
    x0, noise, fresh = (torch.randn(2, 1, 4, 8, 8, generator=generator) for _ in range(3))
    x = flow.add_noise(x0, noise, 0.6)
    velocity = flow.velocity_target(x0, noise)
    assert torch.allclose(denoise_step(x, 0.6, 0.0, velocity, lambda shape: fresh), x0, atol=1e-6)
    renoised = denoise_step(x, 0.6, 0.3, velocity, lambda shape: fresh)
    assert torch.allclose(renoised, flow.add_noise(x0, fresh, 0.3), atol=1e-6)


def test_fresh_noise_mixes_the_implied_noise_and_at_zero_is_the_euler_step():
    generator = torch.Generator().manual_seed(1)
    x, velocity, fresh = (torch.randn(2, 1, 4, 8, 8, generator=generator) for _ in range(3))
    draws = []

    def noise(shape):
        draws.append(shape)
        return fresh

    euler = denoise_step(x, 0.6, 0.3, velocity, noise, fresh_noise=0.0)
    torch.testing.assert_close(euler, flow.euler_step(x, velocity, 0.6, 0.3))
    x0, implied = flow.x0_from_velocity(x, 0.6, velocity), flow.noise_from_velocity(x, 0.6, velocity)
    mixed = denoise_step(x, 0.6, 0.3, velocity, noise, fresh_noise=0.6)
    torch.testing.assert_close(mixed, flow.add_noise(x0, 0.6 * fresh + 0.8 * implied, 0.3))
    assert torch.equal(denoise_step(x, 0.6, 0.3, velocity, noise, fresh_noise=1.0), flow.add_noise(x0, fresh, 0.3))
    assert len(draws) == 3  # the fresh draw is taken at every setting: the noise stream does not move


def test_the_worlds_fresh_noise_reaches_the_simulator_and_is_validated(world):
    from worldsim.model.config import ConfigError

    def first_steps(share):
        world.config.sampling.fresh_noise = share
        sim = world.simulator(batch_size=2, seed=3)
        sim.reset(event="night falls")
        return sim.step(torch.tensor([1, 2]))[0]

    try:
        default = first_steps(1.0)
        assert torch.equal(first_steps(1.0), default)
        assert not torch.equal(first_steps(0.0), default)
        with pytest.raises(ValueError, match="frame sampler only"):
            world.simulator(batch_size=1, sampler="rolling")
        world.config.sampling.fresh_noise = 1.5
        with pytest.raises(ConfigError, match="fresh_noise"):
            world.config.sampling.validate()
    finally:
        world.config.sampling.fresh_noise = 1.0


def test_a_world_saved_before_fresh_noise_existed_loads_with_all_fresh_noise(world, tmp_path):
    import json

    from worldsim import hub
    from worldsim.world import WorldModel

    world.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format_version"] == hub.FORMAT_VERSION >= 6
    assert saved["world"]["sampling"]["fresh_noise"] == 1.0
    saved["format_version"] = 5  # what format 5 wrote: no share, every step drew fresh noise
    del saved["world"]["sampling"]["fresh_noise"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert WorldModel.from_pretrained(tmp_path).config.sampling.fresh_noise == 1.0


# ----------------------------------------------------------------------------------------------
# fused commit


def test_fused_commit_equals_a_separate_commit_pass(world):
    net, sigmas = world.transformer, step_sigmas(2, 2.0)
    pending = random_clean(world, batch=2)
    fused_cache, separate_cache = net.new_cache(2), net.new_cache(2)
    for cache in (fused_cache, separate_cache):
        commit(net, cache, random_clean(world, batch=2, seed=5))
    assert fused_commit_is_exact(fused_cache, 1)
    with torch.no_grad():
        fused = sample_frames(net, fused_cache, conditions(world, 2), sigmas, RowNoise([3, 4]), pending)
        commit(net, separate_cache, pending)
        separate = sample_frames(net, separate_cache, conditions(world, 2), sigmas, RowNoise([3, 4]))
    assert torch.allclose(fused, separate, atol=1e-5)
    assert fused_cache.num_frames.tolist() == separate_cache.num_frames.tolist() == [2, 2]
    for layer in range(net.config.depth):
        assert torch.allclose(fused_cache.keys[layer], separate_cache.keys[layer], atol=1e-5)


def test_a_full_window_fuses_its_commit_exactly(world):
    net = world.transformer
    cache, reference = net.new_cache(1), net.new_cache(1)
    for index in range(cache.capacity):
        for target in (cache, reference):
            commit(net, target, random_clean(world, batch=1, seed=index))
    assert fused_commit_is_exact(cache, 1)
    pending, sigmas = random_clean(world, 1, seed=99), step_sigmas(2, 2.0)
    with torch.no_grad():
        sampled = sample_frames(net, cache, conditions(world, 1), sigmas, RowNoise([7]), pending)
        commit(net, reference, pending)
        expected = sample_frames(net, reference, conditions(world, 1), sigmas, RowNoise([7]))
    assert torch.allclose(sampled, expected, atol=1e-5)
    assert cache.num_frames.item() == cache.capacity + 1


def test_a_commit_that_fills_the_sink_and_evicts_runs_on_its_own(world):
    cache = world.transformer.new_cache(1, sink_frames=2, window_frames=1)
    assert not fused_commit_is_exact(cache, 4)  # frames 0, 1 fill the sink, 3 evicts 2
    assert fused_commit_is_exact(cache, 3)


@pytest.fixture
def unfused(monkeypatch):
    """Make every sampler commit pending frames in their own pass, the reference of fusing."""
    monkeypatch.setattr(frame_sampler, "fused_commit_is_exact", lambda cache, num_commit: False)


def long_rollout(world, sample_chunk, pending_frames: int) -> torch.Tensor:
    """Frames from `sample_chunk(cache, conditions, pending) -> latents`, fed back as pending, over
    enough frames to evict from the window several times; row 1 restarts midway, so the rows
    fill and evict out of step."""
    net = world.transformer
    cache = net.new_cache(2)
    pending = random_clean(world, 2, frames=pending_frames)
    frames = []
    with torch.no_grad():
        for index in range(3 * cache.capacity):
            if index == cache.capacity:
                cache.reset(torch.tensor([False, True]))
            chunk_conditions = conditions(world, 2, frames=pending_frames, action=index % 5)
            latents = sample_chunk(cache, chunk_conditions, pending)
            pending = CleanFrames(latents, chunk_conditions)
            frames.append(latents)
    assert (cache.num_frames > cache.capacity).all()
    return torch.cat(frames, dim=1)


def frame_rollout(world, pending_frames: int = 1) -> torch.Tensor:
    noise = RowNoise([3, 4])
    return long_rollout(
        world,
        lambda cache, chunk, pending: sample_frames(world.transformer, cache, chunk, step_sigmas(2, 2.0), noise, pending),
        pending_frames,
    )


def rolling_rollout(world) -> torch.Tensor:
    sampler = None

    def push(cache, chunk, pending):
        nonlocal sampler
        if sampler is None:
            sampler = RollingSampler(world.transformer, cache, step_sigmas(3, 2.0), RowNoise([3, 4]), pending)
        emitted = sampler.push(chunk)
        return torch.zeros_like(pending.latents) if emitted is None else emitted

    return long_rollout(world, push, pending_frames=1)


@pytest.mark.parametrize(
    "rollout", [frame_rollout, lambda world: frame_rollout(world, pending_frames=2), rolling_rollout],
    ids=["frame", "chunk", "rolling"],
)
def test_fused_sampling_equals_separate_commits_through_evictions(world, rollout, request):
    fused = rollout(world)
    request.getfixturevalue("unfused")
    separate = rollout(world)
    # Relative tolerance: a random world fed its own frames grows them frame after frame.
    assert torch.allclose(fused, separate, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(fused[0], fused[1], atol=1e-2)  # the rows really differ


# ----------------------------------------------------------------------------------------------
# chunks and the rolling window


def test_switch_guidance_extrapolates_from_the_reference_event(world):
    """One step is one x0 prediction, linear in the velocity: guided = ref + s * (plain - ref).
    Rows at scale 1 are the plain sampler (up to rounding: `pending` is committed in a pass of its own)."""
    net, sigmas = world.transformer, step_sigmas(1, 1.0)
    night, day = conditions(world, 2), conditions(world, 2, event="a sunny meadow")
    scale = torch.tensor([3.0, 1.0])

    def run(sampler, *args):
        cache = net.new_cache(2)
        commit(net, cache, random_clean(world, batch=2, seed=5))
        with torch.no_grad():
            frames = sampler(net, cache, *args, sigmas, RowNoise([3, 4]), random_clean(world, batch=2))
        assert cache.num_frames.tolist() == [2, 2]
        return frames

    plain, reference = run(sample_frames, night), run(sample_frames, day)
    guided = run(sample_frames_guided, night, day.events, scale)
    assert torch.allclose(guided[0], reference[0] + 3.0 * (plain[0] - reference[0]), atol=1e-4)
    assert torch.allclose(guided[1], plain[1], atol=1e-5)
    assert not torch.allclose(guided[0], plain[0], atol=1e-3)


def test_first_frame_of_a_chunk_equals_the_frame_sampled_alone(world):
    net, sigmas = world.transformer, step_sigmas(1, 1.0)  # one step: the only noise is the start
    base = torch.randn(2, 3, *latent_shape(world), generator=torch.Generator().manual_seed(2))

    def noise(shape):
        return base[:, : shape[0]].clone()

    with torch.no_grad():
        chunk = sample_frames(net, net.new_cache(2), conditions(world, 2, frames=3), sigmas, noise)
        alone = sample_frames(net, net.new_cache(2), conditions(world, 2, frames=1), sigmas, noise)
    assert chunk.shape == (2, 3, *latent_shape(world))
    assert torch.allclose(chunk[:, :1], alone, atol=1e-5)
    assert not torch.allclose(chunk[:, 1], chunk[:, 2])


def test_rolling_window_emits_one_frame_per_pass_after_warmup(world):
    net = world.transformer
    cache = net.new_cache(2)
    sampler = RollingSampler(net, cache, step_sigmas(3, 2.0), RowNoise([1, 2]), pending=random_clean(world, 2))
    assert sampler.window == 3
    emitted = [sampler.push(conditions(world, 2, action=a)) for a in range(5)]
    assert [frame is None for frame in emitted] == [True, True, False, False, False]
    assert sampler.in_flight == 2
    tail = sampler.flush()
    assert len(tail) == 2 and sampler.in_flight == 0
    assert all(frame.shape == (2, 1, *latent_shape(world)) and torch.isfinite(frame).all() for frame in tail)
    # The start frame and 4 of the 5 emitted frames; the last one emitted stays pending.
    assert cache.num_frames.tolist() == [5, 5]


def test_rolling_window_of_one_level_is_the_frame_sampler(world):
    net, sigmas = world.transformer, step_sigmas(1, 2.0)
    start = random_clean(world, 1)
    rolling = RollingSampler(net, net.new_cache(1), sigmas, RowNoise([3]), pending=start)
    rolled = [rolling.push(conditions(world, 1, action=a)) for a in (1, 2, 3)]
    cache, noise, pending, framewise = net.new_cache(1), RowNoise([3]), start, []
    for action in (1, 2, 3):
        frame_conditions = conditions(world, 1, action=action)
        latents = sample_frames(net, cache, frame_conditions, sigmas, noise, pending)
        pending = CleanFrames(latents, frame_conditions)
        framewise.append(latents)
    for a, b in zip(rolled, framewise):
        assert torch.allclose(a, b, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# noise


def test_row_noise_depends_only_on_the_row_seed_and_draw_count():
    batch = RowNoise([5, 6, 7])
    alone = RowNoise([6])
    first, second = batch((3, 4)), batch((3, 4))
    assert torch.equal(first[1], alone((3, 4))[0])
    assert torch.equal(second[1], alone((3, 4))[0])
    assert not torch.equal(first, second)
    assert torch.equal(RowNoise([5, 6, 7])((3, 4)), first)


def test_row_noise_selected_rows_and_reseed():
    noise = RowNoise([1, 2])
    rows = torch.tensor([False, True])
    noise((2,), rows)
    assert noise.counters.tolist() == [0, 1]
    noise.reseed(rows, [2])
    assert noise.counters.tolist() == [0, 0]
    assert torch.equal(noise((2,))[1], RowNoise([2])((2,))[0])


def test_gaussian_noise_statistics():
    samples = gaussian_noise(torch.arange(32), torch.zeros(32, dtype=torch.long), (4096,))
    assert abs(samples.mean().item()) < 0.01
    assert abs(samples.std().item() - 1.0) < 0.01
    assert abs((samples**4).mean().item() - 3.0) < 0.1  # Gaussian kurtosis
    correlation = torch.corrcoef(samples[:8]).fill_diagonal_(0)
    assert correlation.abs().max() < 0.06


def test_hash32_stays_in_32_bits_without_collisions():
    values = hash32(torch.arange(100_000, dtype=torch.int64))
    assert values.min() >= 0 and values.max() < 2**32
    assert len(torch.unique(values)) == 100_000


def test_seeds_for_batch():
    assert seeds_for_batch(10, 3) == [10, 11, 12]
    assert seeds_for_batch([4, 2], 2) == [4, 2]
    for bad in ([1], [1.5, 2], True):
        with pytest.raises(ValueError):
            seeds_for_batch(bad, 2)


# ----------------------------------------------------------------------------------------------
# input validation


def test_check_actions_accepts_integer_containers():
    for actions in ([0, 4], np.array([0, 4], np.int32), torch.tensor([0, 4], dtype=torch.uint8)):
        assert inputs.check_actions(actions, 2, 5).tolist() == [0, 4]


@pytest.mark.parametrize(
    "actions, message",
    [
        ([0, 5], "out of range"),
        ([-1, 0], "out of range"),
        ([0, 1, 2], "shape"),
        ([[0, 1]], "shape"),
        (3, "shape"),
        ([0.0, 1.0], "integers"),
        (torch.tensor([0.0, 1.0]), "integer dtype"),
        ([True, False], "integers"),
        (["a", "b"], "integers"),
    ],
)
def test_check_actions_rejects(actions, message):
    with pytest.raises(ValueError, match=message):
        inputs.check_actions(actions, 2, 5)


def test_check_events():
    count = len  # one token per character is enough to exercise the limit
    assert inputs.check_step_events(None, 2, count, 10) == [None, None]
    assert inputs.check_step_events(["rain", None], 2, count, 10) == ["rain", None]
    assert inputs.check_reset_events(None, 2, count, 10) == ["", ""]
    assert inputs.check_reset_events("rain", 2, count, 10) == ["rain", "rain"]
    assert inputs.check_reset_events([None, "fog"], 2, count, 10) == ["", "fog"]
    for bad, message in [("rain", "list"), (["rain"], "one entry per env"), ([3, None], "string"),
                         (["x" * 11, None], "too long"), (["x" * 5000, None], "too long")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            inputs.check_step_events(bad, 2, count, 10)


def test_check_rows_context_and_seed():
    assert inputs.check_rows(None, 2).tolist() == [True, True]
    assert inputs.check_rows(np.array([False, True]), 2).tolist() == [False, True]
    for bad in ([1, 0], [True]):
        with pytest.raises(ValueError):
            inputs.check_rows(bad, 2)
    frame = np.zeros((16, 16, 3), np.uint8)
    assert inputs.check_context(frame, 2, 16).shape == (2, 16, 16, 3)
    assert inputs.check_context(np.stack([frame] * 2), 2, 16).shape == (2, 16, 16, 3)
    for bad in (frame.astype(np.float32), np.zeros((3, 16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)):
        with pytest.raises(ValueError):
            inputs.check_context(bad, 2, 16)
    assert inputs.check_seed(None, 2) is None and inputs.check_seed(3, 2) == [3, 4]


# ----------------------------------------------------------------------------------------------
# re-cache on switch


def test_frame_slot_is_where_the_kv_cache_writes(world):
    net = world.transformer
    cache = net.new_cache(1, sink_frames=1, window_frames=3)
    for index in range(10):
        commit(net, cache, random_clean(world, 1, seed=index))
        positions, valid = cache.slot_layout()
        newest_slot = int(positions[0].masked_fill(~valid[0], -1).argmax())
        assert newest_slot == int(frame_slot(torch.tensor(index), 1, 3))


def test_recache_rebuilds_only_the_switched_rows(world):
    net, latents_per_row = world.transformer, 7
    cache = net.new_cache(2)
    history = FrameHistory(cache, latent_shape(world), world.config.events.dim)
    frames = [random_clean(world, 2, seed=index) for index in range(latents_per_row)]
    for clean in frames:
        history.record(cache.num_frames, clean)
        commit(net, cache, clean)
    untouched = [key[1].clone() for key in cache.keys]
    new_event = world.encode_events(["it starts snowing"])
    recache_rows(net, cache, history, torch.tensor([0]), new_event)
    # Reference: a fresh cache that saw the frames row 0 holds (the sink frame, then the window),
    # in order, all under the new event.
    held = [frames[0], *frames[-cache.window_frames:]]
    reference = net.new_cache(1)
    sequence = torch.cat([clean.latents[:1] for clean in held], dim=1)
    actions = torch.cat([clean.conditions.actions[:1] for clean in held], dim=1)
    events = new_event[:, None].expand(1, len(held), -1)
    net.forward_cached(sequence, torch.zeros(1, len(held)), actions, events, reference, commit=len(held))
    for layer in range(net.config.depth):
        assert torch.allclose(cache.keys[layer][0], reference.keys[layer][0], atol=1e-5)
        assert torch.equal(cache.keys[layer][1], untouched[layer])
    assert cache.num_frames.tolist() == [cache.capacity, latents_per_row]
