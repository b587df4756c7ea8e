"""The causal transformer: attention modes, teacher forcing, and cached == full generation."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from worldsim.model import CausalTransformer, WorldConfig
from worldsim.model.attention import AttentionGroup, frame_causal_mask, teacher_forcing_mask
from worldsim.model.rope import apply_rope
from worldsim.model.transformer import event_changes

TOLERANCE = dict(rtol=0, atol=1e-9)  # float64 networks: differences are rounding only
ALL_KEYS = [AttentionGroup(slice(0, None), slice(0, None), None)]


def make_net(**overrides) -> CausalTransformer:
    """A tiny float64 network with random weights everywhere.

    AdaLN-zero makes a fresh network output exactly zero, which would let every equality below
    pass trivially; random weights make every path matter.
    """
    config = dataclasses.replace(WorldConfig.preset("tiny").transformer, **overrides)
    torch.manual_seed(0)
    net = CausalTransformer(config).double()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.normal_(0.0, 0.3)
    return net


def make_clip(net: CausalTransformer, batch: int, frames: int, seed: int = 0):
    """Random latents, sigma, actions (incl. NO_ACTION) and events for a clip."""
    config = net.config
    gen = torch.Generator().manual_seed(seed)
    size = config.latent_size
    latents = torch.randn(batch, frames, config.latent_channels, size, size, generator=gen,
                          dtype=torch.float64)
    sigma = torch.rand(batch, frames, generator=gen, dtype=torch.float64)
    actions = torch.randint(0, config.num_actions + 1, (batch, frames), generator=gen)
    events = torch.randn(batch, frames, config.event_dim, generator=gen, dtype=torch.float64)
    return latents, sigma, actions, events


def frames_of(clip, index):
    """Frames `index` (a slice or a list) of every tensor of a clip."""
    return tuple(tensor[:, index] for tensor in clip)


# ------------------------------------------------------------------------------- pure pieces

def test_teacher_forcing_mask_layout():
    clean_causal = frame_causal_mask(3)
    expected = torch.tensor([
        # clean 0 1 2 | noisy 0 1 2
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],  # noisy 0 sees only itself
        [1, 0, 0, 0, 1, 0],  # noisy 1 sees clean 0 and itself
        [1, 1, 0, 0, 0, 1],
    ], dtype=torch.bool)
    assert torch.equal(teacher_forcing_mask(3), expected)
    assert torch.equal(teacher_forcing_mask(3)[:3, :3], clean_causal)


def test_rope_scores_depend_only_on_relative_position():
    gen = torch.Generator().manual_seed(0)
    query, key = torch.randn(2, 8, generator=gen, dtype=torch.float64)
    freqs = torch.tensor([1.0, 0.1], dtype=torch.float64)

    def rotated(x, position, start=4):
        angles = position * freqs
        return apply_rope(x, angles.cos(), angles.sin(), start=start)

    score = rotated(query, 7.0) @ rotated(key, 3.0)
    assert torch.allclose(score, rotated(query, 104.0) @ rotated(key, 100.0))
    assert not torch.allclose(score, rotated(query, 5.0) @ rotated(key, 3.0))
    # Channels outside the rotated range pass through unchanged.
    assert torch.equal(rotated(query, 7.0)[:4], query[:4])


# --------------------------------------------------------------------------- full forwards

def test_fresh_network_predicts_zero_velocity():
    config = WorldConfig.preset("tiny").transformer
    net = CausalTransformer(config)
    latents = torch.randn(2, 3, config.latent_channels, config.latent_size, config.latent_size)
    velocity = net(latents, torch.rand(2, 3), torch.zeros(2, 3, dtype=torch.long), None)
    assert velocity.shape == latents.shape
    assert torch.count_nonzero(velocity) == 0


def test_causal_mode_hides_future_frames_and_bidirectional_does_not():
    net = make_net()
    clip = make_clip(net, batch=2, frames=4)
    changed_latents = clip[0].clone()
    changed_latents[:, 2] += 1.0
    changed = (changed_latents, *clip[1:])
    causal, causal_changed = net(*clip), net(*changed)
    assert torch.allclose(causal[:, :2], causal_changed[:, :2], **TOLERANCE)
    assert not torch.allclose(causal[:, 2:], causal_changed[:, 2:])
    both, both_changed = net(*clip, mode="bidirectional"), net(*changed, mode="bidirectional")
    assert not torch.allclose(both[:, 0], both_changed[:, 0])


def test_conditions_act_per_frame():
    net = make_net()
    clip = make_clip(net, batch=1, frames=3)
    for index in (2, 3):  # actions, events
        changed = list(clip)
        changed[index] = clip[index].clone()
        changed[index][:, 1] = clip[index][:, 1] * 0 + (1 if index == 3 else 2)
        out, out_changed = net(*clip), net(*changed)
        assert torch.allclose(out[:, 0], out_changed[:, 0], **TOLERANCE)
        assert not torch.allclose(out[:, 1], out_changed[:, 1])


@pytest.mark.parametrize("event_change", [False, True])
def test_teacher_forcing_frame_equals_causal_forward_on_its_context(event_change):
    net = make_net(event_change=event_change)
    clean, sigma, actions, events = make_clip(net, batch=2, frames=4, seed=1)
    noisy = make_clip(net, batch=2, frames=4, seed=2)[0]
    teacher = net.forward_teacher_forcing(clean, noisy, sigma, actions, events)
    for frame in range(4):
        context = torch.cat((clean[:, :frame], noisy[:, frame:frame + 1]), dim=1)
        context_sigma = torch.cat((torch.zeros_like(sigma[:, :frame]),
                                   sigma[:, frame:frame + 1]), dim=1)
        causal = net(context, context_sigma, actions[:, :frame + 1], events[:, :frame + 1])
        assert torch.allclose(teacher[:, frame], causal[:, -1], **TOLERANCE)


def test_forward_rejects_bad_input():
    net = make_net()
    latents, sigma, actions, events = make_clip(net, batch=2, frames=3)
    with pytest.raises(ValueError, match="mode"):
        net(latents, sigma, actions, events, mode="sideways")
    with pytest.raises(ValueError, match="sigma"):
        net(latents, sigma[:, :2], actions, events)
    with pytest.raises(ValueError, match="actions"):
        net(latents, sigma, actions.double(), events)
    with pytest.raises(ValueError, match="events"):
        net(latents, sigma, actions, events[..., :3])
    with pytest.raises(ValueError, match="latents"):
        net(latents[:, :, :1], sigma, actions, events)


def test_event_changes_are_zero_while_an_event_holds():
    events = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 2.0]]])
    assert event_changes(events).tolist() == [[[0, 0], [0, 0], [-1, 2], [0, 0]]]
    assert event_changes(events, before=torch.tensor([[0.0, 2.0]]))[0, 0].tolist() == [1, -2]


def test_the_event_change_condition_starts_silent_and_reads_only_the_switch_frame():
    """Zero weights at the start: the network outputs what it did without the condition; with
    weights, a switch changes the frame it happens in, and no frame while the event holds."""
    net = make_net(event_change=True)
    with torch.no_grad():
        net.event_change_proj.weight.zero_()
    plain = CausalTransformer(dataclasses.replace(net.config, event_change=False)).double()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if "event_change" not in k})
    latents, sigma, actions, events = make_clip(net, batch=1, frames=3)
    switched = events.clone()
    switched[:, 1] = switched[:, 0]  # one event on frames 0-1, another from frame 2
    assert torch.allclose(net(latents, sigma, actions, switched), plain(latents, sigma, actions, switched),
                          **TOLERANCE)
    with torch.no_grad():
        net.event_change_proj.weight.normal_(0.0, 0.3)
    out, out_plain = net(latents, sigma, actions, switched), plain(latents, sigma, actions, switched)
    assert torch.allclose(out[:, :2], out_plain[:, :2], **TOLERANCE)
    assert not torch.allclose(out[:, 2], out_plain[:, 2])


# ------------------------------------------------------------------------- cached forwards

@pytest.mark.parametrize("event_change", [False, True])
def test_cached_chunks_equal_full_causal_forward(event_change):
    net = make_net(event_change=event_change)
    clip = make_clip(net, batch=2, frames=6)
    full = net(*clip)
    cache = net.new_cache(2, window_frames=8)  # no eviction here
    outputs = []
    for chunk in (slice(0, 1), slice(1, 3), slice(3, 6)):
        frames = chunk.stop - chunk.start
        outputs.append(net.forward_cached(*frames_of(clip, chunk), cache, commit=frames))
    assert torch.allclose(torch.cat(outputs, dim=1), full, **TOLERANCE)
    assert cache.num_frames.tolist() == [6, 6]


@pytest.mark.parametrize("event_change", [False, True])
def test_fused_reencode_and_denoise_matches_full_forward(event_change):
    """The sampler's pass ``[clean f ; noisy f+1]`` with commit=1, then a second step."""
    net = make_net(event_change=event_change)
    clean = make_clip(net, batch=2, frames=3, seed=3)
    noisy, noisy_sigma = make_clip(net, batch=2, frames=1, seed=4)[:2]
    clean_sigma = torch.zeros(2, 3, dtype=torch.float64)
    actions, events = clean[2], clean[3]
    cache = net.new_cache(2)
    net.forward_cached(clean[0][:, :2], clean_sigma[:, :2], actions[:, :2], events[:, :2], cache,
                       commit=2)
    fused = net.forward_cached(
        torch.cat((clean[0][:, 2:], noisy), dim=1), torch.cat((clean_sigma[:, 2:], noisy_sigma), 1),
        torch.cat((actions[:, 2:], actions[:, :1]), 1), torch.cat((events[:, 2:], events[:, :1]), 1),
        cache, commit=1)
    assert cache.num_frames.tolist() == [3, 3]
    second = net.forward_cached(noisy, noisy_sigma, actions[:, :1], events[:, :1], cache)
    assert cache.num_frames.tolist() == [3, 3]
    full = net(torch.cat((clean[0], noisy), 1), torch.cat((clean_sigma, noisy_sigma), 1),
               torch.cat((actions, actions[:, :1]), 1), torch.cat((events, events[:, :1]), 1))
    assert torch.allclose(fused[:, 1], full[:, 3], **TOLERANCE)
    assert torch.allclose(second[:, 0], full[:, 3], **TOLERANCE)


@pytest.mark.parametrize("sink, window, commit", [(1, 3, 1), (2, 2, 1), (0, 3, 1), (1, 3, 2),
                                                  (1, 2, 3)])
def test_fused_commit_equals_separate_commit_through_evictions(sink, window, commit):
    """A pass over ``[committed ; later]`` with commit=P equals committing the P frames in their
    own pass, then running the later frames, for every fill level of the window — the rows start
    at different fill levels, so each row evicts (or not) on its own."""
    net = make_net(depth=3)
    later = 2
    fused, separate = (net.new_cache(2, sink_frames=sink, window_frames=window) for _ in range(2))
    for cache in (fused, separate):  # row 1 starts one frame ahead
        net.forward_cached(*make_clip(net, batch=2, frames=1, seed=99), cache, commit=1)
        cache.reset(torch.tensor([True, False]))
    for step in range(3 * (sink + window)):
        clean = make_clip(net, batch=2, frames=commit, seed=2 * step)
        noisy = make_clip(net, batch=2, frames=later, seed=2 * step + 1)
        both = tuple(torch.cat(pair, dim=1) for pair in zip(clean, noisy))
        out = net.forward_cached(*both, fused, commit=commit)
        net.forward_cached(*clean, separate, commit=commit)
        expected = net.forward_cached(*noisy, separate)
        assert torch.allclose(out[:, commit:], expected, **TOLERANCE), f"step {step}"
        assert fused.num_frames.tolist() == separate.num_frames.tolist()
        for layer in range(3):
            assert torch.allclose(fused.keys[layer], separate.keys[layer], **TOLERANCE)
            assert torch.allclose(fused.values[layer], separate.values[layer], **TOLERANCE)


@pytest.mark.parametrize("frames, commit", [(3, 1), (2, 2), (2, 0)])
def test_skipping_the_committed_output_changes_nothing_else(frames, commit):
    net = make_net(depth=2)
    full, skipped = (net.new_cache(2, sink_frames=1, window_frames=2) for _ in range(2))
    for step in range(5):  # through evictions
        clip = make_clip(net, batch=2, frames=frames, seed=step)
        everything = net.forward_cached(*clip, full, commit=commit)
        later = net.forward_cached(*clip, skipped, commit=commit, return_committed=False)
        assert later.shape[1] == frames - commit
        assert torch.allclose(later, everything[:, commit:], **TOLERANCE)
        for layer in range(2):
            assert torch.allclose(skipped.keys[layer], full.keys[layer], **TOLERANCE)
            assert torch.allclose(skipped.values[layer], full.values[layer], **TOLERANCE)


def test_a_split_commit_that_fills_the_sink_and_evicts_is_refused():
    net = make_net()
    cache = net.new_cache(1, sink_frames=2, window_frames=1)
    net.forward_cached(*make_clip(net, batch=1, frames=1), cache, commit=1)
    with pytest.raises(ValueError, match="sink"):
        net.forward_cached(*make_clip(net, batch=1, frames=4), cache, commit=3)


def test_depth_one_after_eviction_equals_forward_over_cache_contents():
    """Literal check of the cache: once frames are evicted, the new frame's output equals a full
    causal forward over [sink frames ; window frames ; new frame] at positions 0, 1, 2, ...
    Without the local path, whose stem gives each cached frame its true predecessors (which the
    shortened sequence would not); the multi-layer reference below covers the local path."""
    sink, window = 1, 3
    net = make_net(depth=1, local_channels=0, local_frames=0)
    clip = make_clip(net, batch=2, frames=10)
    cache = net.new_cache(2, sink_frames=sink, window_frames=window)
    for frame in range(10):
        cached = net.forward_cached(*frames_of(clip, slice(frame, frame + 1)), cache, commit=1)
        held = list(range(min(frame, sink))) + list(range(max(sink, frame - window), frame))
        reference = net(*frames_of(clip, held + [frame]))
        assert torch.allclose(cached[:, 0], reference[:, -1], **TOLERANCE)


def sink_window_reference(net: CausalTransformer, clip, sink: int, window: int) -> torch.Tensor:
    """Non-incremental reference for a rollout that commits one frame at a time.

    All frames go through each layer together. Frame f attends to itself and to the frames a
    cache holds when f is generated — the first `sink` frames and the last `window` frames after
    them — at the cache's positions (held frames 0, 1, ... in order, then f).
    """
    batch, frames = clip[1].shape
    tokens_per_frame = net.config.tokens_per_frame
    tokens, condition, features = net._embed(*clip, net._previous(clip[0], clip[1]))
    for block in net.blocks:
        every_frame = net.rope.temporal(torch.arange(frames).expand(batch, frames))
        # A block's keys/values depend only on its input tokens, not on what they attend to.
        _, keys, values = block(tokens, condition, net.rope.spatial(frames), every_frame,
                                every_frame, ALL_KEYS)
        outputs = []
        for frame in range(frames):
            held = list(range(min(frame, sink))) + list(range(max(sink, frame - window), frame))
            token_index = [f * tokens_per_frame + t for f in held for t in range(tokens_per_frame)]
            key_rope = net.rope.temporal(torch.arange(len(held) + 1).expand(batch, -1))
            query_rope = (key_rope[0][:, :, -tokens_per_frame:], key_rope[1][:, :, -tokens_per_frame:])
            past = ((keys[:, :, token_index],), (values[:, :, token_index],))
            out, _, _ = block(tokens[:, frame:frame + 1], condition[:, frame:frame + 1],
                              net.rope.spatial(1), query_rope, key_rope, ALL_KEYS, past)
            outputs.append(out)
        tokens = torch.cat(outputs, dim=1)
    return net._head(tokens, condition, features)


@pytest.mark.parametrize("sink, window", [(1, 3), (2, 2), (0, 3)])
def test_multilayer_sink_window_rollout_equals_reference(sink, window):
    net = make_net(depth=3)
    clip = make_clip(net, batch=2, frames=9)
    cache = net.new_cache(2, sink_frames=sink, window_frames=window)
    cached = torch.cat([net.forward_cached(*frames_of(clip, slice(f, f + 1)), cache, commit=1)
                        for f in range(9)], dim=1)
    assert torch.allclose(cached, sink_window_reference(net, clip, sink, window), **TOLERANCE)


@pytest.mark.parametrize("event_change", [False, True])
def test_rows_reset_independently(event_change):
    net = make_net(event_change=event_change)
    before, after = make_clip(net, batch=2, frames=3, seed=5), make_clip(net, 2, 2, seed=6)
    cache = net.new_cache(2)
    net.forward_cached(*before, cache, commit=3)
    cache.reset(torch.tensor([True, False]))
    assert cache.num_frames.tolist() == [0, 3]
    out = net.forward_cached(*after, cache, commit=2)
    fresh = net.new_cache(2)
    fresh_out = net.forward_cached(*after, fresh, commit=2)
    assert torch.allclose(out[0], fresh_out[0], **TOLERANCE)
    continued = net(*(torch.cat((b, a), dim=1) for b, a in zip(before, after)))
    assert torch.allclose(out[1], continued[1, 3:], **TOLERANCE)


def test_cache_stores_detached_tensors_and_gradients_reach_new_frames():
    net = make_net()
    latents, sigma, actions, events = make_clip(net, batch=1, frames=2)
    latents.requires_grad_(True)
    cache = net.new_cache(1)
    for step in range(2):  # a second backward would fail if the cache kept the first graph
        out = net.forward_cached(latents[:, step:step + 1], sigma[:, :1], actions[:, :1],
                                 events[:, :1], cache, commit=1)
        out.square().sum().backward()
    assert all(not t.requires_grad for t in (*cache.keys, *cache.values))
    assert latents.grad is not None and latents.grad.abs().sum() > 0


def test_forward_cached_rejects_bad_calls():
    net = make_net()
    clip = make_clip(net, batch=2, frames=2)
    with pytest.raises(ValueError, match="commit"):
        net.forward_cached(*clip, net.new_cache(2), commit=3)
    with pytest.raises(ValueError, match="batch"):
        net.forward_cached(*clip, net.new_cache(3))
    other = make_net(depth=1)
    with pytest.raises(ValueError, match="layers"):
        net.forward_cached(*clip, other.new_cache(2))


def test_ten_thousand_frame_rollout_keeps_memory_and_positions_bounded():
    net = make_net(latent_size=4, depth=1, window_frames=4).float()
    config = net.config
    cache = net.new_cache(1)
    storage = [t.data_ptr() for t in cache.keys + cache.values]
    nbytes = cache.nbytes()
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 1, config.latent_channels, 4, 4, generator=gen)
    sigma, action = torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.long)
    with torch.inference_mode():
        for frame in range(10_000):
            out = net.forward_cached(latents, sigma, action, None, cache, commit=1)
            latents = out.tanh()  # feed the output back, as a rollout does
            if frame % 1000 == 999:
                positions, valid = cache.slot_layout()
                assert positions[valid].max() < cache.capacity
                assert torch.isfinite(out).all()
    assert cache.num_frames.item() == 10_000
    assert cache.num_cached.item() == cache.capacity
    assert cache.nbytes() == nbytes
    assert [t.data_ptr() for t in cache.keys + cache.values] == storage
