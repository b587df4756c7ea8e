"""`worldsim bench`: the harness runs and reports every figure with the machine (no speed assertions)."""
from __future__ import annotations

import json

import pytest
from test_world_fixtures import MICRO, make_world

from worldsim import cli
from worldsim.bench import BenchSettings, run_bench, summary_ms
from worldsim.data.machine import describe_machine


def test_run_bench_reports_every_figure():
    world = make_world(seed=0, overrides=MICRO)
    settings = BenchSettings(batch_sizes=(1, 3), frames=3, repeats=2, min_batched_seconds=0.01)
    result = run_bench(world, settings, source="micro", profile=True)
    assert result.fps_batch1 > 0 and len(result.fps_batch1_runs) == 2
    assert result.first_frame_latency_ms["median"] > 0 and result.first_frame_latency_ms["source"] == "generated"
    assert len(result.action_to_frame_latency_ms["runs"]) == 3
    assert [entry["batch_size"] for entry in result.batched] == [1, 3]
    assert all(entry["env_steps_per_second"] > 0 for entry in result.batched)
    stages = {entry["stage"]: entry for entry in result.profile if "stage" in entry}
    assert {"worldsim.step (total)", "worldsim.transformer_pass", "worldsim.decode", "worldsim.noise"} <= set(stages)
    assert stages["worldsim.transformer_pass"]["calls_per_frame"] == 2  # window full: commit fused with the first step
    assert any("op" in entry and entry["share"] > 0 for entry in result.profile)
    assert result.world["parameters"]["transformer"] > 0


def test_machine_description_and_summary():
    import torch

    machine = describe_machine(torch.device("cpu"))
    for key in ("date", "cpu_model", "cpu_cores", "torch_version", "device", "device_name"):
        assert machine[key]
    summary = summary_ms([0.003, 0.001, 0.002])
    assert summary["median"] == 2.0 and summary["p90"] == 3.0 and summary["runs"] == [3.0, 1.0, 2.0]


def test_bench_command_writes_json(tmp_path, capsys):
    world_dir = make_world(seed=0, overrides=MICRO).save_pretrained(tmp_path / "world")
    out = tmp_path / "results" / "bench.json"
    args = ["bench", "--checkpoint", str(world_dir), "--batch-sizes", "1,2", "--frames", "2", "--repeats", "1"]
    assert cli.main([*args, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["machine"]["device"] == "cpu" and record["fps_batch1"] > 0
    assert json.loads(capsys.readouterr().out) == record
    assert cli.main(["bench", "--checkpoint", str(world_dir), "--batch-sizes", "0"]) == 2
    assert cli.main(["bench", "--preset", "nope"]) == 2


def test_bench_rejects_bad_threads_device_and_out_before_measuring(tmp_path, capsys, monkeypatch):
    import torch

    from worldsim.world import WorldModel

    monkeypatch.setattr(WorldModel, "from_pretrained", lambda *a, **k: pytest.fail("the world was loaded"))
    (tmp_path / "file").write_text("x")
    cases = [(["--threads", "0"], "--threads"), (["--threads", "-2"], "--threads"),
             (["--out", str(tmp_path / "file" / "b.json")], "a file"), (["--device", "toaster"], "torch device")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda"))
    for extra, message in cases:
        assert cli.main(["bench", "--checkpoint", "explorer-64", *extra]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["bench", "--preset", "tiny", "--revision", "v1"]) == 2
    assert "--revision" in capsys.readouterr().err
