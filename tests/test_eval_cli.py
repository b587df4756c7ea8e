"""`worldsim eval` end to end on a random-init tiny world: report, documented metrics, figures, ablation."""
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from worldsim.cli import main
from worldsim.envs.explorer import events
from worldsim.eval.evaluation import checkpoint_label
from worldsim.imaging.png import PNG_SIGNATURE
from worldsim.model import WorldConfig
from worldsim.world import WorldModel

METRICS_DOC = Path(__file__).resolve().parent.parent / "docs" / "METRICS.md"


def _documented_keys(section_title: str) -> list[str]:
    """Dotted keys from the first column of the table under `section_title` in docs/METRICS.md."""
    section = METRICS_DOC.read_text().split(section_title, 1)[1].split("\n## ", 1)[0]
    keys = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        tokens = re.findall(r"`([^`]+)`", line.split("|")[1])
        base = tokens[0]
        keys.append(base)
        keys += [base.rsplit(".", 1)[0] + t if t.startswith(".") else t for t in tokens[1:]]
    return keys


def _has_key(document: dict, key: str) -> bool:
    """Whether `document` holds dotted `key`; a `<name>` part matches every key at that level."""
    nodes = [document]
    for part in key.split("."):
        if part.startswith("<"):
            nodes = [value for node in nodes if isinstance(node, dict) for value in node.values()]
        else:
            nodes = [node[part] for node in nodes if isinstance(node, dict) and part in node]
        if not nodes:
            return False
    return True


def _save_world(folder: Path, stage: str | None = None, variant: str | None = None) -> str:
    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=events.training_texts(), seed=0)
    if stage:
        record = {"stage": stage, **({"variant": variant} if variant else {})}
        world.metadata["training"] = [{"stage": "autoencoder"}, record, {"stage": "reward"}]
    world.save_pretrained(folder)
    return str(folder)


def _check_pngs(folder: Path, names: list[str]) -> None:
    assert names
    for name in names:
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_eval_tiny_suite_writes_report_metrics_and_plots(tmp_path):
    checkpoint = _save_world(tmp_path / "world")
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", checkpoint, "--suite", "tiny", "--out", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    missing = [key for key in _documented_keys("## `metrics.json` of one checkpoint") if not _has_key(metrics, key)]
    assert not missing, f"documented keys missing from metrics.json: {missing}"
    assert list(metrics["fidelity"]["rollout_psnr_db"]) == ["1", "2", "4"]
    assert 0 < metrics["fidelity"]["rollout_psnr_db"]["1"] < 100
    _check_pngs(out, metrics["plots"])
    assert {"horizon.png", "switch.png", "drift.png", "filmstrip_switch.png"} <= set(metrics["plots"])
    report = (out / "report.md").read_text()
    for heading in ("## Probes", "## Fidelity", "## Drift", "## Event reactivity", "## Event consistency",
                    "## Controllability", "## Reward and termination", "![horizon](horizon.png)", "## Targets"):
        assert heading in report
    coins = next(line for line in report.splitlines() if "`sprites.coin_count_ratio`" in line)
    assert " to 125" in coins  # a sprite count has a ceiling too
    collision = metrics["collision"]
    assert collision["held_pushes"] == collision["forced_moves"] and collision["held_push_frames"] == 8
    # A push's first frame is the one-frame collision test's frame, under the same noise.
    assert collision["held_read_as_noop_share_by_frame"][0] == pytest.approx(collision["read_as_noop_share"])
    assert collision["held_wall_kept_share"] <= min(collision["held_read_as_noop_share_by_frame"])
    assert "held 8 frames: steps read as noop" in report


def test_compare_writes_the_ablation_table_on_identical_scenarios(tmp_path):
    first = _save_world(tmp_path / "a", stage="dmd")
    second = _save_world(tmp_path / "b", stage="delta", variant="m1")
    out = tmp_path / "ablation"
    assert main(["eval", "--compare", first, second, "--suite", "tiny", "--out", str(out), "--device", "cpu"]) == 0
    top = json.loads((out / "metrics.json").read_text())
    missing = [key for key in _documented_keys("## `metrics.json` of a comparison") if not _has_key(top, key)]
    assert not missing
    assert [row["label"] for row in top["ablation_table"]] == ["dmd", "delta-m1"]
    # Same weights, same seeds: every measurement must agree exactly (reproducibility).
    a, b = (top["checkpoints"][i] for i in (0, 1))
    for family in ("fidelity", "drift", "reactivity", "consistency", "controllability", "reward", "termination"):
        assert a[family] == b[family]
    report = (out / "report.md").read_text()
    assert "| dmd |" in report and "| delta-m1 |" in report
    # The targets table: one row per target, each checkpoint's value with its interval.
    assert "| measure (target) | dmd | delta-m1 |" in report
    walls = a["targets"]["collision.read_as_noop_share"]
    assert f"| {walls['meaning']} (≥ 90.0 %) |" in report
    assert (out / "dmd" / "report.md").is_file() and (out / "delta-m1" / "metrics.json").is_file()
    _check_pngs(out, top["plots"])


def test_checkpoint_label_prefers_the_latest_generator_stage():
    class Fake:
        def __init__(self, metadata):
            self.metadata = metadata

    history = {"training": [{"stage": "ar-teacher"}, {"stage": "stream"}, {"stage": "reward"}]}
    assert checkpoint_label(Fake(history), "runs/x") == "stream"
    assert checkpoint_label(Fake({}), "runs/rolling-long/") == "rolling-long"


def test_checkpoint_label_names_the_generator_stage_a_recipe_ships():
    class Fake:
        def __init__(self, metadata):
            self.metadata = metadata

    # A recipe runs every stage but ships the dmd generator: the label must say dmd, not rolling.
    stages = ["autoencoder", "teacher", "ar-teacher", "causal-cd", "dmd", "stream", "delta", "rolling", "reward"]
    shipped = {"training": [{"stage": stage} for stage in stages], "recipe": {"generator_stage": "dmd"}}
    assert checkpoint_label(Fake(shipped), "explorer-64") == "dmd"
    with_variant = {"training": [{"stage": "delta", "variant": "m2"}, {"stage": "rolling"}],
                    "recipe": {"generator_stage": "delta"}}
    assert checkpoint_label(Fake(with_variant), "runs/x") == "delta-m2"
    # A trust region or continuity weight off the defaults is part of the variant's name.
    tuned = {"training": [{"stage": "delta", "variant": "M1-clip", "rho": 0.2, "lam": 1.0}]}
    assert checkpoint_label(Fake(tuned), "runs/x") == "delta-M1-clip-rho0.2"
    tuned["training"][0].update(rho=0.5, lam=2.0)
    assert checkpoint_label(Fake(tuned), "runs/x") == "delta-M1-clip-lam2"


def test_eval_rejects_an_unknown_suite(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--suite", "huge", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err


def test_json_ready_writes_nan_as_null_and_numpy_as_numbers():
    import numpy as np

    from worldsim.eval.report import json_ready

    document = json_ready({"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(2), (np.inf,)], 3: np.bool_(True)})
    assert document == {"a": None, "b": 1.5, "c": [2, [None]], "3": True}
    json.dumps(document, allow_nan=False)


def test_repeated_labels_are_told_apart_by_folder():
    from worldsim.eval.evaluation import distinct_labels

    labels = distinct_labels(["delta", "delta", "dmd", "x", "x"],
                             ["runs/delta-m1/final", "runs/delta-m2/final", "runs/dmd", "a/x", "b/x"])
    assert labels == ["delta (delta-m1)", "delta (delta-m2)", "dmd", "x (x)", "x (x) #2"]


def test_eval_reports_a_missing_checkpoint_without_a_traceback(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere"), "--suite", "tiny", "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("worldsim eval: error:") and "nowhere" in error
    assert not (tmp_path / "o").exists()


def _weights(folder: str) -> dict:
    return {f"{path.name}/{name}": tensor for path in Path(folder).glob("*.safetensors")
            for name, tensor in load_file(path).items()}


def test_update_card_stores_the_measures_in_the_checkpoint_and_keeps_its_weights(tmp_path):
    checkpoint = _save_world(tmp_path / "world")
    weights_before = _weights(checkpoint)
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", checkpoint, "--suite", "tiny", "--out", str(out), "--device", "cpu"]
    assert main(args + ["--update-card"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    stored = json.loads((Path(checkpoint) / "config.json").read_text())["metadata"]["evaluation"]
    assert stored["suite"] == "tiny" and stored["wall_time_s"] == metrics["wall_time_s"]
    assert stored["measures"]["TF PSNR"] == f"{metrics['fidelity']['teacher_forced_psnr_db']:.2f}"
    card = (Path(checkpoint) / "README.md").read_text()
    assert "## Measured against the Explorer truth" in card and f"| PSNR@4 | {stored['measures']['PSNR@4']} |" in card
    after = _weights(checkpoint)
    assert after.keys() == weights_before.keys()
    assert all(torch.equal(after[name], weights_before[name]) for name in after)


def test_update_card_refuses_anything_but_one_local_folder(tmp_path, capsys):
    out = str(tmp_path / "eval")
    assert main(["eval", "--checkpoint", "explorer-64", "--suite", "tiny", "--out", out, "--update-card"]) == 2
    assert "one local checkpoint folder" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()


def test_a_generator_stage_on_a_recipe_world_is_what_its_label_names(tmp_path):
    from worldsim.training.common import save_world
    from worldsim.training.trainer import TrainSummary

    world = WorldModel.create(WorldConfig.preset("tiny"), event_texts=events.training_texts(), seed=0)
    world.metadata["training"] = [{"stage": "ar-teacher"}, {"stage": "dmd"}]
    world.metadata["recipe"] = {"stages": ["ar-teacher", "dmd", "stream"], "generator_stage": "dmd"}
    summary = TrainSummary("delta", 1, 1.0, 1.0, 0.1, 0.1, str(tmp_path))
    save_world(world, tmp_path / "delta", summary, variant="M2-gauss-first2")
    tuned = WorldModel.from_pretrained(str(tmp_path / "delta"))
    assert tuned.metadata["recipe"]["generator_stage"] == "delta"
    assert tuned.metadata["recipe"]["stages"] == ["ar-teacher", "dmd", "stream"]  # the rest of the record stays
    assert checkpoint_label(tuned, "runs/x") == "delta-M2-gauss-first2"
    save_world(tuned, tmp_path / "reward", TrainSummary("reward", 1, 1.0, 1.0, 0.1, 0.1, str(tmp_path)))
    assert WorldModel.from_pretrained(str(tmp_path / "reward")).metadata["recipe"]["generator_stage"] == "delta"
