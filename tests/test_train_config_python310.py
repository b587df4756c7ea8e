"""Training configs on Python 3.10, which has no `tomllib`: the `tomli` backport, or a clear error."""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

CONFIG_MODULE = Path(__file__).resolve().parents[1] / "worldsim" / "training" / "config.py"


def import_config_as_on_python310(monkeypatch, tomli) -> object:
    """A fresh copy of worldsim.training.config imported as Python 3.10 would import it."""
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    monkeypatch.setitem(sys.modules, "tomllib", None)  # 3.10's standard library has none
    monkeypatch.setitem(sys.modules, "tomli", tomli)  # None: the backport is not installed
    spec = importlib.util.spec_from_file_location("config_on_python310", CONFIG_MODULE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "run.toml").write_text("steps = 5\nlr = 0.01\n")
    (tmp_path / "run.json").write_text('{"steps": 7}')
    (tmp_path / "broken.toml").write_text("steps = \n")
    return tmp_path


def test_python310_reads_toml_with_the_tomli_backport(monkeypatch, files):
    config = import_config_as_on_python310(monkeypatch, tomli=tomllib)  # tomli is tomllib's API
    loaded = config.load_config(config.TrainConfig, files / "run.toml")
    assert (loaded.steps, loaded.lr) == (5, 0.01)
    with pytest.raises(config.ConfigError, match="broken.toml is not valid"):
        config.load_config(config.TrainConfig, files / "broken.toml")


def test_python310_without_tomli_reads_json_and_names_the_missing_package(monkeypatch, files):
    config = import_config_as_on_python310(monkeypatch, tomli=None)
    assert config.load_config(config.TrainConfig, files / "run.json").steps == 7
    with pytest.raises(config.ConfigError, match="needs the tomli package"):
        config.load_config(config.TrainConfig, files / "run.toml")


def test_tomli_is_a_dependency_on_python310_only():
    pyproject = tomllib.loads((CONFIG_MODULE.parents[2] / "pyproject.toml").read_text())
    assert "tomli>=1.1; python_version < '3.11'" in pyproject["project"]["dependencies"]
