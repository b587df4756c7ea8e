"""Frames started from the history reader's guess (`sampling.reader_start`): the guess through the
cache, per-row levels, where a frame starts, and how the option reaches and guards the samplers."""
from __future__ import annotations

import json

import pytest
import torch
from test_model_transformer import TOLERANCE, frames_of, make_clip, make_net
from test_world_fixtures import make_world

from worldsim import hub
from worldsim.model import flow
from worldsim.model.config import ConfigError
from worldsim.sampling.frame_sampler import CleanFrames, Conditions, denoise_step, reader_started, sample_frames
from worldsim.training.self_rollout import frame_with_exit
from worldsim.world import WorldModel

READER = {"transformer.local_reader_channels": 8, "transformer.local_reader_blocks": 1}


def reading_net():
    return make_net(local_frames=3, local_reader_channels=8, local_reader_blocks=2)


def test_the_guess_through_the_cache_equals_the_readers_guess_on_the_whole_clip():
    net = reading_net()
    latents, _, actions, events = make_clip(net, batch=2, frames=5)
    sigma = torch.zeros(2, 5, dtype=torch.float64)  # clean frames, as the sampler's history is
    whole = net.read_next(latents, sigma, actions)[:, 4:]
    cache = net.new_cache(2, window_frames=8)
    with torch.no_grad():
        net.forward_cached(*frames_of((latents, sigma, actions, events), slice(0, 3)), cache, commit=3)
        pending_guess = net.read_following(cache, latents[:, 3:4], actions[:, 4])
        net.forward_cached(*frames_of((latents, sigma, actions, events), slice(3, 4)), cache, commit=1)
        cached_guess = net.read_following(cache, None, actions[:, 4])
    torch.testing.assert_close(pending_guess, whole, **TOLERANCE)
    torch.testing.assert_close(cached_guess, whole, **TOLERANCE)
    with pytest.raises(ValueError, match="no history reader"):
        make_net(local_frames=3).read_following(cache, None, actions[:, 4])


def test_per_row_levels_renoise_some_rows_and_pass_finished_ones_through():
    x = torch.randn(2, 1, 3, 4, 4)
    velocity = torch.randn(2, 1, 3, 4, 4)
    fresh = torch.randn(2, 1, 3, 4, 4)
    stepped = denoise_step(x, torch.tensor([[0.5], [0.0]]), torch.tensor([[0.25], [0.0]]), velocity,
                           lambda shape: fresh)
    torch.testing.assert_close(stepped[0], flow.add_noise(x[0] - 0.5 * velocity[0], fresh[0], 0.25))
    assert torch.equal(stepped[1], x[1])  # at level 0 a frame is done


def test_a_frame_starts_from_the_noised_guess_unless_its_event_just_changed():
    net = reading_net()
    latents, sigma, actions, _ = make_clip(net, batch=2, frames=2)
    cache = net.new_cache(2, window_frames=8)
    old, new = torch.zeros(2, 1, net.config.event_dim, dtype=torch.float64), torch.ones(2, 1, net.config.event_dim,
                                                                                         dtype=torch.float64)
    pending = CleanFrames(latents[:, :1], Conditions(actions[:, :1], old))
    events = torch.where(torch.tensor([False, True]).view(2, 1, 1), new, old)  # row 1 switches now
    conditions = Conditions(actions[:, 1:], events)
    fresh = torch.randn(2, 1, *latents.shape[2:], dtype=torch.float64)
    with torch.no_grad():
        start, levels = reader_started(net, cache, conditions, [1.0, 2 / 3, 0.0], lambda shape: fresh, pending, 0.8)
        guess = net.read_following(cache, pending.latents, actions[:, 1])
    torch.testing.assert_close(start[0], flow.add_noise(guess[0], fresh[0], 0.8))
    assert torch.equal(start[1], fresh[1])
    torch.testing.assert_close(levels, torch.tensor([[0.8, 2 / 3, 0.0], [1.0, 2 / 3, 0.0]], dtype=torch.float64))
    _, one_step = reader_started(net, cache, conditions, [1.0, 2 / 3, 0.0], lambda shape: fresh, pending, 0.5)
    torch.testing.assert_close(one_step, torch.tensor([[0.5, 0.0, 0.0], [1.0, 2 / 3, 0.0]], dtype=torch.float64))


def test_a_training_rollout_starts_frames_from_the_guess_as_the_sampler_does():
    """Self Forcing trains on the world's own rollouts, so a world that starts frames from the
    guess is trained on such rollouts: with the exit at the last step, a training frame is the
    sampler's frame; with the exit at the first, the x0 of the pass at the start level."""
    net = reading_net()
    latents, _, actions, events = make_clip(net, batch=2, frames=2)
    same_event = events[:, :1]
    pending = CleanFrames(latents[:, :1], Conditions(actions[:, :1], same_event))
    conditions = Conditions(actions[:, 1:], same_event)
    sigmas = [1.0, 2 / 3, 0.0]

    def run(make_frame):
        torch.manual_seed(3)
        with torch.no_grad():
            return make_frame(net.new_cache(2, window_frames=8), lambda shape: torch.randn(2, *shape, dtype=torch.float64))

    trained = run(lambda cache, noise: frame_with_exit(net, cache, conditions, sigmas, 1, noise, pending,
                                                       reader_start=0.8)[0])
    sampled = run(lambda cache, noise: sample_frames(net, cache, conditions, sigmas, noise, pending, reader_start=0.8))
    torch.testing.assert_close(trained, sampled, **TOLERANCE)
    from_noise = run(lambda cache, noise: frame_with_exit(net, cache, conditions, sigmas, 1, noise, pending)[0])
    assert not torch.allclose(trained, from_noise)

    def first_pass(cache, noise):
        start, _ = reader_started(net, cache, conditions, sigmas, noise, pending, 0.8)
        level = torch.full((2, 1), 0.8, dtype=torch.float64)
        velocity = net.forward_cached(torch.cat((pending.latents, start), dim=1),
                                      torch.cat((torch.zeros_like(level), level), dim=1),
                                      torch.cat((pending.conditions.actions, conditions.actions), dim=1),
                                      torch.cat((same_event, same_event), dim=1), cache, commit=1,
                                      return_committed=False)
        return flow.x0_from_velocity(start, level, velocity)

    at_start = run(lambda cache, noise: frame_with_exit(net, cache, conditions, sigmas, 0, noise, pending,
                                                        reader_start=0.8)[0])
    torch.testing.assert_close(at_start, run(first_pass), **TOLERANCE)


def record_levels(world: WorldModel) -> list[torch.Tensor]:
    """Wrap the world's cached forward to record the levels of every pass."""
    seen: list[torch.Tensor] = []
    forward = world.transformer.forward_cached

    def recording(latents, sigma, *args, **kwargs):
        seen.append(sigma.clone())
        return forward(latents, sigma, *args, **kwargs)

    world.transformer.forward_cached = recording
    return seen


def test_the_simulator_starts_frames_from_the_guess_and_a_switched_row_from_noise():
    world = make_world(seed=2, overrides={**READER, "sampling.reader_start": 0.8})
    sim = world.simulator(batch_size=2, seed=5)
    sim.reset(event="night falls")
    levels = record_levels(world)
    sim.step(torch.tensor([1, 2]))
    # One fused pass (the first frame committed at 0, the new one at 0.8), then one at 2/3.
    torch.testing.assert_close(levels[0], torch.tensor([[0.0, 0.8], [0.0, 0.8]]))
    torch.testing.assert_close(levels[1], torch.full((2, 1), 2 / 3))
    levels.clear()
    sim.step(torch.tensor([1, 2]), events=[None, "it starts snowing"])
    assert [row[-1].item() for row in levels[0]] == pytest.approx([0.8, 1.0])
    assert [row[-1].item() for row in levels[1]] == pytest.approx([2 / 3, 2 / 3])
    from_noise = make_world(seed=2, overrides=READER).simulator(batch_size=2, seed=5)
    from_noise.reset(event="night falls")
    started = make_world(seed=2, overrides={**READER, "sampling.reader_start": 0.8}).simulator(batch_size=2, seed=5)
    started.reset(event="night falls")
    assert not torch.equal(started.step(torch.tensor([1, 2]))[0], from_noise.step(torch.tensor([1, 2]))[0])


def test_a_reader_the_stem_does_not_read_runs_once_a_frame():
    world = make_world(seed=2, overrides={**READER, "transformer.local_reader_feeds_stem": False,
                                          "sampling.reader_start": 0.8})
    sim = world.simulator(batch_size=2, seed=5)
    sim.reset(event="night falls")
    calls = []
    reader = world.transformer.local.reader
    forward = reader.forward
    reader.forward = lambda *args: calls.append(1) or forward(*args)
    sim.step(torch.tensor([1, 2]))
    sim.step(torch.tensor([3, 4]))
    assert len(calls) == 2


def test_reader_start_needs_a_reader_and_the_frame_sampler():
    with pytest.raises(ConfigError, match="reader_start"):
        make_world(overrides={"sampling.reader_start": 0.8})
    with pytest.raises(ConfigError, match="reader_start"):
        make_world(overrides={**READER, "sampling.reader_start": 1.0})
    world = make_world(overrides={**READER, "sampling.reader_start": 0.8})
    with pytest.raises(ValueError, match="frame sampler only"):
        world.simulator(batch_size=1, sampler="rolling")
    with pytest.raises(ValueError, match="cannot be combined"):
        world.simulator(batch_size=1, recache_on_switch=True)


def test_a_world_saved_before_reader_start_existed_loads_with_it_off(tmp_path):
    make_world(overrides=READER).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format_version"] == hub.FORMAT_VERSION >= 9
    saved["format_version"] = 8  # what format 8 wrote: frames always started from noise
    del saved["world"]["sampling"]["reader_start"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert WorldModel.from_pretrained(tmp_path).config.sampling.reader_start == 0.0
