"""`worldsim train probes` trains and saves the evaluation probes through the train command."""
import json

from worldsim.cli import main
from worldsim.eval.probes import Probes


def test_train_probes_command_writes_loadable_probes(tmp_path, capsys):
    out = tmp_path / "probes"
    code = main(["train", "probes", "--out", str(out), "--set", "parser_steps=3", "--set", "classifier_steps=3",
                 "--set", "inverse_dynamics_steps=3", "--set", "batch_worlds=4", "--set", "eval_batches=1",
                 "--set", "width=16"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["held_out"]["parser_tile_accuracy"] <= 1.0
    assert Probes.load(out).spec.width == 16


def test_train_probes_rejects_an_unknown_key(tmp_path, capsys):
    assert main(["train", "probes", "--out", str(tmp_path / "p"), "--set", "no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err
