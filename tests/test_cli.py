"""The `worldsim` command answers `--help` without importing torch (it would take seconds)."""
import subprocess
import sys


def test_building_the_parser_does_not_import_torch():
    code = "import sys, worldsim.cli as cli; cli.build_parser(); print(sorted(m for m in ('torch', 'pygame') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def run_worldsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim", *args], capture_output=True, text=True, timeout=120)


def test_version_and_python_dash_m():
    import worldsim

    result = run_worldsim("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"python -m worldsim {worldsim.__version__}"
    result = run_worldsim("--help")
    assert result.returncode == 0 and "usage: python -m worldsim" in result.stdout
    for command in ("data", "play", "train", "bench", "rollout", "eval", "merge"):
        assert command in result.stdout


def test_help_is_self_contained():
    """No help text refers to documents outside the repository."""
    from worldsim import cli

    parser = cli.build_parser()
    subparsers = next(action for action in parser._actions if action.choices and "train" in action.choices)
    texts = [parser.format_help()] + [sub.format_help() for sub in subparsers.choices.values()]
    assert all("DESIGN" not in text for text in texts)
