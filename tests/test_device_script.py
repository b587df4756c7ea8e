"""examples/device_training.sh, the one-call training run for a lent accelerator, exercised on the
CPU at toy size: data, two Self Forcing runs side by side, one tar per run; a run that fails is
reported with the end of its log and makes the script fail, while the other run is still packed."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY = "frames=2,dmd.critic_warmup=1,diagnose_every=0"


def run_script(tmp_path: Path, runs: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEVICE="cpu", FRAMES="2048", WORKERS="1", BATCH="2", STEPS="2", MINUTES="5",
               BENCH="0", RUNS=runs, OUT=str(tmp_path / "out"), WORK=str(tmp_path / "work"),
               PYTHON=sys.executable, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(REPO / "examples" / "device_training.sh")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)


def test_each_run_comes_back_as_one_tar_and_a_failed_run_fails_the_script(tmp_path):
    result = run_script(tmp_path, f"anchored:anchor_weight=4,{TOY} broken:no_such_setting=1")
    assert result.returncode == 1, result.stderr[-2000:]
    out = tmp_path / "out"
    with tarfile.open(out / "anchored.tar") as packed:
        names = set(packed.getnames())
    assert {"anchored/final/transformer.safetensors", "anchored/final/config.json",
            "anchored/metrics.csv", "anchored/summary.json", "anchored.log"} <= names
    assert sorted(path.name for path in out.iterdir()) == ["anchored.tar", "broken-failed.log"]
    assert "no_such_setting" in (out / "broken-failed.log").read_text()
    assert "run broken failed" in result.stderr
