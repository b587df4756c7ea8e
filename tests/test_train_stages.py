"""Training stages on real (tiny) data and worlds: exact resume, CLI errors (worldsim/training)."""
import json

import numpy as np
import pytest
import torch

from resume_helpers import straight_and_resumed
from worldsim.model import flow
from worldsim.training import stages
from worldsim.training.common import world_config_for
from worldsim.training.config import ConfigError
from worldsim.training.event_conditioning import training_texts_for


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from worldsim.data.generate import generate
    from worldsim.envs.explorer.dataset import GenerateConfig

    folder = tmp_path_factory.mktemp("data") / "explorer32"
    generate(folder, GenerateConfig(frames=1024, seed=3, size=32, shard_frames=1024), progress=False)
    return folder


@pytest.fixture(scope="module")
def random_world(tiny_data, tmp_path_factory):
    """A freshly initialised tiny world for 32 px frames, saved as a folder."""
    from worldsim.data import Dataset
    from worldsim.world import WorldModel

    dataset = Dataset(tiny_data)
    world = WorldModel.create(world_config_for("tiny", 32), training_texts_for(dataset.event_texts, "explorer"), seed=1)
    return world.save_pretrained(tmp_path_factory.mktemp("worlds") / "random")


def _delta_config(tiny_data, random_world, **extra):
    overrides = [f"data={tiny_data}", f"init={random_world}", f"teacher={random_world}", "steps=4", "batch_size=2",
                 "frames=2", "chunks=2", "overlap_frames=1", "switch_prob=0.5", "checkpoint_every=2", "log_every=1",
                 "progress=false", "delta.continuity=M3", "lr=1e-3", "dmd.critic_lr=1e-3"]
    return stages.build_config("delta", None, overrides + [f"{k}={v}" for k, v in extra.items()])


def test_killed_delta_stage_resumes_to_identical_weights(tiny_data, random_world, tmp_path):
    """Rollouts, the critic, the EMA anchor, switch draws and the data stream all resume exactly."""
    config = _delta_config(tiny_data, random_world)
    straight, resumed = straight_and_resumed("delta", config, tmp_path, kill_at_step=3)  # checkpoint at 2

    from safetensors.torch import load_file

    for name in ("transformer.safetensors", "events.safetensors"):
        a = load_file(tmp_path / "straight" / "final" / name)
        b = load_file(tmp_path / "killed" / "final" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    latest = json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())
    checkpoint_a = load_file(tmp_path / "straight" / "checkpoints" / f"{latest['name']}.safetensors")
    checkpoint_b = load_file(tmp_path / "killed" / "checkpoints" / f"{latest['name']}.safetensors")
    assert all(torch.equal(checkpoint_a[k], checkpoint_b[k]) for k in checkpoint_a)  # critic, EMA, optimizers too
    assert resumed.first_loss == straight.first_loss and resumed.last_loss == straight.last_loss
    header = (tmp_path / "killed" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"delta_d", "delta_w", "loss", "generator_loss", "fake_real_gap"} <= set(header)
    record = json.loads((tmp_path / "killed" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert record["stage"] == "delta" and record["variant"] == "M3-gauss-first2-motion" and record["rho"] == 0.5  # the default weight, rule, unit


def test_chunks_since_switch_counts_per_row_from_the_chunk_a_switch_falls_in():
    from worldsim.training.stream import chunks_since_switch

    # 2 context frames, then 3 chunks of 2 frames; row 0 switches in the context (not counted) and
    # into frame 5 (chunk 1), row 1 into frame 2 (chunk 0) and frame 7 (chunk 2), row 2 never
    event_ids = torch.tensor([[0, 3, 3, 3, 3, 4, 4, 4],
                              [1, 1, 2, 2, 2, 2, 2, 5],
                              [6, 6, 6, 6, 6, 6, 6, 6]])
    since = chunks_since_switch(event_ids, first_frame=2, chunk_frames=2)
    assert since.tolist() == [[-1, 0, -1], [0, 1, -1], [1, 0, -1]]


def test_streaming_on_real_clips_anchors_every_chunk_and_applies_delta_per_row(tiny_data, random_world, tmp_path):
    """script=clip: the clip's own actions and per-row switches; the carried-map anchor on every chunk;
    Delta Forcing only on the rows a switch just reached (after_switch), plain DMD elsewhere."""
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0,
                           anchor_across_restyles="true", **{"delta.continuity": "M1", "delta.scale": "motion", "delta.apply_to": "after_switch",
                              "delta.after_switch_chunks": 1})
    stage = DeltaStage(config, DistributedContext())
    clip = stage.clips.batch(0)
    assert clip.frames.shape[1] == 2 + 2 * 2  # the whole sequence is real
    conditions, event_ids = stage.sequence_conditions(clip)
    assert torch.equal(event_ids, torch.from_numpy(clip.events))
    assert not (conditions.actions[:, 1:] == stage.world.config.no_action).all()  # the clip's own moves
    applied = stage.applies(torch.tensor([-1, 0, 1]))
    assert applied.tolist() == [False, True, False]
    summary = stages.run_stage("delta", config, tmp_path / "delta")
    assert summary.steps == 4
    header = (tmp_path / "delta" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"anchor_loss", "carried_share", "generator_loss"} <= set(header)
    record = json.loads((tmp_path / "delta" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert record["script"] == "clip" and record["anchor_weight"] == 2.0 and record["anchor_across_restyles"]
    assert record["dmd_on_carried"]
    assert stage.dmd_cells(torch.tensor([True, False])) is None and stage.dmd_cells(None) is None
    config.dmd_on_carried = False  # the carried cells learn from the anchor alone
    assert torch.equal(stage.dmd_cells(torch.tensor([True, False])), torch.tensor([False, True]))
    summary = stages.run_stage("delta", config, tmp_path / "delta-anchor-only")
    record = json.loads((tmp_path / "delta-anchor-only" / "final" / "config.json").read_text())
    assert summary.steps == 4 and record["metadata"]["training"][-1]["dmd_on_carried"] is False
    with pytest.raises(ConfigError, match="dmd_on_carried"):  # nothing would train the carried cells
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, dmd_on_carried="false")
    with pytest.raises(ConfigError, match="script=clip"):  # random scripts have no true frames to anchor to
        _delta_config(tiny_data, random_world, context_frames=2, anchor_weight=2.0)
    with pytest.raises(ConfigError, match="script"):
        _delta_config(tiny_data, random_world, script="replay")
    with pytest.raises(ConfigError, match="delta.scale"):
        _delta_config(tiny_data, random_world, **{"delta.scale": "speed"})


def test_anchor_motion_margin_spares_the_cells_where_the_generated_frames_move(tiny_data, random_world, tmp_path,
                                                                               monkeypatch):
    """anchor_motion_margin takes out of the anchor the cells where the decoded rollout changes
    unexplained by the scroll (and their neighbours): a generated sprite's step, not a still frame."""
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0,
                           anchor_motion_margin=1)
    stage = DeltaStage(config, DistributedContext())
    size = stage.world.config.image_size
    ground = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1  # textured: no
    pixels = ground.expand(2, 6, 3, size, size).clone()  # scroll explains a change, and the view holds still ...
    pixels[0, 3:, :, 4:8, 4:8] = 1.0  # ... where row 0 shows a white sprite in cell (1, 1) from frame 3 on
    monkeypatch.setattr(stage.world.autoencoder, "decode", lambda latents: pixels.flatten(0, 1))
    grid, channels = stage.world.config.autoencoder.latent_size, stage.world.config.autoencoder.latent_channels
    latents = torch.zeros(2, 6, channels, grid, grid)
    moved = stage.generated_motion(latents[:, 2:], latents[:, :2])
    assert moved.shape == (2, 4, grid, grid)
    assert not moved[1].any() and not moved[0, 0].any()  # nothing moves in row 1, nor before the sprite
    assert moved[0, 1:, :3, :3].all() and not moved[0, :, 3:].any()  # the sprite's cell and one around it
    monkeypatch.undo()
    summary = stages.run_stage("delta", config, tmp_path / "delta")
    record = json.loads((tmp_path / "delta" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert summary.steps == 4 and record["anchor_motion_margin"] == 1
    with pytest.raises(ConfigError, match="anchor_weight"):  # nothing to take the cells out of
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_motion_margin=1)
    with pytest.raises(ConfigError, match="anchor_motion_margin"):
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0,
                      anchor_motion_margin=-2)


def test_anchor_chunks_holds_only_the_first_chunks_of_a_sequence(tiny_data, random_world, tmp_path, monkeypatch):
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0,
                           chunks=3, anchor_chunks=1)
    stage = DeltaStage(config, DistributedContext())
    anchored_chunks = []
    anchor_loss = stage.anchor_loss
    monkeypatch.setattr(stage, "anchor_loss", lambda frames, truth, carried: (
        anchored_chunks.append(truth is not None), anchor_loss(frames, truth, carried))[1])
    stage.train_step(0)
    assert anchored_chunks == [True, False, False]  # the first chunk only
    config.anchor_chunks = 0  # every chunk
    anchored_chunks.clear()
    stage.train_step(1)
    assert anchored_chunks == [True, True, True]
    monkeypatch.undo()
    config.anchor_chunks = 1
    summary = stages.run_stage("delta", config, tmp_path / "delta")
    record = json.loads((tmp_path / "delta" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert summary.steps == 4 and record["anchor_chunks"] == 1
    with pytest.raises(ConfigError, match="anchor_chunks"):
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0, anchor_chunks=-1)


def _short_dmd_overrides(name: str, tiny_data, random_world) -> list[str]:
    """Two-step settings of the dmd or rolling stage on the tiny data, teacher-forcing layout."""
    overrides = [f"data={tiny_data}", f"init={random_world}", f"teacher={random_world}", "steps=2",
                 "batch_size=2", "frames=3", "context_frames=1", "checkpoint_every=1", "log_every=1",
                 "progress=false", "diagnose_every=0", "dmd.layout=teacher_forcing", "dmd.critic_steps=1"]
    return overrides + (["window=2", "plain_prob=0"] if name == "rolling" else [])


def test_teacher_forcing_term_trains_the_generator_on_the_real_clip_beside_the_scores(tiny_data, random_world,
                                                                                      tmp_path):
    """teacher_forcing.weight adds sprite-weighted flow matching on the real clip to the delta,
    dmd and rolling stages: logged, recorded, and refused where there is no real clip."""
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    term = {"teacher_forcing.weight": 2.0, "teacher_forcing.sprite_weight": 10.0, "teacher_forcing.switch_weight": 4.0}
    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, **term)
    stage = DeltaStage(config, DistributedContext())
    clip = stage.clips.batch(0)
    conditions, _ = stage.sequence_conditions(clip)
    truth = stage.true_clip(clip)
    assert truth.latents.shape[1] == clip.frames.shape[1] and stage.carried_truth(truth) is None  # no anchor
    assert torch.equal(truth.event_ids.cpu(), torch.from_numpy(clip.events))  # where the switch frames are
    loss, logs = stage.teacher_forcing_loss(truth, conditions)
    assert loss.requires_grad and float(loss.detach()) == pytest.approx(2.0 * logs["teacher_forcing_loss"])
    summary = stages.run_stage("delta", config, tmp_path / "delta")
    assert summary.steps == 4
    assert "teacher_forcing_loss" in (tmp_path / "delta" / "metrics.csv").read_text().splitlines()[0].split(",")
    record = json.loads((tmp_path / "delta" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert record["teacher_forcing"]["weight"] == 2.0 and record["teacher_forcing"]["sprite_weight"] == 10.0
    assert record["teacher_forcing"]["switch_weight"] == 4.0
    for name in ("dmd", "rolling"):
        overrides = _short_dmd_overrides(name, tiny_data, random_world) + [f"{k}={v}" for k, v in term.items()]
        stages.run_stage(name, stages.build_config(name, None, overrides), tmp_path / name)
        assert "teacher_forcing_loss" in (tmp_path / name / "metrics.csv").read_text().splitlines()[0].split(",")
    stage.config.teacher_forcing.weight = 0.0
    assert stage.teacher_forcing_loss(truth, conditions) == (0.0, {}) and stage.true_clip(clip) is None
    with pytest.raises(ConfigError, match="script=clip"):  # a random script has no real clip to train on
        _delta_config(tiny_data, random_world, context_frames=1, **term)
    with pytest.raises(ConfigError, match="teacher_forcing.loss_weight"):
        _delta_config(tiny_data, random_world, script="clip", context_frames=1, **{"teacher_forcing.loss_weight": "flat"})


def test_anchor_sprite_margin_spares_the_cells_around_a_true_sprite(tiny_data, random_world):
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_weight=2.0,
                           anchor_sprite_margin=1)
    stage = DeltaStage(config, DistributedContext())
    clip = stage.clips.batch(0)
    clip.frames[:, 1:] = clip.frames[:, :1]  # the view holds still ...
    clip.frames[0, 3:, 28:32, 28:32] = 255  # ... and a white sprite steps into cell (7, 7) of row 0's frame 3
    truth = stage.true_clip(clip)
    _, spared = stage.carried_truth(truth)
    config.anchor_sprite_margin = -1
    _, carried = stage.carried_truth(truth)
    assert spared.shape == carried.shape == (2, 4, *truth.latents.shape[-2:])
    lost = carried & ~spared
    assert lost.any() and not lost[1].any() and not lost[0, 0].any()  # only row 0, from the sprite's frame on
    assert not spared[0, 1:3, 6:9, 6:9].any()  # the sprite's cell and its neighbours are not anchored
    with pytest.raises(ConfigError, match="anchor_sprite_margin"):
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, anchor_sprite_margin=-2)


def test_dmd_sprite_margin_keeps_the_dmd_gradient_off_the_cells_around_a_true_sprite(tiny_data, random_world,
                                                                                     tmp_path):
    from worldsim.training.delta import DeltaStage
    from worldsim.training.distributed import DistributedContext

    config = _delta_config(tiny_data, random_world, script="clip", context_frames=2, dmd_sprite_margin=1)
    stage = DeltaStage(config, DistributedContext())
    clip = stage.clips.batch(0)
    clip.frames[:, 1:] = clip.frames[:, :1]  # the view holds still ...
    clip.frames[0, 3:, 28:32, 28:32] = 255  # ... and a white sprite steps into cell (7, 7) of row 0's frame 3
    truth = stage.true_clip(clip)
    assert truth is not None and stage.carried_truth(truth) is None  # the margin alone reads the clip
    spared = stage.sprite_spared(truth)
    assert spared.shape == (2, 4, *truth.latents.shape[-2:])
    assert spared[0, 1:3, 6:9, 6:9].all() and not spared[1].any() and not spared[0, 0].any()
    reached = stage.dmd_cells(None, spared)
    assert torch.equal(reached, ~spared)
    carried = torch.zeros_like(spared)
    carried[1, 0, 0, 0] = True
    config.dmd_on_carried = False  # both skips add up
    assert torch.equal(stage.dmd_cells(carried, spared), ~(spared | carried))
    config.dmd_on_carried = True
    assert stage.dmd_cells(carried, None) is None
    summary = stages.run_stage("delta", config, tmp_path / "delta")
    record = json.loads((tmp_path / "delta" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert summary.steps == 4 and record["dmd_sprite_margin"] == 1
    for name in ("dmd", "rolling"):  # both slice the spared cells to the frames they score
        overrides = _short_dmd_overrides(name, tiny_data, random_world) + ["dmd_sprite_margin=0"]
        assert stages.run_stage(name, stages.build_config(name, None, overrides), tmp_path / name).steps == 2
    config.dmd_sprite_margin = -1
    assert stage.sprite_spared(truth) is None and stage.true_clip(clip) is None
    with pytest.raises(ConfigError, match="script=clip"):  # a random script's sprites are not the clip's
        _delta_config(tiny_data, random_world, context_frames=2, dmd_sprite_margin=1)
    with pytest.raises(ConfigError, match="dmd_sprite_margin"):
        _delta_config(tiny_data, random_world, script="clip", context_frames=2, dmd_sprite_margin=-3)


def _ar_teacher_config(tiny_data, random_world, **extra):
    overrides = [f"data={tiny_data}", f"init={random_world}", "steps=4", "batch_size=3", "clip_frames=5",
                 "checkpoint_every=2", "log_every=1", "progress=false", "diagnose_every=0"]
    return stages.build_config("ar-teacher", None, overrides + [f"{k}={v}" for k, v in extra.items()])


def test_own_history_rows_condition_on_the_network_rollout(tiny_data, random_world):
    """With own_history the context frames after the first are the network's rollout from the clip's
    first frame; the first frame and the last (no frame's context) stay true; share 0 keeps the clip."""
    from worldsim.training.ar_teacher import ARTeacherStage
    from worldsim.training.batches import to_model_batch
    from worldsim.training.distributed import DistributedContext
    from worldsim.training.event_conditioning import encode_event_ids

    stage = ARTeacherStage(_ar_teacher_config(tiny_data, random_world, own_history=1.0), DistributedContext())
    batch = to_model_batch(stage.clips.batch(0), stage.world.autoencoder, stage.world.config.no_action)
    events = encode_event_ids(batch.event_ids, stage.vocabulary, stage.world.tokenizer, stage.event_encoder)
    own = stage.context_latents(batch, events)
    assert torch.equal(own[:, 0], batch.latents[:, 0]) and torch.equal(own[:, -1], batch.latents[:, -1])
    assert (own[:, 1:-1] - batch.latents[:, 1:-1]).abs().flatten(1).amax(dim=1).min() > 1e-3  # every row
    stage.config.own_history = 0.0
    assert stage.context_latents(batch, events) is batch.latents


def test_context_noise_goes_on_the_own_history_rows_not_on_the_truth(tiny_data, random_world, monkeypatch):
    """The context the network sees is its own rollout, noised: noise drawn on the true latents
    instead used to throw the own-history rows away whenever context_noise was set."""
    from worldsim.training.ar_teacher import ARTeacherStage
    from worldsim.training.batches import to_model_batch
    from worldsim.training.distributed import DistributedContext
    from worldsim.training.event_conditioning import encode_event_ids

    stage = ARTeacherStage(_ar_teacher_config(tiny_data, random_world, own_history=1.0, context_noise=1e-4),
                           DistributedContext())
    batch = to_model_batch(stage.clips.batch(0), stage.world.autoencoder, stage.world.config.no_action)
    events = encode_event_ids(batch.event_ids, stage.vocabulary, stage.world.tokenizer, stage.event_encoder)
    seen = {}
    monkeypatch.setattr(stage.transformer, "forward_teacher_forcing",
                        lambda clean, noisy, sigma, *rest, clean_sigma: seen.update(clean=clean, sigma=clean_sigma))
    stage.velocity(batch, batch.latents, torch.rand(batch.latents.shape[:2]), events)
    drawn = seen["clean"]
    assert seen["sigma"].shape == batch.latents.shape[:2] and float(seen["sigma"].max()) <= 1e-4
    assert (drawn[:, 1:-1] - batch.latents[:, 1:-1]).abs().flatten(1).amax(dim=1).min() > 1e-2  # own rollout
    assert (drawn[:, 0] - batch.latents[:, 0]).abs().max() < 1e-2  # the true first frame, barely noised


def test_switch_weight_multiplies_the_noise_level_weight_on_switch_frames(tiny_data, random_world):
    from worldsim.training import losses
    from worldsim.training.ar_teacher import ARTeacherStage
    from worldsim.training.batches import to_model_batch
    from worldsim.training.distributed import DistributedContext

    stage = ARTeacherStage(_ar_teacher_config(tiny_data, random_world, loss_weight="bell", switch_weight=5.0),
                           DistributedContext())
    batch = to_model_batch(stage.clips.batch(0), stage.world.autoencoder, stage.world.config.no_action)
    batch.event_ids[0, 2:] = batch.event_ids[0, 1] + 1  # a switch into frame 2 of row 0
    sigma = torch.rand(batch.event_ids.shape)
    weight = stage._loss_weight(batch, sigma)
    torch.testing.assert_close(weight, losses.logit_normal_weight(sigma) * losses.switch_weight(batch.event_ids, 5.0))
    assert weight[0, 2] / losses.logit_normal_weight(sigma)[0, 2] > 1.5  # the switch frame weighs more
    stage.config.switch_weight = 0.0
    torch.testing.assert_close(stage._loss_weight(batch, sigma), losses.logit_normal_weight(sigma))


def test_sprite_weight_lifts_the_cells_where_the_clip_pixels_show_a_sprite_move(tiny_data, random_world):
    from worldsim.training import losses
    from worldsim.training.ar_teacher import ARTeacherStage
    from worldsim.training.batches import clip_sprite_cells, to_model_batch
    from worldsim.training.distributed import DistributedContext

    stage = ARTeacherStage(_ar_teacher_config(tiny_data, random_world, sprite_weight=9.0), DistributedContext())
    clip = stage.clips.batch(0)
    clip.frames[:, 1:] = clip.frames[:, :1]  # the view holds still ...
    clip.frames[0, 3:, :4, :4] = 255  # ... and a white sprite steps into the top-left cell of row 0's frame 3
    batch = to_model_batch(clip, stage.world.autoencoder, stage.world.config.no_action)
    weight = stage._cell_weight(clip, batch.latents)
    assert weight.shape == (*batch.latents.shape[:2], 1, *batch.latents.shape[-2:])
    assert weight[0, 3, 0, 0, 0] > 5 * weight[0, 3, 0, 1, 1] and torch.all(weight[:, :3] == weight[0, 3, 0, 1, 1])
    assert weight[0, 4, 0, 0, 0] == weight[0, 3, 0, 0, 0]  # it holds there: weighed as its arrival
    cells = clip_sprite_cells(torch.from_numpy(clip.frames), batch.latents.shape[-1], hold_frames=2)
    torch.testing.assert_close(weight, losses.weight_on_cells(cells, 9.0))
    stage.config.change_weight = 2.0  # the two weights multiply
    torch.testing.assert_close(weight * losses.change_weight(batch.latents, 2.0), stage._cell_weight(clip, batch.latents))
    stage.config.change_weight = stage.config.sprite_weight = 0.0
    assert stage._cell_weight(clip, batch.latents) is None
    with pytest.raises(ConfigError, match="sprite_weight"):
        _ar_teacher_config(tiny_data, random_world, sprite_weight=-1.0)


def test_killed_ar_teacher_with_own_history_resumes_to_identical_weights(tiny_data, random_world, tmp_path):
    """The rows drawn for own history and the rollouts' noise come back exactly after a resume."""
    config = _ar_teacher_config(tiny_data, random_world, own_history=0.5, context_noise=0.2, switch_weight=4.0,
                                sprite_weight=4.0)
    straight, resumed = straight_and_resumed("ar-teacher", config, tmp_path, kill_at_step=3)
    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "final" / "transformer.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "transformer.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.last_loss == straight.last_loss


def test_train_cli_rejects_bad_settings_without_running(tiny_data, random_world, tmp_path, capsys):
    from worldsim.cli import main

    assert main(["train", "dmd", "--data", str(tiny_data), "--set", f"init={random_world}",
                 "--set", "teacher=", "--out", str(tmp_path / "x")]) == 2
    assert "teacher" in capsys.readouterr().err
    assert main(["train", "delta", "--data", str(tiny_data), "--set", f"init={random_world}", "--set",
                 f"teacher={random_world}", "--set", "delta.weight=linear",
                 "--out", str(tmp_path / "x")]) == 2
    assert "delta.weight" in capsys.readouterr().err
    assert main(["train", "teacher", "--data", str(tiny_data), "--set", "stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_cli_runs_a_stage_and_refuses_to_overwrite_it(tiny_data, random_world, tmp_path, capsys):
    from worldsim.cli import main

    args = ["train", "reward", "--data", str(tiny_data), "--set", f"init={random_world}", "--set", "steps=3",
            "--set", "batch_size=8", "--set", "progress=false", "--out", str(tmp_path / "reward")]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stage"] == "reward" and summary["steps"] == 3
    import worldsim

    world = worldsim.load(str(tmp_path / "reward" / "final"))
    assert world.metadata["training"][-1]["stage"] == "reward"
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0  # already finished: nothing left to do, the result is rewritten


def test_shipped_config_files_load(tmp_path):
    """Every file in configs/ is a valid config of the stage (or recipe) its name starts with."""
    from pathlib import Path

    from worldsim.training.config import load_config
    from worldsim.training.recipe import build_recipe_config

    files = sorted((Path(__file__).parent.parent / "configs").glob("*.*"))
    assert files
    for path in files:
        # the longest stage name the file name starts with ("ar-teacher-compact" is ar-teacher's)
        name = max((stage for stage in (*stages.STAGES, "recipe")
                    if path.stem == stage or path.stem.startswith(f"{stage}-")), key=len)
        if name == "recipe":
            assert build_recipe_config(path).size in ("tiny", "small", "base")
        else:
            config_class, _ = stages.stage_classes(name)
            sources = ["init=x"] + (["teacher=y"] if hasattr(config_class, "teacher") else [])
            config = load_config(config_class, path, [f"data={tmp_path}", *sources])
            assert config.steps > 0


def test_train_help_lists_every_stage(capsys):
    from worldsim.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for stage in [*stages.STAGES, "recipe"]:
        assert stage in text
    assert "--resume" in text and "--set" in text


def test_a_grown_transformer_keeps_its_weights_and_refuses_reshaping_changes(random_world):
    from worldsim.training.common import load_world, with_grown_transformer

    world = load_world(str(random_world), torch.device("cpu"))
    grown = with_grown_transformer(world, ["local_positions=true"])
    assert grown.config.transformer.local_positions and not world.config.transformer.local_positions
    old, new = world.transformer.state_dict(), grown.transformer.state_dict()
    assert set(new) - set(old) == {"local.positions"}
    assert all(torch.equal(old[key], new[key]) for key in old)
    with pytest.raises(ConfigError, match="reshape"):
        with_grown_transformer(world, ["dim=64"])
    longer = with_grown_transformer(world, [f"local_frames={world.config.transformer.local_frames + 3}"])
    assert longer.transformer.local.stem_in.weight.shape[1] > world.transformer.local.stem_in.weight.shape[1]
    with pytest.raises(ConfigError, match="reshape"):  # a shorter history would drop trained weights
        with_grown_transformer(world, [f"local_frames={world.config.transformer.local_frames - 1}"])
    with pytest.raises(ConfigError, match="key=value"):
        with_grown_transformer(world, ["local_positions"])
    lined_up = with_grown_transformer(world, ["local_align_history=true"])  # inputs change, weights do not
    assert lined_up.transformer.local.align_history and not world.transformer.local.align_history
    assert all(torch.equal(old[key], value) for key, value in lined_up.transformer.state_dict().items())
    switch_aware = with_grown_transformer(world, ["event_change=true"])  # starts silent: same outputs
    assert set(switch_aware.transformer.state_dict()) - set(old) == {"event_change_proj.weight"}
    latent = world.config.transformer
    clip = (torch.randn(1, 3, latent.latent_channels, latent.latent_size, latent.latent_size), torch.rand(1, 3),
            torch.randint(0, 5, (1, 3)), torch.randn(1, 3, latent.event_dim))
    with torch.no_grad():
        assert torch.equal(switch_aware.transformer(*clip), world.transformer(*clip))


@pytest.mark.parametrize("layout", ["teacher_forcing", "bidirectional"])
def test_a_teacher_forcing_score_judges_each_new_frame_by_the_frames_before_it_only(random_world, layout):
    """In the teacher-forcing layout the scores of a rollout's first new frame do not move when a
    later frame changes (an AR world scores next frames); in the bidirectional layout they do."""
    from worldsim.training.common import load_world
    from worldsim.training.distributed import DistributedContext
    from worldsim.training.distribution_matching import DistributionMatching, DMDSettings

    world = load_world(str(random_world), torch.device("cpu"))
    scores = DistributionMatching(world.transformer, DMDSettings(layout=layout, real_guidance=2.0), 2.0,
                                  DistributedContext(), grad_clip=1.0)
    with torch.no_grad():  # a critic that differs from the teacher, as after some training
        for parameter in scores.critic.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    latent = world.config.transformer
    context = torch.randn(2, 1, latent.latent_channels, latent.latent_size, latent.latent_size)
    frames = torch.randn(2, 3, *context.shape[2:])
    actions, events = torch.randint(0, 5, (2, 4)), torch.randn(2, 4, world.config.events.dim)
    changed = frames.clone()
    changed[:, -1] += 1.0

    def first_frame_x0(new_frames):
        torch.manual_seed(0)
        scored = scores.score(new_frames, context, actions, events)
        return scored.x0_real[:, 0], scored.x0_fake[:, 0]

    unchanged = all(torch.allclose(a, b, atol=1e-5) for a, b in zip(first_frame_x0(frames), first_frame_x0(changed)))
    assert unchanged == (layout == "teacher_forcing")
    torch.manual_seed(1)
    assert scores.train_critic(frames, context, actions, events) > 0


def test_the_dmd_gradient_reaches_only_the_cells_it_is_given(random_world):
    """With `cells`, the frames' gradient from the DMD loss is zero on every other cell and
    unchanged on the given ones (dmd_on_carried=false leaves the carried cells to the anchor)."""
    from worldsim.training.common import load_world
    from worldsim.training.distributed import DistributedContext
    from worldsim.training.distribution_matching import DistributionMatching, DMDSettings

    world = load_world(str(random_world), torch.device("cpu"))
    scores = DistributionMatching(world.transformer, DMDSettings(layout="teacher_forcing"), 2.0,
                                  DistributedContext(), grad_clip=1.0)
    with torch.no_grad():
        for parameter in scores.critic.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    latent = world.config.transformer
    context = torch.randn(2, 1, latent.latent_channels, latent.latent_size, latent.latent_size)
    actions, events = torch.randint(0, 5, (2, 3)), torch.randn(2, 3, world.config.events.dim)
    cells = torch.rand(2, 2, latent.latent_size, latent.latent_size) < 0.5

    def frame_gradient(given):
        frames = torch.randn(2, 2, *context.shape[2:], generator=torch.Generator().manual_seed(3)).requires_grad_()
        torch.manual_seed(0)
        scores.score(frames, context, actions, events, given).per_sample_loss.sum().backward()
        return frames.grad

    full, masked = frame_gradient(None), frame_gradient(cells)
    inside = cells[:, :, None].expand_as(full)
    assert full[~inside].abs().sum() > 0 and masked[~inside].abs().sum() == 0
    torch.testing.assert_close(masked[inside], full[inside])


def test_dmd_runs_with_an_autoregressive_world_as_its_own_real_score_and_an_anchor(tiny_data, random_world,
                                                                                    tmp_path):
    overrides = [f"data={tiny_data}", f"init={random_world}", f"teacher={random_world}", "steps=2", "batch_size=2",
                 "frames=2", "context_frames=1", "progress=false", "log_every=1", "dmd.layout=teacher_forcing",
                 "diagnose_every=2", "anchor_weight=1.0"]
    summary = stages.run_stage("dmd", stages.build_config("dmd", None, overrides), tmp_path / "dmd")
    assert summary.steps == 2
    lines = (tmp_path / "dmd" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"loss", "generator_loss", "fake_real_gap", "anchor_loss", "carried_share"} <= set(header)
    share = float(lines[1].split(",")[header.index("carried_share")])
    assert 0.0 <= share <= 1.0
    with pytest.raises(ConfigError, match="context_frames"):  # nothing is carried without real context
        stages.build_config("dmd", None, [*overrides[:-1], "context_frames=0", "anchor_weight=1.0"])
    from safetensors.torch import load_file

    before = load_file(random_world / "transformer.safetensors")
    after = load_file(tmp_path / "dmd" / "final" / "transformer.safetensors")
    assert any(not torch.equal(before[key], after[key]) for key in before)  # the generator moved


def test_rolling_windows_are_held_to_the_carried_map_of_a_real_clip(tiny_data, random_world, tmp_path):
    """With anchor_weight, every rolling step (plain_prob 0) logs the anchor on the windows' x0."""
    overrides = [f"data={tiny_data}", f"init={random_world}", f"teacher={random_world}", "steps=2", "batch_size=2",
                 "frames=4", "window=2", "context_frames=2", "plain_prob=0", "progress=false", "log_every=1",
                 "dmd.layout=teacher_forcing", "anchor_weight=4.0", "anchor_across_restyles=true"]
    summary = stages.run_stage("rolling", stages.build_config("rolling", None, overrides), tmp_path / "rolling")
    lines = (tmp_path / "rolling" / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert summary.steps == 2 and {"anchor_loss", "carried_share", "rolling"} <= set(header)
    for line in lines[1:3]:
        row = dict(zip(header, line.split(",")))
        assert float(row["rolling"]) == 1.0 and float(row["anchor_loss"]) > 0 and 0 <= float(row["carried_share"]) <= 1


@pytest.mark.parametrize("name", ["stream-study", "stream-clips", "delta-anchor"])
def test_the_streaming_study_configs_build_for_stream_and_delta(name, tiny_data, random_world):
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "configs" / f"{name}.toml"
    needed = [f"data={tiny_data}", f"init={random_world}", f"teacher={random_world}"]
    for stage in ("stream", "delta"):
        config = stages.build_config(stage, path, needed)
        assert config.chunks == 4 and config.context_frames == 2
        assert (config.script == "clip") == (name != "stream-study") and (config.anchor_weight > 0) == (config.script == "clip")
        assert config.anchor_across_restyles == (name == "delta-anchor")


def test_generated_windows_are_what_the_simulator_reads_labelled_by_the_real_steps(tiny_data, random_world):
    """Window j of a clip is the simulator's reward window after j of the clip's actions, from the
    clip's first real frame; its action and labels are the real step j's."""
    from worldsim.data import Dataset
    from worldsim.sampling.simulator import Simulator
    from worldsim.training.common import load_world
    from worldsim.training.generated_windows import generate_windows
    from worldsim.training.reward import rare_clips

    dataset = Dataset(tiny_data)
    world = load_world(str(random_world), torch.device("cpu"))
    clips = rare_clips(dataset, 5, max_clips=3, seed=0)
    assert clips is not None and len(clips.actions) == 3
    assert ((clips.rewards[:, -1] != 0) | clips.terminated[:, -1]).all()  # each ends at its rare step
    windows = generate_windows(world, clips, dataset.event_texts, batch_size=2, seed=7)
    assert windows.count == 3 * 5
    simulator = Simulator(world, batch_size=1, seed=7 + 2)  # clip 2 is the first of the second batch
    texts = [dataset.event_texts[i] if i >= 0 else "" for i in clips.events[2]]
    simulator.reset(event=[texts[0]], context=clips.frames[2:3, 0])
    for step in range(5):
        latents, actions, rewards, terminated = windows.windows(np.array([2 * 5 + step]))
        torch.testing.assert_close(latents, simulator.reward_window.half().float())
        assert actions[0] == clips.actions[2, step] and rewards[0] == clips.rewards[2, step]
        assert terminated[0] == clips.terminated[2, step]
        if step < 4:
            simulator.step(clips.actions[2:3, step], events=[texts[step + 1]])


def test_reward_stage_on_generated_windows_resumes_exactly_and_records_them(tiny_data, random_world, tmp_path):
    config = stages.build_config("reward", None, [
        f"data={tiny_data}", f"init={random_world}", "steps=4", "batch_size=8", "checkpoint_every=2",
        "progress=false", "generated_clips=6", "generated_frames=3", "generated_share=0.5", "generation_batch=4"])
    straight_and_resumed("reward", config, tmp_path, kill_at_step=3)
    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "final" / "reward.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "reward.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "killed" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert record["generated_windows"] == 6 * 4 and record["generated_share"] == 0.5
    assert record["generation_wall_time_s"] > 0
    with pytest.raises(ConfigError, match="generated_share"):
        stages.build_config("reward", None, [f"data={tiny_data}", f"init={random_world}", "generated_clips=4",
                                             "rare_share=0.5", "generated_share=0.5"])


def test_reward_stage_fresh_model_switches_the_head_and_saves_it(tiny_data, random_world, tmp_path):
    """`fresh_model`: new seeded weights of the stage's head, written into the saved world's config
    so that it loads with the weights it was trained with; the prior correction moves its bias."""
    import worldsim

    for head in ("flatten", "cells"):
        config = stages.build_config("reward", None, [
            f"data={tiny_data}", f"init={random_world}", "steps=2", "batch_size=8", "progress=false",
            "fresh_model=true", f"head={head}"])
        stages.run_stage("reward", config, tmp_path / head)
        world = worldsim.load(str(tmp_path / head / "final"))
        assert world.config.reward.head == head
        assert hasattr(world.reward_model, "cell_prior") == (head == "cells")
        assert world.reward_model.output_bias[3] < -1  # episode ends are rarer than in the rare-heavy batches
    with pytest.raises(ConfigError, match="head"):
        stages.build_config("reward", None, [f"data={tiny_data}", f"init={random_world}", "head=pooled"])


def test_reward_stage_fresh_model_reads_a_longer_window(tiny_data, random_world, tmp_path):
    """`context_frames` gives a fresh reward model a longer window: trained on windows of that
    length (real and the world's own), saved with it, and a loaded world's Simulator feeds it that
    many frames. A trained model's window cannot change."""
    import worldsim

    base = [f"data={tiny_data}", f"init={random_world}", "steps=2", "batch_size=8", "progress=false"]
    config = stages.build_config("reward", None, base + [
        "fresh_model=true", "context_frames=6", "generated_clips=4", "generated_frames=3", "generated_share=0.25"])
    stages.run_stage("reward", config, tmp_path / "long")
    world = worldsim.load(str(tmp_path / "long" / "final"))
    assert world.config.reward.context_frames == 6 != worldsim.load(str(random_world)).config.reward.context_frames
    simulator = world.simulator(batch_size=2, seed=0)
    simulator.reset()
    _, rewards, terminated = simulator.step(torch.tensor([1, 2]))
    assert simulator.reward_window.shape[1] == 6 and rewards.shape == terminated.shape == (2,)
    with pytest.raises(ConfigError, match="context_frames"):
        stages.build_config("reward", None, base + ["context_frames=8"])


def test_causal_cd_grows_its_student_before_distilling(tiny_data, random_world, tmp_path):
    """`transformer_changes`: the student reads what the teacher was grown to read (here the event's
    change), starting as the init world, and the saved world keeps the grown design."""
    overrides = [f"data={tiny_data}", f"init={random_world}", 'transformer_changes=["event_change=true"]',
                 "steps=1", "batch_size=2", "clip_frames=3", "progress=false"]
    stages.run_stage("causal-cd", stages.build_config("causal-cd", None, overrides), tmp_path / "cd")
    saved = json.loads((tmp_path / "cd" / "final" / "config.json").read_text())
    assert saved["world"]["transformer"]["event_change"] is True


def test_causal_cd_scales_the_learning_rate_of_named_parameters(tiny_data, random_world):
    """`lr_scales`: the grown change weights learn at 10x the rate, the rest at the config's; a
    prefix that names no parameter is refused before training."""
    from worldsim.training.causal_cd import CausalCDStage
    from worldsim.training.distributed import DistributedContext

    base = [f"data={tiny_data}", f"init={random_world}", 'transformer_changes=["event_change=true"]',
            "lr=1e-4", "steps=1", "batch_size=2", "clip_frames=3", "progress=false"]
    config = stages.build_config("causal-cd", None, base + ['lr_scales={"event_change_proj": 10}'])
    stage = CausalCDStage(config, DistributedContext())
    rates = {id(p): group["lr"] for group in stage.optimizer.param_groups for p in group["params"]}
    named = dict(stage.student.named_parameters())
    assert rates[id(named["event_change_proj.weight"])] == pytest.approx(1e-3)
    assert {rates[id(p)] for name, p in named.items() if not name.startswith("event_change_proj")} == {1e-4}
    with pytest.raises(ConfigError, match="lr_scales"):
        CausalCDStage(stages.build_config("causal-cd", None, base + ['lr_scales={"no_such": 2}']), DistributedContext())


def test_causal_cd_ode_target_regresses_a_separate_teachers_ode_end(tiny_data, random_world, tmp_path):
    """`target=ode`: levels drawn from those the few-step sampler visits, the target is the other
    world's ODE end under the same paraphrase, and the choice is recorded."""
    from worldsim.data import Dataset
    from worldsim.training import losses
    from worldsim.training.batches import clip_sprite_cells, to_model_batch
    from worldsim.training.causal_cd import CausalCDStage
    from worldsim.training.distributed import DistributedContext
    from worldsim.world import WorldModel

    dataset = Dataset(tiny_data)
    other = WorldModel.create(world_config_for("tiny", 32), training_texts_for(dataset.event_texts, "explorer"), seed=2)
    teacher = other.save_pretrained(tmp_path / "teacher")
    overrides = [f"data={tiny_data}", f"init={random_world}", f"teacher={teacher}", "target=ode", "ode_steps=3",
                 "steps=2", "batch_size=2", "clip_frames=3", "log_every=1", "progress=false"]
    config = stages.build_config("causal-cd", None, overrides)
    stage = CausalCDStage(config, DistributedContext())
    sampling = stage.world.config.sampling
    visited = set(sampling.step_sigmas()) | set(sampling.step_sigmas(first_frame=True))
    assert sorted(stage.sampler_levels.tolist()) == pytest.approx(sorted(visited - {0.0}))
    clip = stage.clips.batch(0)
    batch = to_model_batch(clip, stage.world.autoencoder, stage.world.config.no_action)
    clean, actions = batch.latents, batch.actions
    events = torch.randn(*clean.shape[:2], stage.world.config.transformer.event_dim)
    teacher_weights, student_weights = stage.teacher.state_dict(), stage.student.state_dict()
    name = next(iter(teacher_weights))
    assert torch.equal(teacher_weights[name], other.transformer.state_dict()[name])
    assert not torch.equal(teacher_weights[name], student_weights[name])
    torch.manual_seed(0)
    assert stage._near_sprite_cells(clip, clean) is None and stage._truth_cells(clean, None) is None
    noisy, sigma, target = stage._targets(clean, actions, events, events, batch.event_ids, None)
    assert set(sigma.flatten().tolist()) <= set(stage.sampler_levels.tolist())

    def teacher_velocity(x, s, conditioned):
        return stage.teacher.forward_teacher_forcing(clean, x, s, actions, events if conditioned else None)

    expected = losses.ode_target(teacher_velocity, noisy, sigma, stage.ode_fractions, config.guidance)
    torch.testing.assert_close(target, expected)
    summary = stages.run_stage("causal-cd", config, tmp_path / "cd")
    record = json.loads((tmp_path / "cd" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert summary.steps == 2 and record["target"] == "ode" and record["teacher"] == str(teacher)
    with pytest.raises(ConfigError, match="target"):
        stages.build_config("causal-cd", None, overrides + ["target=bootstrap"])
    with pytest.raises(ConfigError, match="ode_region"):
        stages.build_config("causal-cd", None, overrides + ["ode_region=edges"])
    with pytest.raises(ConfigError, match="carried_tolerance"):
        stages.build_config("causal-cd", None, overrides + ["ode_region=new", "carried_tolerance=0"])
    with pytest.raises(ConfigError, match="target=ode only"):
        stages.build_config("causal-cd", None, [o for o in overrides if o != "target=ode"] + ["ode_region=new"])

    # ode_region=new: the truth on the cells the frame before carries, the same ODE end elsewhere
    new_stage = CausalCDStage(stages.build_config("causal-cd", None, overrides + ["ode_region=new"]),
                              DistributedContext())
    torch.manual_seed(0)
    carried = losses.carried_from_previous(clean)
    assert torch.equal(new_stage._truth_cells(clean, new_stage._near_sprite_cells(clip, clean)), carried)
    _, _, new_target = new_stage._targets(clean, actions, events, events, batch.event_ids, carried)
    assert carried[:, 1:].any() and not carried[:, 0].any()
    torch.testing.assert_close(new_target, losses.target_on_new_cells(expected, clean, carried))

    # ode_region=new+sprites: carried cells near a true sprite keep the ODE end too
    sprite_config = stages.build_config("causal-cd", None, overrides + ["ode_region=new+sprites", "sprite_margin=1"])
    sprite_stage = CausalCDStage(sprite_config, DistributedContext())
    near_sprites = sprite_stage._near_sprite_cells(clip, clean)
    truth = sprite_stage._truth_cells(clean, near_sprites)
    sprites = clip_sprite_cells(torch.from_numpy(clip.frames), clean.shape[-1], sprite_config.sprite_hold_frames)
    assert sprites.any()
    assert torch.equal(near_sprites, losses.near_cells(sprites, 1))
    assert torch.equal(truth, carried & ~near_sprites)
    assert (carried & ~truth).any()  # a carried cell beside a sprite left the truth
    with pytest.raises(ConfigError, match="sprite_margin"):
        stages.build_config("causal-cd", None, overrides + ["ode_region=new+sprites", "sprite_margin=-1"])

    # sprite_weight: the cells near a true sprite weigh more in the loss, with any region; recorded
    with pytest.raises(ConfigError, match="sprite_weight"):
        stages.build_config("causal-cd", None, overrides + ["sprite_weight=-1"])
    weighted_config = stages.build_config("causal-cd", None, overrides + ["ode_region=new", "sprite_weight=4"])
    assert weighted_config.uses_sprites and not config.uses_sprites
    weighted_stage = CausalCDStage(weighted_config, DistributedContext())
    assert torch.equal(weighted_stage._near_sprite_cells(clip, clean), near_sprites)
    summary = stages.run_stage("causal-cd", weighted_config, tmp_path / "cd-weighted")
    record = json.loads((tmp_path / "cd-weighted" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert summary.steps == 2 and record["sprite_weight"] == 4 and record["sprite_margin"] == 1

    # switch_weight: the frames where the event switches weigh 1 + w in the loss; recorded
    with pytest.raises(ConfigError, match="switch_weight"):
        stages.build_config("causal-cd", None, overrides + ["switch_weight=-1"])
    switch_stage = CausalCDStage(stages.build_config("causal-cd", None, overrides + ["switch_weight=3"]),
                                 DistributedContext())
    switch_ids = torch.tensor([[-1, 2, 2], [4, 4, 4]])
    student_x0 = torch.zeros(2, 3, *clean.shape[2:])
    target_x0 = torch.ones_like(student_x0)
    target_x0[0, 1] = 2.0  # the switch frame's error: 4 against 1 elsewhere
    # frame weights 4 on the switch, 1 elsewhere, over their mean 1.5: (4 * 4 + 5 * 1) / 1.5 / 6
    assert switch_stage._loss(student_x0, target_x0, switch_ids, None).item() == pytest.approx(21 / 9)
    assert stage._loss(student_x0, target_x0, switch_ids, None).item() == pytest.approx(9 / 6)
    summary = stages.run_stage("causal-cd", switch_stage.config, tmp_path / "cd-switch")
    record = json.loads((tmp_path / "cd-switch" / "final" / "config.json").read_text())["metadata"]["training"][-1]
    assert record["switch_weight"] == 3


@pytest.mark.parametrize("change", ["local_blocks", "depth"])
def test_a_deeper_transformer_starts_as_the_trained_one(random_world, change):
    from worldsim.training.common import load_world, with_grown_transformer

    world = load_world(str(random_world), torch.device("cpu"))
    with torch.no_grad():  # trained-looking weights: every residual block of the init world does something
        for parameter in world.transformer.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    grown = with_grown_transformer(world, [f"{change}={getattr(world.config.transformer, change) + 1}"])
    assert sum(p.numel() for p in grown.transformer.parameters()) > sum(p.numel() for p in world.transformer.parameters())
    generator = torch.Generator().manual_seed(0)
    channels, cells = world.config.transformer.latent_channels, world.config.transformer.latent_size
    latents = torch.randn(2, 3, channels, cells, cells, generator=generator)
    sigma, actions = torch.rand(2, 3, generator=generator), torch.randint(0, 5, (2, 3), generator=generator)
    events = torch.randn(2, 3, world.config.transformer.event_dim, generator=generator)
    with torch.no_grad():
        expected = world.transformer(latents, sigma, actions, events)
        assert torch.allclose(grown.transformer(latents, sigma, actions, events), expected, atol=1e-6)
        # The added block is trainable, not frozen at the identity: once its weights change, so do the outputs.
        trained = set(world.transformer.state_dict())
        for name, parameter in grown.transformer.named_parameters():
            if name not in trained:
                parameter.add_(0.05 * torch.randn_like(parameter))
        assert not torch.allclose(grown.transformer(latents, sigma, actions, events), expected, atol=1e-3)


def test_frames_started_from_the_guess_are_those_after_the_first_without_a_switch():
    from worldsim.training.causal_cd import started_from_guess

    event_ids = torch.tensor([[-1, -1, 3, 3, 3], [2, 2, 2, -1, -1]])
    assert started_from_guess(event_ids).tolist() == [[False, True, False, True, True],
                                                      [False, True, True, False, True]]


def _check_causal_cd_trains_for_the_reader_start(tiny_data, world_without_reader, world_with_reader, tmp_path):
    """`causal-cd --set reader_start=L`: frames after the first without a switch get the reader's
    guess of the true context noised to L, or the student's own sampler step from it at the level
    below, as the reader-started sampler feeds them; the others keep their noised truth; the saved
    world samples from the guess."""
    from worldsim.training.batches import to_model_batch
    from worldsim.sampling.frame_sampler import denoise_step
    from worldsim.training.causal_cd import CausalCDStage, started_from_guess
    from worldsim.training.distributed import DistributedContext
    from worldsim.training.self_rollout import gaussian_noise_source

    overrides = [f"data={tiny_data}", f"init={world_with_reader}", "target=ode", "ode_steps=2", "reader_start=0.8",
                 "steps=1", "batch_size=2", "clip_frames=4", "log_every=1", "progress=false"]
    stage = CausalCDStage(stages.build_config("causal-cd", None, overrides), DistributedContext())
    assert stage.reader_levels == pytest.approx([0.8, 2 / 3])
    batch = to_model_batch(stage.clips.batch(0), stage.world.autoencoder, stage.world.config.no_action)
    clean, actions = batch.latents, batch.actions
    event_ids = torch.tensor([[-1, -1, 3, 3], [2, 2, 2, 2]])
    events = torch.randn(*clean.shape[:2], stage.world.config.transformer.event_dim)
    noisy, sigma = torch.randn_like(clean), torch.ones(clean.shape[:2])
    torch.manual_seed(5)
    started_noisy, started_sigma = stage._reader_started(clean, actions, events, event_ids, noisy, sigma)
    torch.manual_seed(5)
    guess = stage.student.read_next(clean, torch.zeros_like(sigma), actions)
    at_start = flow.add_noise(guess, torch.randn_like(guess), 0.8)
    velocity = stage.student.forward_teacher_forcing(clean, at_start, torch.full_like(sigma, 0.8), actions, events)
    below = denoise_step(at_start, 0.8, 2 / 3, velocity, gaussian_noise_source(guess),
                         stage.world.config.sampling.fresh_noise)
    started = started_from_guess(event_ids)
    for row, frame in zip(*torch.nonzero(~started, as_tuple=True)):
        assert torch.equal(started_noisy[row, frame], noisy[row, frame]) and started_sigma[row, frame] == 1.0
    for row, frame in zip(*torch.nonzero(started, as_tuple=True)):
        level = started_sigma[row, frame].item()
        assert level == pytest.approx(0.8) or level == pytest.approx(2 / 3)
        expected = at_start if level == pytest.approx(0.8) else below
        torch.testing.assert_close(started_noisy[row, frame], expected[row, frame])
    levels_drawn = {round(level, 3) for level in started_sigma[started].tolist()}
    assert levels_drawn == {0.8, 0.667}  # (this seed draws both depths)
    stages.run_stage("causal-cd", stages.build_config("causal-cd", None, overrides), tmp_path / "cd-reader")
    saved = json.loads((tmp_path / "cd-reader" / "final" / "config.json").read_text())
    assert saved["world"]["sampling"]["reader_start"] == 0.8
    assert saved["metadata"]["training"][-1]["reader_start"] == 0.8
    assert saved["metadata"]["training"][-1]["guess_share"] == 1.0
    with pytest.raises(ConfigError, match="history reader"):
        CausalCDStage(stages.build_config("causal-cd", None, overrides + [f"init={world_without_reader}"]),
                      DistributedContext())
    with pytest.raises(ConfigError, match="target=ode only"):
        stages.build_config("causal-cd", None, [o for o in overrides if o != "target=ode"])
    with pytest.raises(ConfigError, match="reader_start"):
        stages.build_config("causal-cd", None, overrides + ["reader_start=1.0"])
    _check_guess_share(overrides)


def _check_guess_share(overrides):
    """`guess_share=s`: about that share of the frames started from the guess take it, the rest the
    truth noised to the same level; frames not started from the guess are left alone."""
    from worldsim.training.batches import to_model_batch
    from worldsim.training.causal_cd import CausalCDStage, started_from_guess
    from worldsim.training.distributed import DistributedContext

    stage = CausalCDStage(stages.build_config("causal-cd", None, overrides + ["guess_share=0.5"]),
                          DistributedContext())
    far_guess = 1000.0  # a guess no noised truth comes near, so each input shows where it came from
    stage.student.read_next = lambda clean, sigma, actions: torch.full_like(clean, far_guess)
    batch = to_model_batch(stage.clips.batch(0), stage.world.autoencoder, stage.world.config.no_action)
    clean, actions = batch.latents, batch.actions
    event_ids = torch.zeros(clean.shape[:2], dtype=torch.long)
    events = torch.randn(*clean.shape[:2], stage.world.config.transformer.event_dim)
    noisy, sigma = torch.randn_like(clean), torch.ones(clean.shape[:2])
    torch.manual_seed(3)
    inputs, levels = stage._reader_started(clean, actions, events, event_ids, noisy, sigma)
    started = started_from_guess(event_ids)
    assert torch.equal(inputs[~started], noisy[~started]) and torch.all(levels[~started] == 1.0)
    from_guess = inputs.flatten(2).mean(-1).abs() > 30.0  # even a step below the start keeps a third of it
    assert 0 < int(from_guess[started].sum()) < int(started.sum())  # (this seed draws both kinds)
    for row, frame in zip(*torch.nonzero(started & ~from_guess, as_tuple=True)):
        level = levels[row, frame]
        noise = (inputs[row, frame] - (1 - level) * clean[row, frame]) / level
        assert level < 1.0 and noise.abs().max() < 8.0  # the truth noised to the start's level
    with pytest.raises(ConfigError, match="guess_share"):
        stages.build_config("causal-cd", None, overrides + ["guess_share=1.5"])
    with pytest.raises(ConfigError, match="reader_start only"):
        stages.build_config("causal-cd", None, [o for o in overrides if o != "reader_start=0.8"] + ["guess_share=0.5"])


def _reader_config(tiny_data, init, **extra):
    overrides = [f"data={tiny_data}", f"init={init}", "steps=4", "batch_size=3", "clip_frames=4",
                 "reader_channels=8", "reader_blocks=1", "checkpoint_every=2", "log_every=1", "progress=false"]
    return stages.build_config("reader", None, overrides + [f"{k}={v}" for k, v in extra.items()])


def test_the_reader_stage_trains_the_history_reader_alone_and_resumes_exactly(tiny_data, random_world, tmp_path):
    """`worldsim train reader` grows a world without a reader by one, trains its weights only (the
    world's frames stay as they were: the stem starts ignoring the guess), lowers its next-latent
    loss, and a killed run resumes to the same weights."""
    from safetensors.torch import load_file

    from worldsim.training.common import load_world

    config = _reader_config(tiny_data, random_world, context_noise=0.2, sprite_weight=3.0)
    straight, resumed = straight_and_resumed("reader", config, tmp_path, kill_at_step=3)
    a = load_file(tmp_path / "straight" / "final" / "transformer.safetensors")
    b = load_file(tmp_path / "killed" / "final" / "transformer.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.last_loss == straight.last_loss
    before = load_world(str(random_world), torch.device("cpu")).transformer.state_dict()
    trained = [key for key in a if key.startswith("local.reader.")]
    assert trained and all(torch.equal(a[key], before[key]) for key in before if key != "local.stem_in.weight")
    assert not torch.equal(a["local.reader.head.weight"], torch.zeros_like(a["local.reader.head.weight"]))
    stem = a["local.stem_in.weight"]  # the trained columns kept, the reader's guess read with zero weights
    assert torch.equal(stem[:, : before["local.stem_in.weight"].shape[1]], before["local.stem_in.weight"])
    assert stem[:, before["local.stem_in.weight"].shape[1]:].abs().sum() == 0
    # A longer run from the reader just trained lowers its loss (the world already has a reader: kept).
    longer = stages.run_stage("reader", _reader_config(tiny_data, tmp_path / "straight" / "final", steps=30,
                                                       lr=3e-3, warmup_steps=0), tmp_path / "longer")
    assert longer.last_loss < longer.first_loss
    grown = load_world(str(tmp_path / "longer" / "final"), torch.device("cpu")).config.transformer
    assert (grown.local_reader_channels, grown.local_reader_blocks) == (8, 1)
    # A reader only for starting frames: the stem's zero weights on its guess are removed.
    stages.run_stage("reader", _reader_config(tiny_data, tmp_path / "straight" / "final", steps=1,
                                              reader_feeds_stem="false", reader_start=0.8), tmp_path / "unread")
    unread_world = load_world(str(tmp_path / "unread" / "final"), torch.device("cpu"))
    unread = unread_world.transformer
    assert not unread.config.local_reader_feeds_stem and unread_world.config.sampling.reader_start == 0.8
    assert torch.equal(unread.state_dict()["local.stem_in.weight"], before["local.stem_in.weight"])
    _check_causal_cd_trains_for_the_reader_start(tiny_data, random_world, tmp_path / "unread" / "final", tmp_path)
    with pytest.raises(ConfigError, match="clip_frames"):
        _reader_config(tiny_data, random_world, clip_frames=1)
