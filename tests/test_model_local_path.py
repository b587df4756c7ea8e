"""The full-resolution local path: predecessors, the cache's recent latents, and what reaches a cell."""
from __future__ import annotations

import dataclasses

import torch

from worldsim import hub
from worldsim.model import CausalTransformer, WorldConfig
from worldsim.model.local_path import previous_frames

from test_model_transformer import make_net  # a tiny float64 network with random weights everywhere


def test_previous_frames_take_history_then_earlier_frames_most_recent_first():
    latents = torch.arange(3.0).view(1, 3, 1, 1, 1)  # frames valued 0, 1, 2
    sigma = torch.tensor([[0.125, 0.25, 0.375]])
    history = torch.tensor([-2.0, -1.0]).view(1, 2, 1, 1, 1)  # oldest first
    history_sigma = torch.tensor([[0.0, 0.5]])
    previous, levels = previous_frames(latents, sigma, history, history_sigma, count=3)
    assert previous.shape == (1, 3, 3, 1, 1, 1)
    assert previous[0, :, :, 0, 0, 0].tolist() == [[-1, -2, 0], [0, -1, -2], [1, 0, -1]]
    # Before the history there is nothing: zeros at level 1.
    assert levels[0].tolist() == [[0.5, 0.0, 1.0], [0.125, 0.5, 0.0], [0.25, 0.125, 0.5]]


def test_previous_frames_without_history_are_unknown():
    latents = torch.ones(2, 2, 3, 4, 4)
    previous, levels = previous_frames(latents, torch.zeros(2, 2), count=2)
    assert (previous[:, 0] == 0).all() and (levels[:, 0] == 1).all()
    assert (previous[:, 1, 0] == 1).all() and levels[:, 1].tolist() == [[0.0, 1.0]] * 2


def clip(net: CausalTransformer, frames: int, seed: int = 0):
    config = net.config
    gen = torch.Generator().manual_seed(seed)
    shape = (1, frames, config.latent_channels, config.latent_size, config.latent_size)
    latents = torch.randn(*shape, generator=gen, dtype=torch.float64)
    actions = torch.randint(0, config.num_actions, (1, frames), generator=gen)
    return latents, torch.zeros(1, frames, dtype=torch.float64), actions, None


def test_cache_keeps_the_latest_committed_latents_and_forgets_them_on_reset():
    net = make_net()
    latents, sigma, actions, events = clip(net, frames=4)
    cache = net.new_cache(1)
    net.forward_cached(latents, sigma, actions, events, cache, commit=4)
    assert torch.equal(cache.recent_latents, latents[:, -net.config.local_frames:])
    assert (cache.recent_sigma == 0).all()
    cache.reset()
    assert (cache.recent_latents == 0).all() and (cache.recent_sigma == 1).all()


def test_a_new_frame_sees_its_predecessor_through_the_local_path_without_attention():
    """With the transformer block silenced, the only route from the previous frame to the new
    one is the conv stem: a change in one cell of the past reaches that cell, not far ones."""
    net = make_net(depth=1)
    with torch.no_grad():  # silence the block: only the local path can carry the past
        for parameter in net.blocks.parameters():
            parameter.zero_()
    latents, sigma, actions, events = clip(net, frames=2)
    base = net(latents, sigma, actions, events)
    changed = latents.clone()
    changed[:, 0, :, 3, 5] += 1.0  # one cell of the previous frame
    moved = net(changed, sigma, actions, events)
    difference = (moved[0, 1] - base[0, 1]).abs().sum(dim=0)
    assert difference[3, 5] > 0
    # Convolutions are local: far-away cells of the new frame do not move.
    assert difference[12:, 12:].max() == 0


def test_the_action_reaches_every_cell():
    net = make_net()
    latents, sigma, actions, events = clip(net, frames=1)
    outputs = [net(latents, sigma, torch.full_like(actions, a), events) for a in range(2)]
    assert ((outputs[0] - outputs[1]).abs().sum(dim=2) > 0).all()


def test_a_format_1_checkpoint_loads_as_a_world_without_local_path(tmp_path):
    import json

    from worldsim.world import WorldModel

    config = WorldConfig.preset("tiny").with_overrides({"transformer.local_channels": 0,
                                                        "transformer.local_frames": 0})
    WorldModel.create(config, ["night falls"], seed=0).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format_version"] == hub.FORMAT_VERSION
    # What a format-1 writer wrote: no local-path keys.
    saved["format_version"] = 1
    for key in ("local_channels", "local_blocks", "local_frames"):
        del saved["world"]["transformer"][key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = WorldModel.from_pretrained(tmp_path)
    assert loaded.transformer.local is None
    assert loaded.config.transformer.local_channels == 0


def test_action_conv_convolves_each_frame_with_its_actions_kernel():
    from torch.nn import functional

    from worldsim.model.local_path import ActionConv

    conv = ActionConv(3, 4, num_action_rows=3)
    with torch.no_grad():
        conv.weight.normal_()
    inputs = torch.randn(5, 3, 6, 6)
    actions = torch.tensor([0, 2, 1, 2, 0])
    out = conv(inputs, actions)
    for row, action in enumerate(actions.tolist()):
        expected = functional.conv2d(inputs[row:row + 1], conv.weight[action], padding=1)
        assert torch.allclose(out[row:row + 1], expected, atol=1e-5)


def test_the_action_conv_can_be_switched_off_and_old_worlds_load_with_it(tmp_path):
    import json

    from worldsim.world import WorldModel

    shared = CausalTransformer(dataclasses.replace(WorldConfig.preset("tiny").transformer, local_action_conv=False))
    assert shared.local.previous_by_action is None
    world = WorldModel.create(WorldConfig.preset("tiny"), ["night falls"], seed=0)
    world.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    # Written by format 2 before the switch and the cell positions existed.
    saved["format_version"] = 2
    del saved["world"]["transformer"]["local_action_conv"]
    del saved["world"]["transformer"]["local_positions"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = WorldModel.from_pretrained(tmp_path)
    assert old.transformer.local.previous_by_action is not None and old.transformer.local.positions is None


def test_positions_start_at_zero_and_then_tell_cells_apart():
    plain = make_net()
    placed = CausalTransformer(dataclasses.replace(plain.config, local_positions=True)).double()
    missing, unexpected = placed.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["local.positions"] and not unexpected
    latents, sigma, actions, events = clip(plain, frames=2)
    assert torch.equal(plain(latents, sigma, actions, events), placed(latents, sigma, actions, events))
    # The same content in two cells: only a position can make their features differ.
    uniform = torch.ones(1, 1, plain.config.latent_channels, plain.config.latent_size, plain.config.latent_size,
                         dtype=torch.float64)
    with torch.no_grad():
        placed.local.positions.normal_()
    out = placed(uniform, sigma[:, :1], actions[:, :1], None)
    assert not torch.allclose(out[..., 5, 5], out[..., 6, 6])


def test_a_widened_history_computes_what_the_shorter_one_did_until_it_learns_to_look_further():
    from worldsim.model.local_path import widened_history_weights

    short = make_net()  # two predecessors, action conv on
    long = CausalTransformer(dataclasses.replace(short.config, local_frames=5)).double()
    long.load_state_dict(widened_history_weights(short.state_dict(), short.config.latent_channels, 2, 5,
                                                 prefix="local."))
    latents, sigma, actions, events = clip(short, frames=6)
    assert torch.equal(short(latents, sigma, actions, events), long(latents, sigma, actions, events))
    # The padded weights are real parameters: once they change, frames 3+ back reach the output.
    with torch.no_grad():
        long.local.stem_in.weight.normal_(0.0, 0.3)
        for parameter in long.blocks.parameters():  # silence attention: only the local path sees the past
            parameter.zero_()
    older = latents.clone()
    older[:, 0] += 1.0  # frame 0 is the 4th predecessor of frame 4 and the 5th of frame 5
    difference = (long(older, sigma, actions, events) - long(latents, sigma, actions, events)).abs()
    assert difference[0, 4].sum() > 0 and difference[0, 5].sum() > 0


def test_a_history_cannot_shrink():
    import pytest

    from worldsim.model.local_path import widened_history_weights

    with pytest.raises(ValueError, match="only grow"):
        widened_history_weights(make_net().state_dict(), 4, 2, 1, prefix="local.")


def test_aligned_history_changes_a_scrolling_past_only_and_cached_generation_still_equals_the_full_forward():
    import pytest

    from test_model_transformer import TOLERANCE, frames_of, make_clip

    plain = make_net(local_frames=3)
    aligned = CausalTransformer(dataclasses.replace(plain.config, local_align_history=True)).double()
    aligned.load_state_dict(plain.state_dict())  # no weights of its own
    still = make_clip(plain, batch=1, frames=4)
    still[0][:] = still[0][:, :1]  # the same view in every frame: nothing to line up
    assert torch.equal(plain(*still), aligned(*still))
    world = torch.randn(plain.config.latent_channels, 24, 24, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(3))
    size = plain.config.latent_size
    moving = make_clip(plain, batch=2, frames=5)
    for frame in range(5):  # the view moves one cell right per frame
        moving[0][:, frame] = world[:, 4: 4 + size, 4 + frame: 4 + frame + size]
    assert not torch.allclose(plain(*moving), aligned(*moving))
    cache = aligned.new_cache(2, window_frames=8)
    cached = [aligned.forward_cached(*frames_of(moving, chunk), cache, commit=chunk.stop - chunk.start)
              for chunk in (slice(0, 2), slice(2, 3), slice(3, 5))]
    assert torch.allclose(torch.cat(cached, dim=1), aligned(*moving), **TOLERANCE)
    with pytest.raises(ValueError, match="local_align_history"):
        dataclasses.replace(plain.config, local_frames=1, local_align_history=True).validate()


def test_a_history_reader_starts_as_copy_the_newest_frame_and_the_stem_starts_ignoring_it():
    """A reader added to a trained network (widened_reader_weights) leaves its frames as they were;
    a fresh reader guesses "the next frame is the newest one"; its guess reaches the output only
    through the stem's new weights, and the network's own loss never trains the reader."""
    import pytest

    from worldsim.model.local_path import widened_reader_weights

    from test_model_transformer import TOLERANCE, frames_of, make_clip

    plain = make_net(local_frames=3)
    reading = CausalTransformer(dataclasses.replace(plain.config, local_reader_channels=8,
                                                    local_reader_blocks=2)).double()
    reading.load_state_dict(widened_reader_weights(plain.state_dict(), plain.config.latent_channels,
                                                   prefix="local."), strict=False)
    latents, sigma, actions, events = make_clip(plain, batch=2, frames=5)
    assert torch.equal(plain(latents, sigma, actions, events), reading(latents, sigma, actions, events))
    guess = reading.read_next(latents, sigma, actions)
    assert torch.equal(guess[:, 1:], latents[:, :-1]) and torch.equal(guess[:, 0], torch.zeros_like(guess[:, 0]))
    with torch.no_grad():  # a trained reader, and a stem that reads its guess
        for parameter in reading.local.reader.parameters():
            parameter.normal_(0.0, 0.3)
        reading.local.stem_in.weight.normal_(0.0, 0.3)
    assert not torch.allclose(reading.read_next(latents, sigma, actions)[:, 1:], latents[:, :-1])
    reading(latents, sigma, actions, events).square().sum().backward()
    assert all(parameter.grad is None for parameter in reading.local.reader.parameters())
    assert reading.local.stem_in.weight.grad is not None
    # Generation through the cache reads the same predecessors, so it equals the full forward.
    cache = reading.new_cache(2, window_frames=8)
    with torch.no_grad():
        cached = [reading.forward_cached(*frames_of((latents, sigma, actions, events), chunk), cache,
                                         commit=chunk.stop - chunk.start) for chunk in (slice(0, 2), slice(2, 5))]
        assert torch.allclose(torch.cat(cached, dim=1), reading(latents, sigma, actions, events), **TOLERANCE)
    with pytest.raises(ValueError, match="no history reader"):
        plain.read_next(latents, sigma, actions)
    with pytest.raises(ValueError, match="local_reader_channels"):
        dataclasses.replace(plain.config, local_channels=0, local_frames=0, local_reader_channels=8).validate()


def test_a_world_saved_before_history_readers_existed_loads_without_one(tmp_path):
    import json

    from worldsim.world import WorldModel

    world = WorldModel.create(WorldConfig.preset("tiny"), ["night falls"], seed=0)
    world.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format_version"] == hub.FORMAT_VERSION >= 8
    saved["format_version"] = 7  # what format 7 wrote: no reader keys, no reader
    for key in ("local_reader_channels", "local_reader_blocks"):
        del saved["world"]["transformer"][key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = WorldModel.from_pretrained(tmp_path)
    assert loaded.config.transformer.local_reader_channels == 0 and loaded.transformer.local.reader is None


def test_a_stem_that_never_learnt_to_read_the_guess_can_stop_reading_it():
    """`local_reader_feeds_stem=false` removes the stem's inputs from the reader's guess while their
    weights are zero (the network computes what it did, and no pass runs the reader); once the stem
    has learnt to read it, the change is refused."""
    import pytest

    from worldsim.training.config import ConfigError
    from worldsim.training.common import with_grown_transformer
    from worldsim.world import WorldModel

    from test_model_transformer import make_clip

    config = WorldConfig.preset("tiny").with_overrides({"transformer.local_reader_channels": 8})
    world = WorldModel.create(config, ["night falls"], seed=0)
    with torch.no_grad():
        for key, parameter in world.transformer.named_parameters():
            parameter.normal_(0.0, 0.3)
        world.transformer.local.stem_in.weight[:, -config.transformer.latent_channels:] = 0.0
    unread = with_grown_transformer(world, ["local_reader_feeds_stem=false"])
    channels = config.transformer.latent_channels
    assert unread.transformer.local.stem_in.in_channels == world.transformer.local.stem_in.in_channels - channels
    clip = [part.float() if part.is_floating_point() else part for part in make_clip(world.transformer, 2, 4)]
    unread.transformer.local.reader.forward = None  # no pass may run it
    with torch.no_grad():
        torch.testing.assert_close(unread.transformer(*clip), world.transformer(*clip), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        world.transformer.local.stem_in.weight[0, -1] = 0.5
    with pytest.raises(ConfigError, match="learnt to read"):
        with_grown_transformer(world, ["local_reader_feeds_stem=false"])
