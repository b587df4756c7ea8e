"""The training losses mean what their docstrings say (worldsim/training/losses.py)."""
import math

import pytest
import torch

from worldsim.model.flow import expand_sigma
from worldsim.training import losses as L


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- flow matching


def test_flow_matching_loss_is_zero_for_the_true_velocity_and_recovers_x0():
    x0, noise = _randn(2, 3, 4, 4, 4, seed=1), _randn(2, 3, 4, 4, 4, seed=2)
    sigma = torch.rand(2, 3, generator=torch.Generator().manual_seed(3))
    x_sigma = (1 - expand_sigma(sigma, x0)) * x0 + expand_sigma(sigma, x0) * noise
    v_true = noise - x0
    assert L.flow_matching_loss(v_true, x0, noise).item() == pytest.approx(0.0, abs=1e-12)
    # the target is the velocity that takes x_sigma back to x0
    torch.testing.assert_close(x_sigma - expand_sigma(sigma, x0) * v_true, x0)
    assert L.flow_matching_loss(torch.zeros_like(x0), x0, noise) > 0.5


def test_flow_matching_weight_selects_frames():
    x0, noise = torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)
    v_pred = torch.zeros(1, 2, 3)
    v_pred[0, 1] = 2.0  # only frame 1 is wrong, by 2 everywhere -> squared error 4
    assert L.flow_matching_loss(v_pred, x0, noise, weight=torch.tensor([[1.0, 0.0]])) == 0
    assert L.flow_matching_loss(v_pred, x0, noise, weight=torch.tensor([[0.0, 1.0]])) == 2.0
    with pytest.raises(ValueError, match="shape mismatch"):
        L.flow_matching_loss(v_pred, x0[:, :1], noise)


def test_change_weight_lifts_the_cells_that_change_and_keeps_every_frame_at_mean_one():
    latents = torch.zeros(1, 3, 2, 2, 2)
    latents[0, 1, :, 0, 0] = 1.0  # one cell changes into frame 1 and back in frame 2
    weight = L.change_weight(latents, strength=2.0)
    assert weight.shape == (1, 3, 1, 2, 2)
    assert torch.all(weight[0, 0] == 1)  # the first frame has nothing to compare with
    # 2 changed cells of 12: mean change 1/6, raw weight 1 + 2 * 6 = 13 against 1 for the others;
    # per frame (13 + 1 + 1 + 1) / 4 = 4, so 13 / 4 and 1 / 4
    torch.testing.assert_close(weight[0, 1:, 0, 0, 0], torch.full((2,), 13 / 4))
    torch.testing.assert_close(weight[0, 1:, 0, 1, 1], torch.full((2,), 1 / 4))
    torch.testing.assert_close(weight.mean(dim=(2, 3, 4)), torch.ones(1, 3))
    assert torch.all(L.change_weight(torch.zeros(1, 2, 2, 2, 2), 5.0) == 1)  # nothing moves: plain mean


def test_switch_weight_lifts_the_frame_where_the_event_changes_and_keeps_the_batch_mean_at_one():
    event_ids = torch.tensor([[-1, -1, 3, 3], [2, 2, 2, 2]])  # row 0 switches into frame 2
    weight = L.switch_weight(event_ids, strength=7.0)
    # raw weights: 8 on the switch frame, 1 on the 7 others: mean 15 / 8
    torch.testing.assert_close(weight[0, 2], torch.tensor(8 / (15 / 8)))
    torch.testing.assert_close(weight[1], torch.full((4,), 1 / (15 / 8)))
    torch.testing.assert_close(weight.mean(), torch.tensor(1.0))
    assert torch.all(L.switch_weight(torch.zeros(2, 3, dtype=torch.long), 7.0) == 1)  # no switch: plain mean


def scrolling_clip(steps: list[tuple[int, int]], size: int = 6, channels: int = 3) -> torch.Tensor:
    """Latents `[1, F, C, size, size]` of a view over a random map that moves by `steps` (dx, dy)."""
    world = torch.randn(channels, 3 * size, 3 * size, generator=torch.Generator().manual_seed(0))
    x = y = size
    frames = [world[:, y: y + size, x: x + size]]
    for dx, dy in steps:
        x, y = x + dx, y + dy
        frames.append(world[:, y: y + size, x: x + size])
    return torch.stack(frames)[None].clone()


def test_carried_cells_follow_the_scroll_and_drop_new_strips_and_changed_cells():
    latents = scrolling_clip([(1, 0), (1, 0), (0, 0)])  # two moves right, then still
    latents[0, 2, :, 3, 1] += 5.0  # a sprite steps into cell (3, 1) of frame 2
    carried = L.carried_cells(latents, context_frames=1)
    assert carried.shape == (1, 3, 6, 6) and carried.dtype == torch.bool
    assert not carried[0, 0, :, 5].any() and carried[0, 0, :, :5].all()  # the new column is imagined
    assert not carried[0, 1, :, 4:].any()  # two columns revealed by now
    assert not carried[0, 1, 3, 1] and carried[0, 1, 2, 1]  # the sprite's cell is not carried ...
    assert not carried[0, 2, 3, 1]  # ... nor what follows from it, though it holds still
    assert carried[0, 2].sum() == carried[0, 1].sum()  # a still frame loses nothing more


def test_carried_cells_stop_at_a_restyle_and_need_a_context():
    latents = scrolling_clip([(0, 1), (0, 1), (0, 1)])
    latents[0, 2] = latents[0, 2] * 0.5 + 1.0  # the event switches: every cell changes
    carried = L.carried_cells(latents, context_frames=1)
    assert carried[0, 0, :5].all() and not carried[0, 0, 5].any()  # moved down: bottom row is new
    assert not carried[0, 1:].any()
    assert not L.carried_cells(latents, context_frames=0).any()
    assert L.carried_cells(latents, context_frames=2).shape == (1, 2, 6, 6)


def test_carried_cells_across_restyles_start_again_from_the_restyled_frame():
    latents = scrolling_clip([(0, 1), (0, 1), (0, 1), (0, 0)])
    latents[0, 2:] = latents[0, 2:] * 0.5 + 1.0  # the event switches into frame 2 and stays
    plain = L.carried_cells(latents, context_frames=1)
    across = L.carried_cells(latents, context_frames=1, across_restyles=True)
    assert torch.equal(across[:, :2], plain[:, :2])  # up to the restyled frame, nothing differs
    assert not across[0, 1].any()  # the restyled frame itself is not carried
    assert across[0, 2, :5].all() and not across[0, 2, 5].any()  # the next frame carries it, scrolled
    assert across[0, 3].sum() == across[0, 2].sum() and not plain[0, 2:].any()


def test_carried_from_previous_reads_each_frame_against_the_one_before_only():
    latents = scrolling_clip([(1, 0), (1, 0), (0, 0)])  # two moves right, then still
    latents[0, 2, :, 3, 1] += 5.0  # a sprite steps into cell (3, 1) of frame 2
    carried = L.carried_from_previous(latents)
    assert carried.shape == (1, 4, 6, 6) and carried.dtype == torch.bool
    assert not carried[0, 0].any()  # a clip's first frame has no frame before it
    assert not carried[0, 1, :, 5].any() and carried[0, 1, :, :5].all()  # one new column per move ...
    assert not carried[0, 2, :, 5].any() and carried[0, 2, :, 4].all()  # ... not two: only the frame before counts
    assert not carried[0, 2, 3, 1] and carried[0, 2, 2, 1]  # the sprite's cell is new
    # a still frame: all carried but the cell the sprite left (a carried chain would have lost more)
    assert not carried[0, 3, 3, 1] and carried[0, 3].sum() == 6 * 6 - 1
    assert torch.equal(L.carried_from_previous(latents[:, :1]), torch.zeros(1, 1, 6, 6, dtype=torch.bool))


def test_target_on_new_cells_keeps_the_truth_where_carried():
    clean, ode_end = torch.zeros(2, 3, 4, 5, 5), torch.ones(2, 3, 4, 5, 5)
    carried = torch.rand(2, 3, 5, 5) > 0.5
    target = L.target_on_new_cells(ode_end, clean, carried)
    assert torch.equal(target, (~carried)[:, :, None].float().expand_as(clean))


def test_sprite_cells_are_where_a_sprite_arrived_or_left_with_the_scroll_taken_out():
    latents = scrolling_clip([(1, 0), (1, 0), (0, 0)])  # two moves right, then still
    latents[0, 2, :, 3, 1] += 5.0  # a sprite steps into cell (3, 1) of frame 2 ...
    latents[0, 3, :, 3, 1] = latents[0, 2, :, 3, 1]  # ... and holds there in frame 3
    cells = L.sprite_cells(latents)
    assert cells.shape == (1, 4, 6, 6) and cells.dtype == torch.bool
    assert not cells[0, 0].any() and not cells[0, 1].any()  # the first frame; a plain scroll (new column: no cell before it)
    # under the scroll the sprite's cell and the cell it came from (cell (3, 2) of frame 1, now (3, 1)) ...
    assert cells[0, 2, 3, 1] and cells[0, 2].sum() == 1
    assert not cells[0, 3].any()  # ... and a sprite that holds still is carried
    latents[0, 3] = latents[0, 3] * 0.5 + 1.0  # an event's restyle: every cell changed
    assert not L.sprite_cells(latents)[0, 3].any()


def test_sprite_cells_hold_a_change_for_hold_frames_as_the_view_scrolls():
    world = torch.randn(3, 18, 18, generator=torch.Generator().manual_seed(0))
    with_sprite = world.clone()
    with_sprite[:, 6 + 3, 6 + 4] += 5.0  # a sprite appears on a map cell in frame 1 and stands there
    views = [(6, world), (6, with_sprite), (7, with_sprite), (8, with_sprite), (8, with_sprite)]  # x; then right, right, still
    latents = torch.stack([w[:, 6:12, x: x + 6] for x, w in views])[None]
    plain = L.sprite_cells(latents)
    assert plain[0, 1, 3, 4] and plain[0, 1].sum() == 1 and not plain[0, 2:].any()  # it arrived, then held
    held = L.sprite_cells(latents, hold_frames=2)
    assert held[0, 1, 3, 4] and held[0, 2, 3, 3] and held[0, 3, 3, 2]  # the same map cell, two frames on
    assert held[0, 1:4].sum(dim=(1, 2)).tolist() == [1, 1, 1] and not held[0, 4].any()


def test_sprite_cells_find_the_scroll_where_the_ground_repeats():
    latents = torch.zeros(1, 3, 3, 6, 6) + torch.tensor([0.3, -0.2, 0.1])[:, None, None]  # one ground tile
    for frame, (row, col) in enumerate([(2, 2), (2, 1), (1, 1)]):  # a landmark, as the view moves right, then down
        latents[0, frame, :, row, col] = 4.0
    assert not L.sprite_cells(latents).any()  # the landmark fixes the scroll that the ground alone would tie


def test_pixel_cells_put_each_patch_in_the_channels_of_its_cell():
    pixels = torch.arange(2 * 3 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 3, 4, 4)
    cells = L.pixel_cells(pixels, 2)
    assert cells.shape == (2, 3, 12, 2, 2)
    torch.testing.assert_close(cells[1, 2, :, 1, 0].view(3, 2, 2), pixels[1, 2, :, 2:4, 0:2])


def test_weight_on_cells_lifts_sprite_cells_and_keeps_the_batch_mean_at_one():
    latents = scrolling_clip([(0, 0), (0, 0)])
    latents[0, 1:, :, 0, 0] += 5.0  # a sprite appears in frame 1 and stays
    weight = L.weight_on_cells(L.sprite_cells(latents), strength=9.0)
    assert weight.shape == (1, 3, 1, 6, 6)
    # raw 10 on one cell of 108, 1 elsewhere: mean (107 + 10) / 108
    torch.testing.assert_close(weight[0, 1, 0, 0, 0], torch.tensor(10 / (117 / 108)))
    torch.testing.assert_close(weight.mean(), torch.tensor(1.0))
    assert torch.all(L.weight_on_cells(L.sprite_cells(scrolling_clip([(1, 0)])), 9.0) == 1)  # a plain scroll


def test_carried_region_loss_counts_only_carried_cells_per_element_of_the_frame():
    target = torch.zeros(1, 2, 2, 2, 2)
    frames = torch.full((1, 2, 2, 2, 2), 2.0)
    carried = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    assert L.carried_region_loss(frames, target, carried) == 0
    carried[0, 1, 0, 0] = True  # one cell of 8, 2 channels: squared error 4 on 2 of 16 elements
    torch.testing.assert_close(L.carried_region_loss(frames, target, carried), torch.tensor(0.5 * 8 / 16))


def test_near_cells_marks_the_square_around_each_marked_cell_clipped_at_the_border():
    cells = torch.zeros(1, 2, 5, 5, dtype=torch.bool)
    cells[0, 0, 2, 2] = cells[0, 1, 0, 4] = True
    near = L.near_cells(cells, 1)
    assert near[0, 0].sum() == 9 and near[0, 0, 1:4, 1:4].all()
    assert near[0, 1].sum() == 4 and near[0, 1, :2, 3:].all()  # the corner's square, cut by the frame
    assert torch.equal(L.near_cells(cells, 0), cells)
    with pytest.raises(ValueError):
        L.near_cells(cells, -1)


def test_on_cells_keeps_every_channel_of_the_given_cells_only():
    values = torch.arange(16.0).reshape(1, 2, 2, 2, 2)
    cells = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    cells[0, 1, 1, 0] = True
    kept = L.on_cells(values, cells)
    assert kept[0, 1, :, 1, 0].tolist() == values[0, 1, :, 1, 0].tolist() and kept.count_nonzero() == 2


def test_cell_weight_keeps_the_loss_scale_and_focuses_it():
    x0, noise = torch.zeros(1, 2, 1, 1, 2), torch.zeros(1, 2, 1, 1, 2)
    v_pred = torch.zeros(1, 2, 1, 1, 2)
    v_pred[0, 1, 0, 0, 1] = 2.0  # one wrong element of four, squared error 4
    assert L.flow_matching_loss(v_pred, x0, noise) == 1.0
    assert L.flow_matching_loss(v_pred, x0, noise, cell_weight=torch.full((1, 2, 1, 1, 2), 7.0)) == 1.0
    focused = torch.ones(1, 2, 1, 1, 2)
    focused[0, 1, 0, 0, 1] = 5.0  # weights 1, 1, 1, 5: mean 2
    assert L.flow_matching_loss(v_pred, x0, noise, cell_weight=focused) == 2.5


def test_logit_normal_weight_is_a_bell_with_unit_mean():
    sigma = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000
    weight = L.logit_normal_weight(sigma)
    assert weight.mean().item() == pytest.approx(1.0, abs=1e-3)  # loss scale unchanged
    assert weight.argmax().item() in (49_999, 50_000)  # peak at sigma = 1/2
    torch.testing.assert_close(weight, weight.flip(0))  # symmetric in sigma <-> 1 - sigma
    assert weight[0] < 1e-3 and weight[-1] < 1e-3  # vanishes at both ends
    half = weight[:50_000]
    assert bool((half[1:] >= half[:-1]).all())  # rises monotonically up to the middle


# ---------------------------------------------------------------- autoencoder


def test_reconstruction_loss_and_psnr():
    target = _randn(2, 3, 8, 8).clamp(-1, 1)
    assert L.reconstruction_loss(target, target).item() == 0.0
    noisy = target + 0.1
    # a constant offset has zero gradient error: only L1 + L2 = 0.1 + 0.01
    assert L.reconstruction_loss(noisy, target).item() == pytest.approx(0.11, rel=1e-5)
    blurred = (target + target.roll(1, dims=-1)) / 2
    assert L.reconstruction_loss(blurred, target, edge_weight=1.0) > L.reconstruction_loss(
        blurred, target, edge_weight=0.0
    )
    # MSE 0.01 over a data range of 2 -> 10 log10(4 / 0.01) dB
    assert L.psnr(noisy, target)[0].item() == pytest.approx(10 * math.log10(400), rel=1e-5)


# ---------------------------------------------------------------- consistency distillation


def test_consistency_grid_contains_the_four_step_levels():
    grid = L.consistency_grid(48, sampler_steps=4)
    assert grid.shape == (49,) and grid[0] == 1 and grid[-1] == 0
    assert bool((grid[1:] < grid[:-1]).all())
    for level in (1.0, 0.75, 0.5, 0.25, 0.0):
        assert torch.isclose(grid, torch.tensor(level)).any(), level
    with pytest.raises(ValueError, match="multiple"):
        L.consistency_grid(50, sampler_steps=4)


def _linear_flow(x0_true):
    """Exact velocity and x0 of a flow whose data distribution is the single point x0_true."""

    def velocity(x, sigma, conditioned=True):
        return (x - x0_true) / expand_sigma(sigma, x)

    def x0_of(x, sigma):
        return x - expand_sigma(sigma, x) * velocity(x, sigma)

    return velocity, x0_of


def test_consistency_target_equals_true_x0_for_an_exact_teacher():
    x0_true, noise = _randn(2, 3, 4, seed=1), _randn(2, 3, 4, seed=2)
    sigma = torch.full((2, 3), 0.75)
    sigma_next = torch.full((2, 3), 0.75 - 1 / 48)
    x_t = (1 - 0.75) * x0_true + 0.75 * noise
    velocity, x0_of = _linear_flow(x0_true)
    target = L.consistency_target(velocity, x0_of, x_t, sigma, sigma_next, guidance=3.0)
    torch.testing.assert_close(target, x0_true)
    # the Euler step itself stays on the straight path to x0
    x_next = x_t + (sigma_next - sigma)[..., None] * velocity(x_t, sigma)
    torch.testing.assert_close(x_next, (1 - sigma_next[..., None]) * x0_true + sigma_next[..., None] * noise)


def test_consistency_target_uses_guidance_and_only_the_target_model():
    x_t = _randn(1, 2, 3)
    sigma, sigma_next = torch.full((1, 2), 0.5), torch.full((1, 2), 0.25)

    def teacher(x, sigma, conditioned):
        return torch.ones_like(x) * (2.0 if conditioned else 1.0)

    def ema_x0(x, sigma):
        return x.clone()

    plain = L.consistency_target(teacher, ema_x0, x_t, sigma, sigma_next, guidance=1.0)
    guided = L.consistency_target(teacher, ema_x0, x_t, sigma, sigma_next, guidance=3.0)
    torch.testing.assert_close(plain, x_t - 0.25 * 2.0)  # v = v_cond
    torch.testing.assert_close(guided, x_t - 0.25 * 4.0)  # v = 1 + 3 (2 - 1)

    # the target comes from the EMA copy: changing the online student changes nothing,
    # changing the EMA copy changes the target, and no gradient reaches either
    online, ema = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    ema.load_state_dict(online.state_dict())
    target_fn = lambda x, s: ema(x)  # noqa: E731
    before = L.consistency_target(teacher, target_fn, x_t, sigma, sigma_next)
    with torch.no_grad():
        online.weight.add_(1.0)
    torch.testing.assert_close(L.consistency_target(teacher, target_fn, x_t, sigma, sigma_next), before)
    with torch.no_grad():
        ema.weight.add_(1.0)
    after = L.consistency_target(teacher, target_fn, x_t, sigma, sigma_next)
    assert not torch.allclose(after, before) and not after.requires_grad


def test_ode_target_reaches_true_x0_for_an_exact_teacher_from_every_level():
    x0_true, noise = _randn(2, 3, 4, seed=1), _randn(2, 3, 4, seed=2)
    sigma = torch.tensor([[1.0, 0.667, 0.4], [0.857, 1.0, 0.667]])  # each frame from its own level
    x_t = (1 - sigma[..., None]) * x0_true + sigma[..., None] * noise
    velocity, _ = _linear_flow(x0_true)
    fractions = torch.tensor([1.0, 0.8, 0.5, 0.0])
    torch.testing.assert_close(L.ode_target(velocity, x_t, sigma, fractions, guidance=3.0), x0_true)


def test_ode_target_takes_one_guided_teacher_step_per_level():
    x_t, sigma = _randn(1, 2, 3), torch.tensor([[1.0, 0.5]])
    calls = []

    def teacher(x, level, conditioned):
        calls.append((level.clone(), conditioned))
        return torch.ones_like(x) * (2.0 if conditioned else 1.0)

    fractions = torch.tensor([1.0, 0.5, 0.0])
    plain = L.ode_target(teacher, x_t, sigma, fractions)
    assert [conditioned for _, conditioned in calls] == [True, True]
    torch.testing.assert_close(calls[1][0], sigma * 0.5)  # the second step starts halfway down each frame
    torch.testing.assert_close(plain, x_t - sigma[..., None] * 2.0)  # from sigma to 0 at v = 2
    calls.clear()
    guided = L.ode_target(teacher, x_t, sigma, fractions, guidance=3.0)
    assert len(calls) == 4 and not guided.requires_grad
    torch.testing.assert_close(guided, x_t - sigma[..., None] * 4.0)  # v = 1 + 3 (2 - 1)
    for bad in ([1.0, 0.0, 0.5], [0.9, 0.0], [1.0, 0.2]):
        with pytest.raises(ValueError, match="descend"):
            L.ode_target(teacher, x_t, sigma, torch.tensor(bad))


def test_consistency_loss_pulls_student_toward_target_only():
    student = torch.zeros(2, 3, requires_grad=True)
    target = torch.ones(2, 3, requires_grad=True)
    L.consistency_loss(student, target).backward()
    assert bool((student.grad < 0).all())  # descent increases student toward the target
    assert target.grad is None


def test_consistency_loss_cell_weight_counts_the_weighted_cells_more_at_the_same_scale():
    student, target = torch.zeros(1, 1, 1, 2, 2), torch.ones(1, 1, 1, 2, 2)
    target[..., 0, 0] = 3.0  # error 9 on the marked cell, 1 on the three others
    cells = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    cells[..., 0, 0] = True
    weight = L.weight_on_cells(cells, 3.0)  # 4 on the marked cell, 1 elsewhere, over their mean 7 / 4
    assert L.consistency_loss(student, target).item() == pytest.approx(3.0)
    assert L.consistency_loss(student, target, cell_weight=weight).item() == pytest.approx((36 + 3) / 7)
    uniform = torch.full_like(weight, 5.0)  # a constant weight changes nothing
    assert L.consistency_loss(student, target, cell_weight=uniform).item() == pytest.approx(3.0)


# ---------------------------------------------------------------- DMD


def test_dmd_loss_gradient_is_g_and_moves_x_toward_the_real_score():
    x0_real, x0_fake = _randn(2, 2, 4, 4, seed=1), _randn(2, 2, 4, 4, seed=2)
    x = x0_fake.clone().requires_grad_(True)  # the generator sits where the fake score says
    g = L.dmd_gradient(x, x0_fake, x0_real)
    L.dmd_loss(x, g).sum().backward()
    torch.testing.assert_close(x.grad, g)

    x_new = x.detach() - 0.1 * x.grad
    before = L.per_sample_norm(x.detach() - x0_real)
    after = L.per_sample_norm(x_new - x0_real)
    assert bool((after < before).all())
    direction = ((x_new - x.detach()) * (x0_real - x0_fake)).flatten(1).sum(1)
    assert bool((direction > 0).all())


def test_dmd_gradient_vanishes_when_scores_agree_and_is_normalised_per_sample():
    x, x0_real = _randn(2, 8, seed=1), _randn(2, 8, seed=2)
    assert L.dmd_gradient(x, x0_real, x0_real).abs().max() == 0
    x0_fake = x0_real + 1.0
    g = L.dmd_gradient(x, x0_fake, x0_real)
    torch.testing.assert_close(g[0], torch.ones(8) / (x[0] - x0_real[0]).abs().mean())
    # scaling how far the sample is from the real score shrinks the step proportionally
    g_far = L.dmd_gradient(x0_real + 2 * (x - x0_real), x0_fake, x0_real)
    torch.testing.assert_close(g_far, g / 2)


def test_critic_loss_trains_the_critic_not_the_generator():
    generated = torch.randn(2, 4, requires_grad=True)
    v_pred = torch.zeros(2, 4, requires_grad=True)
    L.critic_loss(v_pred, generated, torch.randn(2, 4)).backward()
    assert generated.grad is None and v_pred.grad is not None


# ---------------------------------------------------------------- Delta Forcing


def _chunk(seed=0):
    history = _randn(3, 4, 2, 2, seed=seed)
    generator = history.unsqueeze(1) + 0.5 * _randn(3, 2, 4, 2, 2, seed=seed + 1)
    return history, generator


def test_delta_statistic_measures_disagreement_in_units_of_the_transition():
    history, generator = _chunk()
    assert L.delta_statistic(generator, generator, history).abs().max() == 0
    transition = L.per_sample_norm(generator - history.unsqueeze(1))
    direction = _randn(*generator.shape, seed=9)
    direction = direction / expand_sigma(L.per_sample_norm(direction), direction)
    pulled = generator + expand_sigma(2 * transition, direction) * direction
    d = L.delta_statistic(pulled, generator, history, eps=0.0)
    torch.testing.assert_close(d, torch.full((3,), 2.0))
    # a history given as [B, K, ...] uses its last frame
    stacked = torch.stack([history + 5, history], dim=1)
    torch.testing.assert_close(L.delta_statistic(pulled, generator, stacked, eps=0.0), d)


def test_motion_scale_measures_the_history_not_the_chunk():
    history = torch.zeros(2, 3, 4, 2, 2)
    history[:, 1] = 1.0  # frame-to-frame motions 4 then 4 (16 elements of 1): the largest is 4
    history[0, 2] = 1.0  # row 0 then stands still
    generator = 10.0 + _randn(2, 4, 4, 2, 2, seed=3)  # a restyled chunk of 4 frames, far from the history
    scale = L.transition_norm(generator, history, scale="motion")
    torch.testing.assert_close(scale, torch.full((2,), 4.0 * 4 ** 0.5))
    assert (L.transition_norm(generator, history, scale="chunk") > 3 * scale).all()  # the restyle inflates it
    teacher = generator + 1.0
    d = L.delta_statistic(teacher, generator, history, eps=0.0, scale="motion")
    torch.testing.assert_close(d, L.per_sample_norm(teacher - generator) / scale)
    with pytest.raises(ValueError, match="2 frames"):
        L.transition_norm(generator, history[:, -1], scale="motion")
    with pytest.raises(ValueError, match="scale"):
        L.transition_norm(generator, history, scale="speed")


@pytest.mark.parametrize("kind", L.WEIGHT_KINDS)
def test_trust_region_weight_is_one_when_teacher_agrees_and_falls_as_it_pulls_away(kind):
    history, generator = _chunk()
    direction = _randn(*generator.shape, seed=5)
    weights = []
    for amount in torch.linspace(0, 5, 26):
        teacher = generator + amount * direction
        d = L.delta_statistic(teacher, generator, history)
        weights.append(L.trust_region_weight(d, rho=0.5, kind=kind))
    weights = torch.stack(weights)  # [steps, B]
    torch.testing.assert_close(weights[0], torch.ones(3))
    assert bool((weights[1:] <= weights[:-1] + 1e-7).all())  # non-increasing
    assert bool((weights[-1] < 0.5).all())  # far from agreement the DMD term loses its weight
    assert bool(((weights >= 0) & (weights <= 1)).all())


def test_trust_region_weight_formulas():
    d = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0])
    torch.testing.assert_close(L.trust_region_weight(d, 0.5, "clip"), torch.tensor([1, 1, 1, 0.5, 0.25]))
    torch.testing.assert_close(L.trust_region_weight(d, 0.5, "gauss"), torch.exp(-(d / 0.5) ** 2))
    torch.testing.assert_close(L.trust_region_weight(d, 0.5, "cosine"), torch.tensor([1, 1, 1, 0, 0.0]))
    torch.testing.assert_close(L.trust_region_weight(torch.tensor([0.75]), 0.5, "cosine"), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="unknown trust-region weight kind"):
        L.trust_region_weight(d, 0.5, "linear")
    with pytest.raises(ValueError, match="rho"):
        L.trust_region_weight(d, 0.0)


def test_projected_target_stays_within_the_radius_and_equals_the_teacher_inside():
    history, generator = _chunk()
    radius = 0.5 * L.per_sample_norm(generator - history.unsqueeze(1))
    direction = _randn(*generator.shape, seed=7)
    direction = direction / expand_sigma(L.per_sample_norm(direction), direction)

    near = generator + expand_sigma(0.5 * radius, direction) * direction
    torch.testing.assert_close(L.projected_target(near, generator, history, rho=0.5), near)

    far = generator + expand_sigma(3 * radius, direction) * direction
    projected = L.projected_target(far, generator, history, rho=0.5)
    torch.testing.assert_close(L.per_sample_norm(projected - generator), radius)
    # on the segment toward the teacher
    torch.testing.assert_close(projected, generator + expand_sigma(radius, direction) * direction)

    x = generator.clone().requires_grad_(True)
    L.projected_target_loss(x, projected).sum().backward()
    torch.testing.assert_close(x.grad, generator - projected)


def test_monotone_jump_penalty_is_zero_under_the_bound_and_positive_above():
    history = torch.zeros(2, 1, 2, 2)
    steps = torch.arange(1, 4, dtype=torch.float32).view(1, 3, 1, 1, 1)
    frames = (steps * torch.full((2, 1, 1, 2, 2), 0.5)).clone()  # motion 1.0 per frame
    motion = L.frame_motion(torch.cat([history.unsqueeze(1), frames], dim=1))
    torch.testing.assert_close(motion, torch.ones(2, 3))

    calm = L.monotone_jump_penalty(frames, history, torch.tensor([1.0, 1.5]))
    torch.testing.assert_close(calm, torch.zeros(2))
    jumpy = frames.clone()
    jumpy[:, 0] += 1.0  # the jump into the chunk is now 3x the bound of 1.0
    penalty = L.monotone_jump_penalty(jumpy.requires_grad_(True), history, torch.tensor([1.0, 1.0]))
    assert bool((penalty > 0).all())
    penalty.sum().backward()
    # descending the penalty pulls the first frame back toward the history
    assert bool(((jumpy.grad[:, 0] * jumpy.detach()[:, 0]).flatten(1).sum(1) > 0).all())


def test_proximal_anchor_is_zero_at_the_anchor_and_grows_away():
    anchor = _randn(2, 3, 4)
    assert L.proximal_anchor_loss(anchor, anchor).abs().max() == 0
    direction = _randn(2, 3, 4, seed=3)
    values = torch.stack([L.proximal_anchor_loss(anchor + a * direction, anchor) for a in (0.1, 0.5, 1.0, 2.0)])
    assert bool((values[1:] > values[:-1]).all())


def test_delta_forcing_loss_blends_dmd_and_continuity_by_weight():
    dmd = torch.tensor([1.0, 1.0])
    cont = torch.tensor([4.0, 4.0])
    assert L.delta_forcing_loss(dmd, cont, torch.ones(2), lam=0.5) == 1.0
    assert L.delta_forcing_loss(dmd, cont, torch.zeros(2), lam=0.5) == 2.0
    assert L.delta_forcing_loss(dmd, cont, torch.tensor([1.0, 0.0]), lam=0.5) == 1.5
    weights = torch.tensor([0.5, 0.5], requires_grad=True)
    dmd = dmd.clone().requires_grad_(True)
    L.delta_forcing_loss(dmd, cont, weights, lam=1.0).backward()
    assert weights.grad is None  # the weights are constants
    torch.testing.assert_close(dmd.grad, torch.tensor([0.25, 0.25]))


# ---------------------------------------------------------------- Rolling Forcing


def test_rolling_window_sigmas_oldest_least_noisy():
    sigma_in, sigma_out = L.rolling_window_sigmas(4)
    torch.testing.assert_close(sigma_in, torch.tensor([0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(sigma_out, torch.tensor([0.0, 0.25, 0.5, 0.75]))
    assert sigma_out[0] == 0 and sigma_in[-1] == 1  # emits one clean frame, admits pure noise
    torch.testing.assert_close(sigma_out[1:], sigma_in[:-1])  # the window shifts by one level


def test_rolling_gradient_mask_selects_non_overlapping_windows():
    window, num_steps = 4, 18
    for exit_step in range(window):
        mask = L.rolling_gradient_mask(num_steps, window, exit_step)
        selected = mask.nonzero().flatten().tolist()
        assert all(step % window == exit_step for step in selected)
        covered = [f for step in selected for f in range(step, step + window)]
        assert len(covered) == len(set(covered))  # no frame is trained twice
        assert set(range(exit_step, selected[-1] + window)) == set(covered)  # no gaps
    with pytest.raises(ValueError, match="exit_step"):
        L.rolling_gradient_mask(8, 4, 4)


# ---------------------------------------------------------------- reward


def test_reward_loss_prefers_the_true_classes():
    reward_class, done = torch.tensor([2, 1]), torch.tensor([False, True])
    right = L.reward_loss(torch.tensor([[-5.0, -5, 5], [-5, 5, -5]]), torch.tensor([-5.0, 5]), reward_class, done)
    wrong = L.reward_loss(torch.tensor([[5.0, -5, -5], [5, -5, -5]]), torch.tensor([5.0, -5]), reward_class, done)
    assert right < 0.05 < 5 < wrong


def test_rolling_levels_match_the_inference_rolling_sampler():
    """Training rolls windows at the levels `worldsim.sampling.rolling.RollingSampler` runs at."""
    from worldsim.model import flow
    from worldsim.sampling.frame_sampler import step_sigmas

    for window, shift in ((3, 1.0), (4, 2.0)):
        sigma_in, _ = L.rolling_window_sigmas(window)
        inference_levels = step_sigmas(window, shift)[:-1]  # newest (1.0) first
        torch.testing.assert_close(flow.shift_sigma(sigma_in, shift).flip(0), torch.tensor(inference_levels))


def test_event_prototype_loss_prefers_vectors_pointing_at_their_own_prototype():
    prototypes = torch.eye(3)
    labels = torch.tensor([0, 2])
    right = L.event_prototype_loss(torch.tensor([[2.0, 0, 0], [0, 0, 0.5]]), labels, prototypes)
    wrong = L.event_prototype_loss(torch.tensor([[0.0, 2, 0], [0.5, 0, 0]]), labels, prototypes)
    assert right < 0.01 < 5 < wrong  # cosine logits: the length of a vector does not matter


def test_event_prototype_loss_anchors_only_the_anchored_events():
    prototypes, anchors = torch.eye(3), torch.eye(3)[:2] * 2  # event 2 (e.g. "unknown") has no anchor
    on_anchor = L.event_prototype_loss(torch.tensor([[2.0, 0, 0]]), torch.tensor([0]), prototypes, anchors=anchors)
    short = L.event_prototype_loss(torch.tensor([[1.0, 0, 0]]), torch.tensor([0]), prototypes, anchors=anchors)
    free = L.event_prototype_loss(torch.tensor([[0.0, 0, 1]]), torch.tensor([2]), prototypes, anchors=anchors)
    assert torch.isclose(on_anchor, L.event_prototype_loss(torch.tensor([[2.0, 0, 0]]), torch.tensor([0]), prototypes))
    # same direction, half the length: the anchor term adds (1/3 of 1^2) / mean square of the anchors (4/3)
    assert torch.isclose(short - on_anchor, torch.tensor(0.25), atol=1e-4)
    assert torch.isclose(free, L.event_prototype_loss(torch.tensor([[0.0, 0, 1]]), torch.tensor([2]), prototypes))


def test_next_latent_loss_scores_frames_with_a_past_and_weighs_cells():
    latents = torch.zeros(2, 3, 4, 2, 2)
    guess = latents.clone()
    guess[:, 0] = 5.0  # frame 0 has no past: its guess is not scored
    assert L.next_latent_loss(guess, latents) == 0.0
    guess[:, 2, :, 0, 0] = 1.0  # one cell of frame 2 off by 1 in every channel: 1/8 of frames 1..2's cells
    assert torch.isclose(L.next_latent_loss(guess, latents), torch.tensor(1 / 8))
    weight = torch.ones(2, 3, 1, 2, 2)
    weight[:, 2, :, 0, 0] = 3.0  # that cell weighs 3 of a mean (3 + 7) / 8 among frames 1..2
    assert torch.isclose(L.next_latent_loss(guess, latents, weight), torch.tensor(3 / 10))
    with pytest.raises(ValueError, match="shape"):
        L.next_latent_loss(guess[:, 1:], latents)
    with pytest.raises(ValueError, match="past"):
        L.next_latent_loss(guess[:, :1], latents[:, :1])
