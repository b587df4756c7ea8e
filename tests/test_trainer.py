"""The shared training loop: configs, checkpoints, exact resume, logs (worldsim/training/trainer.py)."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import nn

from worldsim.training import checkpoint as ckpt
from worldsim.training.config import ConfigError, TrainConfig, apply_overrides, load_config
from worldsim.training.distributed import DistributedContext, broadcast_choice
from worldsim.training.ema import ema_copy, ema_update
from worldsim.training.metrics_log import read_metrics
from worldsim.training.trainer import lr_scaled_groups, make_adamw, optimizer_step, seed_everything, train


@dataclass
class Inner:
    depth: int = 2
    widths: tuple[int, ...] = (4, 8)
    name: str | None = None


@dataclass
class ToyConfig(TrainConfig):
    ratio: float = 0.5
    inner: Inner = field(default_factory=Inner)


# ------------------------------------------------------------------ configs


def test_overrides_are_typed_and_nested():
    config = apply_overrides(ToyConfig(), ["lr=3e-3", "steps=7", "progress=false", "ratio=2",
                                           "inner.depth=5", "inner.widths=1,2,3", "inner.name=abc"])
    assert (config.lr, config.steps, config.progress, config.ratio) == (3e-3, 7, False, 2.0)
    assert (config.inner.depth, config.inner.widths, config.inner.name) == (5, (1, 2, 3), "abc")
    assert apply_overrides(config, ["inner.name=none"]).inner.name is None


@pytest.mark.parametrize("override, message", [
    ("stepz=3", "unknown config key 'stepz'"),
    ("steps=3.5", "steps: expected an integer"),
    ("progress=maybe", "progress: expected true/false"),
    ("inner.depth=x", "inner.depth: cannot parse"),
    ("inner=3", "is a section"),
    ("steps", "key=value"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(ToyConfig(), [override])


def test_config_files_json_and_toml(tmp_path):
    (tmp_path / "a.toml").write_text('steps = 12\n[inner]\ndepth = 3\n')
    config = load_config(ToyConfig, tmp_path / "a.toml", ["lr=0.5"])
    assert (config.steps, config.inner.depth, config.inner.widths, config.lr) == (12, 3, (4, 8), 0.5)
    (tmp_path / "b.json").write_text(json.dumps({"inner": {"colour": 1}}))
    with pytest.raises(ConfigError, match="inner.colour"):
        load_config(ToyConfig, tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"batch_size": "8"}))
    with pytest.raises(ConfigError, match="batch_size: expected an integer"):
        load_config(ToyConfig, tmp_path / "c.json")
    with pytest.raises(ConfigError, match="steps must be positive"):
        load_config(ToyConfig, None, ["steps=0"])


# ------------------------------------------------------------------ a toy stage


class ToyStage:
    """Noisy linear regression: uses the global RNG, an EMA copy and a step-indexed data order."""

    name = "toy"
    samples_per_step = 4

    def __init__(self, config: ToyConfig, crash_at: int | None = None):
        self.config = config
        self.crash_at = crash_at
        self.model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        self.ema = ema_copy(self.model)
        self.optimizer = make_adamw(self.model.parameters(), config)
        self.true_weight = torch.tensor([[1.0], [-2.0], [0.5]])

    def modules(self):
        return {"model": self.model, "ema": self.ema}

    def optimizers(self):
        return {"model": self.optimizer}

    def batch(self, step):
        generator = torch.Generator().manual_seed(self.config.seed * 10_000 + step)
        inputs = torch.randn(self.samples_per_step, 3, generator=generator)
        return inputs, inputs @ self.true_weight

    def train_step(self, step):
        if step == self.crash_at:
            raise KeyboardInterrupt("killed")
        inputs, targets = self.batch(step)
        targets = targets + 0.01 * torch.randn_like(targets)  # global RNG: must be restored on resume
        loss = (self.model(inputs) - targets).pow(2).mean()
        optimizer_step(loss, self.optimizer, DistributedContext(), self.config.grad_clip)
        ema_update(self.ema, self.model, 0.9)
        return {"loss": loss.item()}

    def finish(self, out_dir: Path, summary):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "done").write_text("ok")


def _run(out_dir, crash_at=None, resume=False, steps=30, **settings):
    settings = {"lr": 5e-2, "checkpoint_every": 8, "log_every": 2, "progress": False, "warmup_steps": 5, **settings}
    config = ToyConfig(steps=steps, **settings)
    seed_everything(config.seed)
    stage = ToyStage(config, crash_at)
    summary = train(stage, config, out_dir, resume=resume)
    return stage, summary


def test_killed_run_resumes_to_bit_identical_weights(tmp_path):
    reference, summary = _run(tmp_path / "straight")
    assert summary.last_loss < summary.first_loss / 3  # it does learn

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", crash_at=19)  # last checkpoint at 16; steps 17-19 are lost
    assert ckpt.latest_step(tmp_path / "killed" / "checkpoints") == 16
    assert not (tmp_path / "killed" / "final").exists()
    resumed, _ = _run(tmp_path / "killed", resume=True)

    for name in ("model", "ema"):
        for (key, a), b in zip(reference.modules()[name].state_dict().items(),
                               resumed.modules()[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{key} differs after resume"
    assert torch.equal(reference.optimizer.state_dict()["state"][0]["exp_avg"],
                       resumed.optimizer.state_dict()["state"][0]["exp_avg"])
    # the log reads as one run: the same steps, the same losses
    straight_rows = read_metrics(tmp_path / "straight" / "metrics.csv")
    resumed_rows = read_metrics(tmp_path / "killed" / "metrics.csv")
    assert [r["step"] for r in resumed_rows] == [r["step"] for r in straight_rows]
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in straight_rows]
    assert (tmp_path / "killed" / "final" / "done").is_file()
    summary_json = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary_json["steps"] == 30 and summary_json["wall_time_s"] > 0
    # only the newest `keep_checkpoints` remain
    assert len(list((tmp_path / "killed" / "checkpoints").glob("step-*.json"))) == 2


def test_throughput_is_the_median_of_the_training_rows_only(tmp_path):
    """Diagnostics rows in metrics.csv carry no rate; the summary's rate ignores them."""
    class DiagnosedStage(ToyStage):
        def diagnostics(self):
            return {"probe": 1.0}

    config = ToyConfig(steps=12, lr=5e-2, checkpoint_every=4, log_every=2, progress=False, warmup_steps=5,
                       diagnose_every=2)
    summary = train(DiagnosedStage(config), config, tmp_path / "run")
    from worldsim.training.metrics_log import read_metrics

    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    rates = sorted(row["samples_per_s"] for row in rows if "loss" in row and row["loss"] == row["loss"])
    assert any("probe" in row for row in rows) and len(rates) == 6
    assert summary.samples_per_s == round(rates[len(rates) // 2], 3)


def test_fresh_run_refuses_to_overwrite_a_checkpoint(tmp_path):
    _run(tmp_path / "run", steps=8)
    before = (tmp_path / "run" / "checkpoints" / "latest.json").read_text()
    with pytest.raises(ckpt.CheckpointError, match="--resume"):
        _run(tmp_path / "run", steps=8)
    assert (tmp_path / "run" / "checkpoints" / "latest.json").read_text() == before


class OtherStage(ToyStage):
    name = "other"


@pytest.mark.parametrize("change, message", [
    ({"lr": 1e-2}, "lr 0.05 -> 0.01"),
    ({"batch_size": 16}, "batch_size 8 -> 16"),
    ({"seed": 3}, "seed 0 -> 3"),
    ({"inner": Inner(depth=3)}, "inner.depth 2 -> 3"),
])
def test_resume_with_changed_settings_is_refused_before_anything_changes(tmp_path, change, message):
    _run(tmp_path / "run", steps=8)
    files = {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()}
    with pytest.raises(ckpt.CheckpointError, match=message.replace(".", r"\.")):
        _run(tmp_path / "run", steps=16, resume=True, **change)
    assert {path: path.read_bytes() for path in (tmp_path / "run").rglob("*") if path.is_file()} == files
    _run(tmp_path / "run", steps=16, resume=True, log_every=4, checkpoint_every=16)  # these may change
    assert ckpt.latest_step(tmp_path / "run" / "checkpoints") == 16


def test_a_setting_added_after_the_run_started_resumes_at_its_default_only(tmp_path):
    """A run started before a stage gained a setting (absent from its config.json) resumes while the
    setting keeps its default; set to anything else, it is a change like any other."""
    _run(tmp_path / "run", steps=8)
    saved_path = tmp_path / "run" / "config.json"
    saved = json.loads(saved_path.read_text())
    del saved["ratio"]  # as written by a version without the setting
    saved_path.write_text(json.dumps(saved))
    with pytest.raises(ckpt.CheckpointError, match="ratio None -> 2.0"):
        _run(tmp_path / "run", steps=16, resume=True, ratio=2.0)
    _run(tmp_path / "run", steps=16, resume=True)
    assert ckpt.latest_step(tmp_path / "run" / "checkpoints") == 16


def test_resume_as_another_stage_is_refused(tmp_path):
    _run(tmp_path / "run", steps=8)
    config = ToyConfig(steps=16, lr=5e-2, checkpoint_every=8, log_every=2, progress=False, warmup_steps=5)
    with pytest.raises(ckpt.CheckpointError, match="holds a 'toy' run; it cannot be resumed as stage 'other'"):
        train(OtherStage(config), config, tmp_path / "run", resume=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
@pytest.mark.parametrize("suffix", [".safetensors", "-rng0.safetensors", ".json"])
def test_a_damaged_checkpoint_file_is_named_on_resume(tmp_path, damage, suffix):
    _run(tmp_path / "run", steps=8)
    path = tmp_path / "run" / "checkpoints" / f"step-00000008{suffix}"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x07" * 64)
    with pytest.raises(ckpt.CheckpointError, match=f"step-00000008{suffix}.*(truncated or corrupt|format)"):
        _run(tmp_path / "run", steps=16, resume=True)


@pytest.mark.parametrize("override, message", [
    ("lr=inf", "lr"), ("lr=NaN", "lr"), ("grad_clip=-1", "grad_clip"), ("weight_decay=Infinity", "weight_decay"),
    ("warmup_steps=-3", "warmup_steps"),
])
def test_non_finite_or_negative_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(ToyConfig, None, [override])


def test_tensorboard_without_the_package_is_a_config_error(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a))
    with pytest.raises(ConfigError, match="tensorboard package"):
        load_config(ToyConfig, None, ["tensorboard=true"])
    assert load_config(ToyConfig, None, ["tensorboard=false"]).tensorboard is False


def test_checkpoint_is_strict_and_pickle_free(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    ckpt.save_checkpoint(tmp_path, 3, {"model": model}, {"model": optimizer}, {"note": 1})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["latest.json", "step-00000003-rng0.safetensors", "step-00000003.json",
                     "step-00000003.safetensors"]
    with pytest.raises(ckpt.CheckpointError, match="modules"):
        ckpt.load_checkpoint(tmp_path, {"other": model}, {"model": optimizer})
    with pytest.raises(ckpt.CheckpointError, match="does not fit module 'model'"):
        ckpt.load_checkpoint(tmp_path, {"model": nn.Linear(2, 3)}, {"model": optimizer})
    (tmp_path / "step-00000003-rng0.safetensors").unlink()
    with pytest.raises(ckpt.CheckpointError, match="incomplete"):
        ckpt.load_checkpoint(tmp_path, {"model": model}, {"model": optimizer})


def test_rng_state_roundtrip_restores_every_stream():
    import random

    import numpy as np

    seed_everything(5)
    tensors, values = ckpt.capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    seed_everything(6)
    ckpt.restore_rng_state(tensors, json.loads(json.dumps(values)))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_ema_update_and_single_process_broadcast_choice():
    model, ema = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.weight.fill_(0.0)
    ema_update(ema, model, decay=0.75)
    torch.testing.assert_close(ema.weight, torch.full((1, 2), 0.25))
    assert broadcast_choice(lambda: 3, DistributedContext()) == 3
    with pytest.raises(ValueError, match="decay"):
        ema_update(ema, model, 1.5)


def test_a_time_limited_run_stops_with_a_final_world_and_resumes_to_the_same_weights(tmp_path):
    reference, _ = _run(tmp_path / "straight")
    _, summary = _run(tmp_path / "timed", max_minutes=1e-9)  # out of time after its first step
    assert summary.steps == 1 and (tmp_path / "timed" / "final" / "done").is_file()
    assert ckpt.latest_step(tmp_path / "timed" / "checkpoints") == 1
    assert json.loads((tmp_path / "timed" / "summary.json").read_text())["steps"] == 1
    resumed, summary = _run(tmp_path / "timed", resume=True)  # no limit now: a resumable change
    assert summary.steps == 30
    for (key, a), b in zip(reference.modules()["model"].state_dict().items(),
                           resumed.modules()["model"].state_dict().values()):
        assert torch.equal(a, b), f"model.{key} differs after a time-limited start"


def test_learning_rate_scales_pick_parameters_by_name():
    weights = {name: torch.nn.Parameter(torch.zeros(1)) for name in ("a.x", "a.y", "b.x")}
    groups = lr_scaled_groups(weights.items(), {"a.y": 10.0}, lr=1e-4)
    assert [(len(group["params"]), group["lr"]) for group in groups] == [(2, 1e-4), (1, pytest.approx(1e-3))]
    assert groups[1]["params"][0] is weights["a.y"]
    assert len(lr_scaled_groups(weights.items(), {}, lr=1e-4)) == 1  # one group, as without scales
    with pytest.raises(ValueError, match="no parameter"):
        lr_scaled_groups(weights.items(), {"c": 2.0}, lr=1e-4)
    with pytest.raises(ValueError, match="> 0"):
        lr_scaled_groups(weights.items(), {"a": 0.0}, lr=1e-4)
